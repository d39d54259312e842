import type { CheckoutView } from '../../app/checkout.js';
import { brandName } from '../../domain/card.js';
import { formatAmount } from '../../domain/money.js';
import type { PaymentStatus } from '../../domain/payment-state.js';
import { SANDBOX_CHALLENGE_CODE } from '../../adapters/acquirers/sandbox/test-cards.js';
import { html, page, Safe } from './html.js';

type Outcome = { tone: 'ok' | 'bad' | 'info'; title: string; text: string };

const APPROVED: Outcome = { tone: 'ok', title: 'Payment approved', text: 'Your payment has been approved.' };

/** Every status a finished page can show, so none reaches the customer as its bare code. */
const OUTCOMES: Record<Exclude<PaymentStatus, 'requires_action'>, Outcome> = {
  authorised: APPROVED,
  // A capture whose answer is still out: the approval stands whatever the acquirer says.
  capturing: APPROVED,
  // A void the acquirer is answering may be refused, leaving the payment approved: nothing is promised.
  voiding: { tone: 'info', title: 'Payment being cancelled', text: 'The merchant is cancelling this payment.' },
  captured: { tone: 'ok', title: 'Payment complete', text: 'Your payment is complete.' },
  partially_captured: { tone: 'ok', title: 'Payment complete', text: 'Your payment is complete.' },
  partially_refunded: { tone: 'ok', title: 'Payment complete', text: 'This payment was completed and has since been partly refunded.' },
  refunded: { tone: 'info', title: 'Payment refunded', text: 'This payment was completed and has since been refunded.' },
  voided: { tone: 'info', title: 'Payment cancelled by the merchant', text: 'The merchant released this payment; you have not been charged.' },
  declined: { tone: 'bad', title: 'Payment declined', text: 'Your card issuer declined this payment. You have not been charged.' },
  failed: { tone: 'bad', title: 'Payment failed', text: 'The payment could not be processed. You have not been charged; please try again later.' },
  expired: { tone: 'bad', title: 'Payment link expired', text: 'This payment page has expired. You have not been charged; return to the shop to try again.' },
  cancelled: { tone: 'info', title: 'Payment cancelled', text: 'This payment was cancelled. You have not been charged.' },
};

/** How often the processing page asks in the background, where scripts run. */
const PROCESSING_CHECK_SECONDS = 3;

const DECLINE_TEXT: Record<string, string> = {
  insufficient_funds: 'The card has insufficient funds.',
  expired_card: 'The card has expired.',
  incorrect_cvc: 'The security code (CVC) was incorrect.',
  authentication_failed: 'The verification code was wrong too many times.',
};

/**
 * `heading`: what happened, on a page whose payment can no longer be made; the page's one
 * `h1` is what a screen reader's heading list offers, so it must not still say "Pay …".
 * Whom the payment was for then moves under it.
 */
function summary(view: CheckoutView, heading?: string): Safe {
  const p = view.payment;
  // Once captured, the customer paid what was captured: a partial capture released the rest,
  // and the page must not show more than their receipt and statement do.
  const charged = p.captured_amount > 0 ? p.captured_amount : p.amount;
  const order = p.reference ? `Order ${p.reference}` : 'Card payment';
  return html`<h1>${heading ?? `Pay ${view.channelName}`}</h1>
<p class="merchant">${heading ? `${view.channelName} · ${order}` : order}</p>
<p class="amount"><span class="sr-only">Amount: </span>${formatAmount(charged, p.currency)}</p>
<dl><dt>Card</dt><dd>${brandName(p.card_brand)} <span aria-hidden="true">••••</span><span class="sr-only">ending in</span> ${p.card_last4}</dd></dl>`;
}

/** Inside the page's one form, so it sits beside the main button and posts the same CSRF field. */
function cancelButton(token: string): Safe {
  return html`<button class="secondary" type="submit" formaction="/pay/${token}/cancel" formnovalidate>Cancel payment</button>`;
}

const WARN_BEFORE_EXPIRY_MS = 60_000;

/**
 * The page's time limit, said before the customer starts and, where scripts run, again a
 * minute before it ends (WCAG 2.2.1), in an assertive live region rather than a second
 * role=alert beside a wrong code's. It cannot be extended: the card's CVC is held only while
 * the page is open. The warning counts from the server's time left, not the browser's clock.
 */
