import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { loadConfig, type Config } from '../../src/config.js';
import { createGateway, ensureSandboxCredentials, type Gateway, type SandboxCredentials } from '../../src/server.js';
import { ManualClock } from '../../src/ports/clock.js';
import { freshPostgresDatabase } from './postgres.js';

export type Dialect = 'sqlite' | 'postgres';

/** Dialects the suites run on; TEST_DIALECTS=sqlite narrows a local run. */
export const DIALECTS: Dialect[] = (process.env.TEST_DIALECTS ?? 'sqlite,postgres').split(',').filter(Boolean) as Dialect[];

export interface TestGateway {
  gateway: Gateway;
  app: FastifyInstance;
  config: Readonly<Config>;
  clock: ManualClock;
  credentials: SandboxCredentials;
  dataDir: string;
  /** inject() with the sandbox secret key unless headers say otherwise. */
  request(opts: InjectOptions): Promise<LightMyRequestResponse>;
  /** Listen on an ephemeral loopback port; returns the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  dialect?: Dialect;
  env?: Record<string, string>;
  clock?: ManualClock;
  workers?: boolean;
  /** The gateway's logger (default: pino at LOG_LEVEL, silent in tests). */
  log?: pino.Logger;
}

/**
 * A real gateway over a real database (a temp SQLite file or a fresh PostgreSQL
 * database), with a hand-moved clock and the sandbox credentials created.
 */
export async function startTestGateway(opts: TestGatewayOptions = {}): Promise<TestGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tzero-test-'));
  const pgdb = opts.dialect === 'postgres' ? await freshPostgresDatabase() : null;
  const clock = opts.clock ?? new ManualClock(Date.now());
  const port = await freePort();
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    WORKERS: opts.workers ? 'true' : 'false',
    ...(pgdb ? { DATABASE_URL: pgdb.url } : {}),
    ...opts.env,
  };
  const config = loadConfig(env);
  const log = opts.log ?? pino({ level: env.LOG_LEVEL ?? 'silent' });
  const gateway = await createGateway(config, log, { clock });
  const { credentials } = await ensureSandboxCredentials(gateway.services);
  let baseUrl: string | null = null;
  return {
    gateway,
    app: gateway.app,
    config,
    clock,
    credentials: credentials!,
    dataDir,
    request(o) {
      return gateway.app.inject({ ...o, headers: { 'x-secret-key': credentials!.secret_key, ...(o.headers ?? {}) } });
    },
    async listen() {
      if (!baseUrl) {
        await gateway.app.listen({ host: '127.0.0.1', port });
        baseUrl = config.publicUrl;
      }
      return baseUrl;
    },
    async close() {
      await gateway.close();
      await pgdb?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A port nobody listens on right now, so PUBLIC_URL can name it before the gateway starts. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export async function readExample(): Promise<Record<string, unknown>> {
  const { readFile } = await import('node:fs/promises');
  return JSON.parse(await readFile(new URL('../../docs/examples/authorise.json', import.meta.url), 'utf8')) as Record<string, unknown>;
}

/** The spec's example with overrides merged one level deep (payment_method, payment_data…). */
export async function exampleBody(overrides: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const base = await readExample();
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete base[k];
    else if (v && typeof v === 'object' && !Array.isArray(v) && base[k] && typeof base[k] === 'object') base[k] = { ...(base[k] as object), ...(v as object) };
    else base[k] = v;
  }
  return base;
}
