import type { Measurement } from './load.js';

export interface Row {
  run: string;
  db: string;
  load: string;
  unit: string;
  m?: Measurement;
  cpuPercent?: number;
  othersPercent?: number;
  stealPercent?: number;
  /** PostgreSQL backends serving the run. */
  dbCpuPercent?: number;
  /** The load generator (this process). */
  generatorPercent?: number;
  rssBytes?: number;
  /** Payments (or commits) per fsync; null when fsyncs could not be counted. */
  perFsync?: number | null;
  vsA?: number;
  vsB?: number;
  /** Why the row has no figures (feature not there yet, database unreachable, failure). */
  skipped?: string;
  note?: string;
}

const fixed = (n: number | undefined, digits: number) => (n === undefined || Number.isNaN(n) ? '' : n.toFixed(digits));
const whole = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '' : Math.round(n).toLocaleString('en-US'));
const ms = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '' : n < 10 ? n.toFixed(2) : n.toFixed(1));

export function table(header: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ') + ' |';
  const rule = '|' + widths.map((w, i) => (rightAligned.has(i) ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|';
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** The main table; rows without figures say why on their own line under it. */
export function mainTable(rows: Row[]): string {
  const header = ['run', 'db', 'load', 'rate', 'unit', 'p50 ms', 'p99 ms', 'p99.9 ms', 'errors', 'CPU %', 'db CPU %', 'RSS MB', 'per fsync', '÷A', '÷B', 'gen CPU %', 'other CPU %', 'steal %'];
  const cells = rows
    .filter((r) => !r.skipped)
    .map((r) => [
      r.run,
      r.db,
      r.load,
      whole(r.m?.rate),
      r.unit,
      ms(r.m?.p50),
      ms(r.m?.p99),
      ms(r.m?.p999),
      r.m ? String(r.m.errors) : '',
      fixed(r.cpuPercent, 0),
      fixed(r.dbCpuPercent, 0),
      r.rssBytes === undefined ? '' : fixed(r.rssBytes / 1048576, 0),
      r.perFsync === undefined ? '' : r.perFsync === null ? 'n/a' : fixed(r.perFsync, 2),
      fixed(r.vsA, 3),
      fixed(r.vsB, 2),
      fixed(r.generatorPercent, 0),
      fixed(r.othersPercent, 0),
      fixed(r.stealPercent, 0),
    ]);
  // The same remark for several storages is printed once, naming them all.
  const remarks = new Map<string, string[]>();
  for (const r of rows.filter((x) => x.skipped || x.note)) {
    const key = `${r.run}\u0000${r.skipped ? `not measured: ${r.skipped}` : r.note}`;
    remarks.set(key, [...(remarks.get(key) ?? []), r.db]);
  }
  const notes = [...remarks].map(([key, dbs]) => {
    const [run, text] = key.split('\u0000');
    return `- ${run} (${dbs.join(', ')}): ${text}`;
  });
  const busy = rows.filter((r) => (r.othersPercent ?? 0) > 20);
  if (busy.length) {
    notes.push(`- WARNING: other processes used more than 20 % of a core during ${busy.length} run(s) (column "other CPU %"): those figures are low and noisy; rerun on a quiet machine`);
  }
  const stolen = rows.filter((r) => (r.stealPercent ?? 0) > 20);
  if (stolen.length) {
    notes.push(`- WARNING: the hypervisor held back more than 20 % of a core during ${stolen.length} run(s) (column "steal %"): this virtual machine's CPUs were given to other guests, so those figures are low and noisy; compare ratios within a run, or rerun when the host is quieter`);
  }
  return table(header, cells, new Set([3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17])) + (notes.length ? '\n\n' + notes.join('\n') : '');
}

export const format = { fixed, whole, ms };
