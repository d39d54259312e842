import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { DatabaseUnavailableError, openDatabase } from '../../src/adapters/storage/database.js';
import { DIALECTS } from '../support/gateway.js';
import { freshPostgresDatabase } from '../support/postgres.js';

for (const dialect of DIALECTS) {
  describe(`a database migrated by a newer version of the gateway (${dialect})`, () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-newer-schema-'));
    let pgdb: Awaited<ReturnType<typeof freshPostgresDatabase>> | null = null;
    const options = () => ({ dataDir, databaseUrl: pgdb?.url });
    before(async () => {
      if (dialect === 'postgres') pgdb = await freshPostgresDatabase();
      const database = await openDatabase(options());
      await sql`insert into kysely_migration (name, timestamp) values ('999-from-the-future', '2100-01-01T00:00:00.000Z')`.execute(database.db);
      await database.close();
    });
    after(async () => {
      await pgdb?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('is refused naming the migration this version does not know and what to do, not as "corrupted"', async () => {
      await assert.rejects(openDatabase(options()), (error: Error) => {
        assert.ok(error instanceof DatabaseUnavailableError, String(error));
        assert.match(error.message, /: it was migrated by a newer version of the gateway \(999-from-the-future; this version knows up to 0\d\d-[a-z0-9-]+\): run that version or a later one, or restore a backup taken before the upgrade$/);
        return true;
      });
    });
  });
}
