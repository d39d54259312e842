import { createHash } from 'node:crypto';
import { bin, last4 } from '../../../domain/card.js';
import type { Acquirer, AcquirerCard, AuthoriseRequest, AuthoriseResult, CaptureRequest, SimpleResult } from '../../../ports/acquirer.js';
import { SANDBOX_CHALLENGE_CODE, TEST_CARDS, findTestCard } from './test-cards.js';

/**
 * Stands in for the card networks. Outcomes are a pure function of the card number,
 * so merchants can script every path; cards not in the table approve frictionlessly.
 * Capture and refund no longer see the PAN, so their test cards are recognised by
 * BIN + last 4.
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
    return { outcome: 'approved', authorisationCode: code(req.paymentId, 6).toUpperCase(), networkReference: networkReference(req) };
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
 * The BIN as the gateway shows it, not a prefix of the test card: a card under 15 digits shows
 * only its first 4 or 5, which would make every 4000…0259 of 13 digits the refusing test card.
 */
function isTestCard(req: CaptureRequest, kind: 'capture_fails' | 'refund_fails'): boolean {
  return TEST_CARDS.some((c) => c.behaviour.kind === kind && bin(c.number) === req.cardBin && last4(c.number) === req.cardLast4);
}

function code(seed: string, length: number): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, length);
}

/** Scheme-style transaction id (Visa's is 15 digits); an MIT keeps its initial one traceable. */
function networkReference(req: AuthoriseRequest): string {
  const digits = BigInt('0x' + code(`${req.paymentId}:nr`, 16)).toString().padStart(15, '0').slice(0, 15);
  return req.card.brand === 'visa' ? digits : `${req.card.brand.slice(0, 3).toUpperCase()}${digits}`;
}