function timeLimit(view: CheckoutView, now: number, nonce: string): Safe {
  const expiresAt = view.payment.expires_at;
  if (expiresAt === null || expiresAt === undefined) return html``;
  const minutes = Math.floor((expiresAt - now) / 60_000);
  const left = minutes < 1 ? 'less than a minute' : `${minutes} more minute${minutes === 1 ? '' : 's'}`;
  const warnIn = Math.max(0, expiresAt - now - WARN_BEFORE_EXPIRY_MS);
  return html`<p class="hint" id="time-limit">This page stays open for ${left}. After that you can no longer pay here, and can start again from ${view.channelName}.</p>
<div aria-live="assertive" id="time-warning"></div>
<script nonce="${nonce}">setTimeout(function(){var w=document.getElementById('time-warning');w.className='notice bad';w.textContent='This page closes in less than a minute.'},${warnIn});</script>`;
}

export function openPage(view: CheckoutView, token: string, csrf: string, nonce: string, now: number, error?: string): string {
  // One already processing finishes as usual: its authorisation was asked for before the suspension.
  if (view.merchantSuspended && view.session.state !== 'processing') {
    // Why is the operator's to say, not the page's; cancelling sends the customer back to the shop.
    return page(
      'Payment cannot be completed',
      nonce,
      html`<div class="card">${summary(view, 'Payment cannot be completed')}
<p class="notice bad" role="status"><strong>This payment cannot be completed.</strong> ${view.channelName} cannot take card payments at the moment. You have not been charged.</p>
<form method="post" action="/pay/${token}/cancel" id="cancel">
<input type="hidden" name="csrf" value="${csrf}">
<div class="actions"><button class="primary" type="submit">Cancel and return to ${view.channelName}</button></div>
</form></div>`,
    );
  }
  if (view.session.state === 'processing') {
    // Where scripts run the page asks in the background and moves only once the bank has
    // answered. Without them it waits for the customer to press Check now: a page that
    // refreshes itself on a timer sends a screen reader back to its top each time, and the
    // customer can neither stop nor slow it (WCAG 2.2.1, failure F41). Only a customer who has
    // just confirmed (and reloaded, or came back while the bank answers) sees it: once the
    // payment has finished they go on to the merchant, as after the form itself.
    const next = `/pay/${token}?return=1`;
    return page(
      'Processing payment',
      nonce,
      html`<div class="card">${summary(view)}<p class="notice info" role="status" id="processing">Processing your payment… your bank has not answered yet.</p>
<p class="hint" id="processing-hint">Press Check now to see whether it has. You will not be charged twice.</p>
<div class="actions"><a class="button primary" href="${next}">Check now</a></div></div>
<script nonce="${nonce}">document.getElementById('processing-hint').textContent='This page checks again every ${PROCESSING_CHECK_SECONDS} seconds and takes you on once your bank has answered.';(function check(){setTimeout(function(){fetch(${new Safe(JSON.stringify(next))},{cache:'no-store'}).then(function(r){return r.text()}).then(function(t){if(t.indexOf('id="processing"')<0)location.replace(${new Safe(JSON.stringify(next))});else check()},check)},${PROCESSING_CHECK_SECONDS * 1000})})();</script>`,
    );
  }
  if (view.flow === 'challenge') {
    const wrong =
      error === 'wrong_code'
        ? html`<p class="notice bad" role="alert" id="otp-error">That code is not right. ${view.attemptsLeft} attempt${view.attemptsLeft === 1 ? '' : 's'} left.</p>`
        : error === 'no_code'
          ? html`<p class="notice bad" role="alert" id="otp-error">Enter the code your bank sent you.</p>`
          : undefined;
    // The field itself says it was wrong and why, and so does the title, read first as the page
    // loads: an alert present as the page loads is often not read out.
    const title = error === 'wrong_code' ? 'Error: wrong code – Verify your payment' : error === 'no_code' ? 'Error: no code entered – Verify your payment' : 'Verify your payment';
    const describedBy = [wrong ? 'otp-error' : '', view.sandbox ? 'otp-hint' : ''].filter(Boolean).join(' ');
    const hint = view.sandbox ? html`<p class="hint" id="otp-hint">Sandbox: the code is <strong>${SANDBOX_CHALLENGE_CODE}</strong>.</p>` : html``;
    return page(
      title,
      nonce,
      html`<div class="card">${summary(view)}
<p>Your bank asks you to confirm this payment (3-D Secure).</p>${timeLimit(view, now, nonce)}${wrong ?? html``}
<form method="post" action="/pay/${token}/challenge" id="challenge">
<input type="hidden" name="csrf" value="${csrf}">
<label for="otp">Verification code</label>
<input type="text" id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code" maxlength="8" required${describedBy ? html` aria-describedby="${describedBy}"` : html``}${wrong ? html` aria-invalid="true"` : html``} autofocus>
${hint}
<div class="actions"><button class="primary" type="submit">Verify and pay</button>${cancelButton(token)}</div>
</form></div>`,
    );
  }
  // Frictionless: nothing to ask the customer, so the page confirms itself where
  // scripts run; without JavaScript the same form is one click.
  return page(
    'Confirm your payment',
    nonce,
    html`<div class="card">${summary(view)}
<form method="post" action="/pay/${token}/confirm" id="confirm">
<input type="hidden" name="csrf" value="${csrf}">
<p class="notice info" role="status">Confirming with your bank…</p>${timeLimit(view, now, nonce)}
<div class="actions"><button class="primary" type="submit">Pay ${formatAmount(view.payment.amount, view.payment.currency)}</button>${cancelButton(token)}</div>
</form></div>
<script nonce="${nonce}">document.getElementById('confirm').requestSubmit();</script>`,
  );
}

