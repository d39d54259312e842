import type { Migration, MigrationProvider } from 'kysely';
import * as m001 from './001-foundation.js';

/** Migrations are compiled in, not read from disk, so a bundled build carries them. */
const all: Record<string, Migration> = {
  '001-foundation': m001,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => all,
};
