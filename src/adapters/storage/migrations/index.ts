import type { Migration, MigrationProvider } from 'kysely';
import * as m001 from './001-foundation.js';
import * as m002 from './002-notifications.js';
import * as m003 from './003-lifecycle.js';
import * as m004 from './004-stored-cards.js';
import * as m005 from './005-compliance.js';
import * as m006 from './006-checkout-session-key.js';
import * as m007 from './007-config-version.js';
import * as m008 from './008-slim-event-bodies.js';
import * as m009 from './009-compact-values.js';
import * as m010 from './010-payments-by-stored-card.js';
import * as m011 from './011-undispatched-events-read.js';
import * as m012 from './012-endpoint-config-version.js';
import * as m013 from './013-releases.js';
import * as m014 from './014-vault-keys.js';
import * as m015 from './015-erase-finished-cards.js';
import * as m016 from './016-hmac-key-check.js';
import * as m017 from './017-notify-defaults.js';
import * as m018 from './018-channel-support-email.js';
import * as m019 from './019-merchant-suspension.js';
import * as m022 from './022-live-agreements.js';
import * as m023 from './023-key-modes.js';
import * as m024 from './024-endpoint-modes.js';
import * as m025 from './025-mit-limits.js';

/** Migrations are compiled in, not read from disk, so a bundled build carries them. */
const all: Record<string, Migration> = {
  '001-foundation': m001,
  '002-notifications': m002,
  '003-lifecycle': m003,
  '004-stored-cards': m004,
  '005-compliance': m005,
  '006-checkout-session-key': m006,
  '007-config-version': m007,
  '008-slim-event-bodies': m008,
  '009-compact-values': m009,
  '010-payments-by-stored-card': m010,
  '011-undispatched-events-read': m011,
  '012-endpoint-config-version': m012,
  '013-releases': m013,
  '014-vault-keys': m014,
  '015-erase-finished-cards': m015,
  '016-hmac-key-check': m016,
  '017-notify-defaults': m017,
  '018-channel-support-email': m018,
  '019-merchant-suspension': m019,
  '022-live-agreements': m022,
  '023-key-modes': m023,
  '024-endpoint-modes': m024,
  '025-mit-limits': m025,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => all,
};