/**
 * A finished payment. Right after the customer's own action (`returning`) the page goes on to
 * the merchant by itself, replacing itself in the history so Back does not bounce the customer
 * to the merchant again; opened later, it only offers the link.
 */
export function outcomePage(view: CheckoutView, returnUrl: string, nonce: string, returning = false): string {
  const status = view.payment.status;
  const o = OUTCOMES[status as keyof typeof OUTCOMES];
  const reason = status === 'declined' && view.payment.decline_code ? DECLINE_TEXT[view.payment.decline_code] : undefined;
  const onward = returning
    ? html`<p class="hint">Taking you back to ${view.channelName}…</p>
<script nonce="${nonce}">location.replace(document.getElementById('return').href);</script>`
    : html``;
  return page(
    o.title,
    nonce,
    html`<div class="card">${summary(view, o.title)}
<p class="notice ${o.tone}" role="status"><strong>${o.title}.</strong> ${o.text}${reason ? ` ${reason}` : ''}</p>
<div class="actions"><a class="button primary" id="return" href="${returnUrl}">Return to ${view.channelName}</a></div>${onward}</div>`,
    returning ? html`<noscript><meta http-equiv="refresh" content="0;url=${returnUrl}"></noscript>` : undefined,
  );
}

export function notFoundPage(nonce: string): string {
  return page('Payment not found', nonce, html`<div class="card"><h1>Payment not found</h1><p>This payment link is not valid. Please return to the shop and start again.</p></div>`);
}

export function forbiddenPage(nonce: string, pagePath: string): string {
  return page(
    'Session check failed',
    nonce,
    html`<div class="card"><h1>Please try again</h1><p class="notice bad">We could not verify that this request came from the payment page (it may have been open in another window). Go back to the payment page and try again. You have not been charged.</p>
<div class="actions"><a class="button primary" href="${pagePath}">Back to the payment page</a></div></div>`,
  );
}

/** A request to the page that could not be read (or failed on our side): the page itself shows where the payment stands. */
export function requestFailedPage(nonce: string, pagePath: string, ourSide: boolean): string {
  const what = ourSide ? 'Something went wrong on our side.' : 'We could not read what your browser sent.';
  return page(
    'Please try again',
    nonce,
    html`<div class="card"><h1>Please try again</h1><p class="notice bad">${what} Reload the payment page to see where your payment stands and try again.</p>
<div class="actions"><a class="button primary" href="${pagePath}">Back to the payment page</a></div></div>`,
  );
}
