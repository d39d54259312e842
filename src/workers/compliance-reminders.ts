import type { Services } from '../app/services.js';

/**
 * Daily volume recounts (an outgrown SAQ starts the AOC grace period) and the expiry
 * reminders 30 and 7 days ahead plus the expiry notice. Each is written as an outbox
 * event, which the notification dispatcher turns into e-mails and callbacks.
 */
export async function runComplianceChecks(services: Services): Promise<number> {
  const recounted = await services.compliance.recountDue();
  const notices = await services.compliance.sendDueNotices();
  return recounted + notices;
}
