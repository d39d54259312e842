import type { Services } from '../app/services.js';
import { retryDueReleases } from '../app/releases.js';

/**
 * One run of the delayed-capture scheduler. Its whole state is in the database
 * (`capture_at` on authorised payments, claims on capturing/voiding payments and
 * pending refunds, releases still to ask the acquirer for), so a restarted process picks
 * up exactly where the last one stopped, and several processes can run it side by side
 * on PostgreSQL.
 */
export async function runCaptureScheduler(services: Services, batch = 20): Promise<number> {
  const captured = await services.lifecycle.captureDue(batch);
  const recovered = await services.lifecycle.recoverStale(batch);
  const released = await retryDueReleases(services.ctx, batch);
  return captured + recovered + released;
}
