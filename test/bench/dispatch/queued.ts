/**
 * A deep queue: jobs for a target no worker serves (`visionos`), written straight into `builds`
 * while the hub is down. The scheduler rebuilds its queue from MySQL when it becomes leader, so
 * this is what it would find after a restart with that many builds waiting; it is also by far
 * the fastest honest way to get them there.
 */
import { randomUUID } from 'node:crypto';
import { openPool } from '@perry-hub/db';
import type { Infra } from './stack.js';

const ROWS_PER_INSERT = 1_000;
const LICENSES = 50;

export async function insertQueued(infra: Infra, count: number): Promise<number> {
  const db = openPool({
    dbHost: infra.db.host,
    dbPort: infra.db.port,
    dbUser: infra.db.user,
    dbPassword: infra.db.password,
    dbName: 'perry_hub',
    dbPoolSize: 2,
  });
  const t0 = performance.now();
  try {
    const manifest = JSON.stringify({
      app_name: 'Queued',
      bundle_id: 'com.example.queued',
      version: '1',
      entry: 'src/main.ts',
      targets: ['visionos'],
    });
    const now = Date.now();
    for (let start = 0; start < count; start += ROWS_PER_INSERT) {
      const rows: unknown[][] = [];
      for (let i = start; i < Math.min(count, start + ROWS_PER_INSERT); i++) {
        const pro = i % 2 === 0;
        const queuedAt = now - (count - i);
        rows.push([
          randomUUID(),
          `BENCH-QUEUED-${i % LICENSES}`,
          pro ? 'pro' : 'free',
          '["visionos"]',
          'queued',
          queuedAt,
          pro ? 10 : 1,
          0,
          'build',
          manifest,
          `tarballs/bench-${i}`,
          queuedAt,
        ]);
      }
      await db.query(
        `INSERT INTO builds (id, licenseKey, tier, targets, status, queuedAt, priority, attempt, stage, manifest,
           tarball_ref, updated_at) VALUES ?`,
        [rows],
      );
    }
    return performance.now() - t0;
  } finally {
    await db.end();
  }
}
