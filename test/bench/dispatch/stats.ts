/** Percentiles, the results table and what the machine is. */
import { cpus, loadavg, totalmem } from 'node:os';

export interface Summary {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank percentiles of a sample (milliseconds, or anything else). */
export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
  return { count: sorted.length, p50: at(50), p99: at(99), max: sorted[sorted.length - 1] ?? NaN };
}

export interface Row {
  readonly metric: string;
  readonly value: number;
  readonly baseline: number;
  readonly unit: string;
  /** The goal as printed, and how to check it (absent: informational row). */
  readonly goal?: { readonly text: string; readonly met: boolean };
  /** Free text after the row (sample counts, what the baseline is). */
  readonly note?: string;
}

const num = (n: number) => (Number.isFinite(n) ? (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(1)) : 'n/a');

export function table(rows: readonly Row[]): string {
  const header = ['metric', 'value', 'baseline', 'ratio', 'goal', 'meets goal'];
  const cells = rows.map((r) => [
    r.metric,
    `${num(r.value)} ${r.unit}`,
    `${num(r.baseline)} ${r.unit}`,
    Number.isFinite(r.value / r.baseline) && r.baseline !== 0 ? `${(r.value / r.baseline).toFixed(2)}x` : 'n/a',
    r.goal?.text ?? '-',
    r.goal ? (r.goal.met ? 'yes' : 'no') : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]) =>
    c.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
  const notes = rows.filter((r) => r.note).map((r) => `  ${r.metric}: ${r.note}`);
  return [...out, '', ...notes].join('\n');
}

export function machine(): string {
  const cpu = cpus();
  return [
    `machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM,`,
    `Node ${process.version}, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  ].join(' ');
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Poll until `check` holds; false after the deadline. */
export async function waitUpTo(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 50,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(everyMs);
  }
  return check();
}

/**
 * Run `fire(i)` at a steady rate for a while (open loop: a slow answer does not delay the next
 * start). Resolves when every started call has settled.
 */
export async function atRate(perSecond: number, seconds: number, fire: (i: number) => Promise<void>): Promise<void> {
  const total = Math.round(perSecond * seconds);
  const started = performance.now();
  const pending: Promise<void>[] = [];
  let i = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * perSecond) + 1);
      while (i < due) pending.push(fire(i++));
      if (i >= total) resolve();
      else setTimeout(tick, Math.max(0, started + (i * 1000) / perSecond - performance.now()));
    };
    tick();
  });
  await Promise.all(pending);
}
