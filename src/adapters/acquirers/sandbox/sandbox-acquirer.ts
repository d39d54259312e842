import { createHash } from 'node:crypto';
import type { Acquirer, AcquirerCard, AuthoriseRequest, AuthoriseResult, CaptureRequest, SimpleResult } from '../../../ports/acquirer.js';
import { SANDBOX_CHALLENGE_CODE, findTestCard, type SandboxBehaviour } from './test-cards.js';

/**
 * Stands in for the card networks. Outcomes are a pure function of the card number,
 * so merchants can script every path; cards not in the table approve frictionlessly.
 * Capture and refund no longer see the PAN, so their test cards are recognised by the
 * network reference this acquirer gave the approval.
 */
export class SandboxAcquirer implements Acquirer {
  readonly name = 'sandbox';

  authenticationFlow(card: AcquirerCard) {
    return findTestCard(card.pan)?.flow ?? 'frictionless';
  }

  verifyChallenge(_card: AcquirerCard, answer: string): 'passed' | 'failed' {
    return answer.trim() === SANDBOX_CHALLENGE_CODE ? 'passed' : 'failed';
  }

  async authorise(req: AuthoriseRequest): Promise<AuthoriseResult> {
    const behaviour = findTestCard(req.card.pan)?.behaviour ?? { kind: 'approve' };
    switch (behaviour.kind) {
      case 'decline':
        return { outcome: 'declined', declineCode: behaviour.code, message: behaviour.message, retryable: behaviour.retryable };
      case 'error':
        return { outcome: 'error', message: 'The sandbox acquirer reported a processing error.' };
      case 'cit_requires_authentication':
        // Customer-initiated only: the gateway declines it as authentication_required, whereas a
        // merchant-initiated one would be stepped up, which 4000 0027 6000 3184 already shows.
        if (req.initiator === 'cit') return { outcome: 'requires_authentication', message: 'The issuer requires the customer to authenticate with a challenge.' };
        break;
      case 'mit_declines':
        if (req.initiator === 'mit') {
          return { outcome: 'declined', declineCode: 'do_not_honor', message: 'The issuer declined the merchant-initiated payment.', retryable: false };
        }
        break;
      case 'mit_requires_authentication':
        if (req.initiator === 'mit') return { outcome: 'requires_authentication', message: 'The issuer requires the customer to authenticate.' };
        break;
      default:
        break;
    }
    return { outcome: 'approved', authorisationCode: code(req.paymentId, 6).toUpperCase(), networkReference: networkReference(req, behaviour.kind) };
  }

  async capture(req: CaptureRequest): Promise<SimpleResult> {
    if (isTestCard(req, 'capture_fails')) return { outcome: 'failed', code: 'capture_refused', message: 'The acquirer refused the capture.' };
    return { outcome: 'succeeded' };
  }

  async void(_req: CaptureRequest): Promise<SimpleResult> {
    return { outcome: 'succeeded' };
  }

  async refund(req: CaptureRequest & { refundId: string }): Promise<SimpleResult> {
    if (isTestCard(req, 'refund_fails')) return { outcome: 'failed', code: 'refund_failed', message: 'The acquirer could not refund this card.' };
    return { outcome: 'succeeded' };
  }
}

/**
 * Not the BIN and last 4 the request carries: every 4000 00…0259 of other middle digits shows
 * those of the refusing card, and is documented to behave as any other card. The network
 * reference is derived from the payment and the card's behaviour, so it names this one card.
 */
function isTestCard(req: CaptureRequest, kind: 'capture_fails' | 'refund_fails'): boolean {
  return req.networkReference !== null && req.networkReference.endsWith(referenceDigits(req.paymentId, kind));
}

function code(seed: string, length: number): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, length);
}

/** Scheme-style transaction id (Visa's is 15 digits); an MIT keeps its initial one traceable. */
function networkReference(req: AuthoriseRequest, kind: SandboxBehaviour['kind']): string {
  const digits = referenceDigits(req.paymentId, kind === 'capture_fails' || kind === 'refund_fails' ? kind : undefined);
  return req.card.brand === 'visa' ? digits : `${req.card.brand.slice(0, 3).toUpperCase()}${digits}`;
}

function referenceDigits(paymentId: string, kind: 'capture_fails' | 'refund_fails' | undefined): string {
  return BigInt('0x' + code(kind ? `${paymentId}:nr:${kind}` : `${paymentId}:nr`, 16)).toString().padStart(15, '0').slice(0, 15);
}
