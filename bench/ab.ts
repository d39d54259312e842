import { freshPostgresDatabase } from './lib/postgres.js';
import { bodyFactory } from './lib/bodies.js';
import { FlowTally, citFlow, jsonHeaders, setupMit } from './lib/flows.js';
import { postEach, runLoad } from './lib/load.js';
import { removeDir, startGateway, threadTimes, watchUsage } from './lib/processes.js';

/**
 * Same-minute A/B of POST /payment/authorise between checkouts of the gateway. This
 * machine's speed moves within minutes (docs/benchmarks.md, steal), so two runs of
 * `npm run bench` an hour apart say little about a change; rounds measured side by side
 * do. Rounds alternate (A B, B A, …), each with a fresh gateway and database, the
 * benchmark's load generator and bodies, 50 connections, a 3 s warm-up, then BENCH_SECONDS.
 *
 *   git worktree add /tmp/before HEAD~3 && ln -s "$PWD/node_modules" /tmp/before/node_modules
 *   npm run bench:ab -- /tmp/before .
 *   BENCH_AB_DIALECT=postgres npm run bench:ab -- /tmp/before .
 *   BENCH_AB_RATE=1500 npm run bench:ab -- /tmp/before .
 *   BENCH_AB_FLOW=cit npm run bench:ab -- /tmp/before .
 *   BENCH_AB_FLOW=mit npm run bench:ab -- /tmp/before .
 *
 * With BENCH_AB_RATE the measured window runs at that fixed rate instead of a closed loop,
 * and rounds compare the gateway's CPU time per payment: under a closed loop the machine
 * is saturated and a change's saving shows only as throughput, through the scheduler and
 * the other threads' contention; below saturation it is the work itself.
 *
 * With BENCH_AB_FLOW=cit the load is the benchmark's customer-initiated journey instead
 * (authorise, the hosted page, confirm, manual capture; bench/lib/flows.ts), compared in
 * whole journeys a second; its p99 is that of single requests. BENCH_AB_FLOW=mit posts
 * the benchmark's merchant-initiated payments (a stored card's token, answered
 * synchronously) after one customer-initiated payment has stored the card.
 */
const checkouts = process.argv.slice(2);
if (checkouts.length < 2) {
  process.stderr.write('usage: npm run bench:ab -- <checkout> <checkout> [...]  (BENCH_SECONDS, BENCH_ROUNDS, BENCH_AB_DIALECT=sqlite|postgres)\n');
  process.exit(2);
}
const seconds = Number(process.env.BENCH_SECONDS ?? 6);
const rounds = Number(process.env.BENCH_ROUNDS ?? 4);
const postgres = process.env.BENCH_AB_DIALECT === 'postgres';
const fixedRate = process.env.BENCH_AB_RATE ? Number(process.env.BENCH_AB_RATE) : undefined;
if (fixedRate !== undefined && !(fixedRate > 0)) throw new Error(`BENCH_AB_RATE must be a positive number of requests per second, not "${process.env.BENCH_AB_RATE}"`);
const flow = process.env.BENCH_AB_FLOW || undefined;
if (flow !== undefined && flow !== 'cit' && flow !== 'mit') throw new Error(`BENCH_AB_FLOW can be "cit" or "mit", not "${flow}"`);
if (flow !== undefined && fixedRate !== undefined) throw new Error('BENCH_AB_FLOW runs a closed loop: leave BENCH_AB_RATE unset');
const rates = new Map<string, number[]>(checkouts.map((c) => [c, []]));
/** Gateway CPU µs per successful payment, per round (the fixed-rate mode's measure). */
const costs = new Map<string, number[]>(checkouts.map((c) => [c, []]));

for (let round = 1; round <= rounds; round++) {
  for (const checkout of round % 2 ? checkouts : [...checkouts].reverse()) {
    const database = postgres ? await freshPostgresDatabase() : null;
    const gw = await startGateway({ checkout, databaseUrl: database?.url });
    try {
      const tally = new FlowTally();
      const mit = flow === 'mit' ? await setupMit(gw.url, gw.secretKey, `ab-${round}-${Date.now()}`) : undefined;
      if (mit && !mit.ok) throw new Error(`${checkout}: ${mit.reason}`);
      const body = mit?.ok ? mit.body : bodyFactory(`ab-${round}-${Date.now()}`);
      // The warm-up's references (and, for MITs, the stored card's payments) are not reused.
      const requests = (t: FlowTally, from: number) =>
        flow === 'cit' ? citFlow(gw.secretKey, `ab-${round}-${from}`, true, t) : postEach('/payment/authorise', jsonHeaders(gw.secretKey), (n) => body(from + n));
      const expect = (s: number) => s === 201 || (flow === 'cit' && (s === 200 || s === 303));
      await runLoad({ url: gw.url, connections: 50, seconds: 3, requests: requests(new FlowTally(), 0), expect });
      const before = threadTimes(gw.pid);
      const stop = watchUsage(gw.pid);
      const m = await runLoad({ url: gw.url, connections: 50, seconds, overallRate: fixedRate, requests: requests(tally, 1_000_000), expect });
      const usage = stop();
      if (flow === 'cit') m.rate = tally.done / m.seconds;
      const cost = (usage.cpuPercent * 10_000) / m.rate;
      // The two busiest threads: the event loop, and on SQLite the writer thread.
      const busiest = [...threadTimes(gw.pid)]
        .map(([tid, t]) => ({ cpu: (t.cpu - (before.get(tid)?.cpu ?? 0)) / m.seconds, wait: (t.wait - (before.get(tid)?.wait ?? 0)) / m.seconds }))
        .sort((a, b) => b.cpu - a.cpu)
        .slice(0, 2)
        .map((t) => `${Math.round(100 * t.cpu)} % (+${Math.round(100 * t.wait)} % waiting)`);
      rates.get(checkout)!.push(m.rate);
      costs.get(checkout)!.push(cost);
      process.stdout.write(
        `round ${round}  ${checkout}: ${Math.round(m.rate)} ${flow === 'cit' ? 'journeys' : 'req'}/s${flow === 'cit' ? ` (${tally.failed} failed)` : ''}, p99 ${m.p99.toFixed(1)} ms, ${m.errors} errors; gateway ${Math.round(usage.cpuPercent)} % CPU (${Math.round(cost)} µs a payment), busiest threads ${busiest.join(', ')}; generator ${Math.round(usage.generatorPercent)} %, steal ${Math.round(usage.stealPercent)} %\n`,
      );
    } finally {
      await gw.stop();
      removeDir(gw.dataDir);
      await database?.drop();
    }
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const [measure, unit] = fixedRate === undefined ? [rates, flow === 'cit' ? 'journeys/s' : 'req/s'] : [costs, 'µs a payment'];
const base = mean(measure.get(checkouts[0]!)!);
for (const [checkout, xs] of measure) {
  process.stdout.write(`${checkout}: mean ${Math.round(mean(xs))} ${unit}, ${(mean(xs) / base).toFixed(3)} × ${checkouts[0]} (rounds: ${xs.map(Math.round).join(', ')})\n`);
}
