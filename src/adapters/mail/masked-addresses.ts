/** An address as mail servers quote one back: a local part of atext and dots, then a dotted domain. */
const ADDRESS = /([A-Za-z0-9!#$%&'*+/=?^_`{|}~-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+)/g;

/**
 * A mail server's reply with each e-mail address in it masked (`jane@shop.example` →
 * `j***@shop.example`): replies such as `550 5.1.1 <jane@shop.example>: user unknown` are
 * logged and kept with the attempt, and an address is personal data. The domain stays, to
 * tell whose server refused; the delivery's `recipient` names the address where it is needed.
 */
export function maskEmailAddresses(text: string): string {
  return text.replace(ADDRESS, (_match, first: string, domain: string) => `${first}***@${domain}`);
}
