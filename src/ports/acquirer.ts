import type { CardBrand } from '../domain/card.js';
import type { IndustryUsage, PaymentSubType } from '../domain/payment-data.js';

/**
 * What an acquirer connector translates to and from. A connector is stateless: it maps
 * our request to the acquirer's wire format and the acquirer's answer back. An answer
 * it cannot map is `pending`, never an approval.
 */
export interface AcquirerCard {
  pan: string;
  expiryMonth: number;
  expiryYear: number;
  cvc: string | undefined;
  brand: CardBrand;
  holderName: string | undefined;
}

export type AuthenticationFlow = 'frictionless' | 'challenge';

export interface AuthoriseRequest {
  paymentId: string;
  amount: number;
  currency: string;
  card: AcquirerCard;
  /** Customer-initiated payments carry the result of 3-D Secure authentication. */
  initiator: 'cit' | 'mit';
  authenticated: boolean;
  /** For merchant-initiated payments: the scheme reference of the initial agreement. */
  previousNetworkReference?: string | undefined;
  storedCredential: boolean;
  /**
   * payment_data.payment_sub_type: schemes flag the payment that stores a card for an
   * agreement (`-initial`) apart from its later uses (`-subsequent`), and recurring,
   * instalment and unscheduled use apart. A stepped-up MIT its customer completes on the page
   * comes as `initiator: 'cit'` with its `-subsequent` sub type (a customer-initiated payment
   * of the series on a stored credential, as Mastercard's C102–C104 and Visa's CIT on a stored
   * credential are flagged).
   */
  paymentSubType: PaymentSubType;
  /** An industry-practice MIT's reason (the scheme's MIT reason code); `none` for every other payment, a stepped-up MIT its customer finishes included. */
  industryUsage: IndustryUsage;
}

export type AuthoriseResult =
  | { outcome: 'approved'; authorisationCode: string; networkReference: string }
  | { outcome: 'declined'; declineCode: string; message: string; retryable: boolean }
  | { outcome: 'requires_authentication'; message: string }
  | { outcome: 'error'; message: string }
  | { outcome: 'pending'; message: string };

export interface CaptureRequest {
  paymentId: string;
  amount: number;
  currency: string;
  networkReference: string | null;
  /** Capture and refund no longer see the PAN; BIN + last 4 is all a connector gets. */
  cardBin: string;
  cardLast4: string;
}

export type SimpleResult = { outcome: 'succeeded' } | { outcome: 'failed'; code: string; message: string } | { outcome: 'pending'; message: string };

export interface Acquirer {
  readonly name: string;
  /** Which 3-D Secure path the issuer asks for; decided before the customer is shown a page. */
  authenticationFlow(card: AcquirerCard): AuthenticationFlow;
  /** The issuer's verdict on an authentication challenge answer. */
  verifyChallenge(card: AcquirerCard, answer: string): 'passed' | 'failed';
  authorise(req: AuthoriseRequest): Promise<AuthoriseResult>;
  capture(req: CaptureRequest): Promise<SimpleResult>;
  void(req: CaptureRequest): Promise<SimpleResult>;
  refund(req: CaptureRequest & { refundId: string }): Promise<SimpleResult>;
}
