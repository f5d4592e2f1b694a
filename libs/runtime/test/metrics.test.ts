import { describe, expect, it } from 'vitest';
import { HubMetrics } from '../src/index.js';

/** One sample's value from the text exposition, by its whole name. */
function figure(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`${name} is not in the scrape`);
  return Number(line.slice(name.length + 1));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('HubMetrics event-loop lag', () => {
  it('reads how late the samples were, not the interval between them; a stall shows once, then the window starts again', async () => {
    const sampleMs = 50;
    const metrics = new HubMetrics({ eventLoopSampleMs: sampleMs });
    await metrics.text(); // the window starts here

    // A quiet loop: 10 samples, none nearly an interval late (the raw histogram reads 0.05 s for each).
    await sleep(sampleMs * 10);
    const quiet = await metrics.text();
    expect(figure(quiet, 'nodejs_eventloop_lag_min_seconds')).toBeLessThan(sampleMs / 1e3 / 2);
    expect(figure(quiet, 'nodejs_eventloop_lag_p50_seconds')).toBeLessThan(sampleMs / 1e3 / 2);

    // The loop held for 300 ms: the sample due in it fires at least 250 ms late. (Not right after
    // a scrape: Node's histogram starts measuring again only at the first sample after a reset.)
    await sleep(sampleMs * 3);
    const until = Date.now() + 300;
    while (Date.now() < until) {
      // a synchronous stall
    }
    await sleep(sampleMs * 3);
    const stalled = await metrics.text();
    expect(figure(stalled, 'nodejs_eventloop_lag_max_seconds')).toBeGreaterThanOrEqual(0.25);
    expect(figure(stalled, 'nodejs_eventloop_lag_max_seconds')).toBeGreaterThanOrEqual(
      figure(stalled, 'nodejs_eventloop_lag_p50_seconds'),
    );

    // The stall belongs to the window it happened in.
    await sleep(sampleMs * 4);
    const after = await metrics.text();
    expect(figure(after, 'nodejs_eventloop_lag_max_seconds')).toBeLessThan(0.25);
    // Each figure is exposed once, as prom-client's other defaults still are.
    expect(after.match(/^nodejs_eventloop_lag_max_seconds /gm)).toHaveLength(1);
    expect(after).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(after).toMatch(/^process_cpu_user_seconds_total /m);
  });
});
