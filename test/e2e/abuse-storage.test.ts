// Disk-filling attacks that used to succeed, each run while a real build goes through the hub:
// parallel unauthenticated uploads (the CLI sends license_key after the tarball, so the tarball
// is stored before anyone knows who sent it) and a full blobs bucket.

import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect } from 'vitest';
import { topologyNames } from '@perry-hub/contracts';
import { connectTestNats, test } from '@perry-hub/testkit';
import { perryPublish } from '../support/perry-cli.js';
import { CREDENTIALS, MANIFEST } from '../support/test-hub.js';
import {
  TRUST_LOOPBACK_PROXY,
  buildHead,
  cliPrelude,
  rawRequest,
  tarballBase64,
  type RawExchange,
} from './abuse-kit.js';
import { withHub, type Scenario } from './dispatch-kit.js';

const MiB = 1024 * 1024;
const PER_ADDRESS = 20 * MiB;
const TOTAL = 40 * MiB;
/** Decoded tarball of each attacker: 8 MiB of base64 on the wire. */
const TARBALL_BYTES = 6 * MiB;
const WIRE_BYTES = (TARBALL_BYTES / 3) * 4;

/** Bytes in the blobs bucket's stream: chunks of finished and of still-streaming uploads. */
async function bucketBytes(natsUrl: string, prefix: string): Promise<number> {
  const nc = await connectTestNats(natsUrl);
  try {
    const info = await (await jetstreamManager(nc)).streams.info(`OBJ_${topologyNames(prefix).blobsBucket}`);
    return info.state.bytes;
  } finally {
    await nc.close();
  }
}

interface Attacker {
  exchange: RawExchange;
  /** Resolves when the whole tarball was handed to the socket, or the hub answered first. */
  done: Promise<void>;
}

/** An upload that sends the manifest and a whole tarball, then stalls before license_key. */
function stalledUpload(url: string, from: string): Attacker {
  const boundary = `attack${Math.random().toString(16).slice(2)}`;
  const exchange = rawRequest(url, buildHead(url, from, { 'content-length': WIRE_BYTES + 64 * 1024 }, boundary));
  const done = (async () => {
    if (!(await exchange.write(cliPrelude(boundary, ['linux'])))) return;
    for (const chunk of tarballBase64(TARBALL_BYTES)) if (!(await exchange.write(chunk))) return;
  })();
  return { exchange, done };
}

async function attack(s: Scenario, natsUrl: string, prefix: string, addresses: string[], budget: number) {
  // One after the other, each holding on once its tarball is sent: the budget's first comers stay.
  const attackers: Attacker[] = [];
  for (const from of addresses) {
    const attacker = stalledUpload(s.hub.url, from);
    attackers.push(attacker);
    await attacker.done;
  }
  // Let the hub read what the sockets hold, then look: nothing more is coming.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const stored = await bucketBytes(natsUrl, prefix);
  const answers = await Promise.all(
    attackers.map((a) =>
      Promise.race([
        a.exchange.answered,
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 200)),
      ]),
    ),
  );
  return { attackers, stored, answers, fits: Math.floor(budget / WIRE_BYTES) };
}

describe('upload budgets and storage limits, while a real build runs', () => {
  test('8 parallel unauthenticated uploads are held to the budget: the excess gets 429 at once', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const env = {
      ...TRUST_LOOPBACK_PROXY,
      PERRY_HUB_PREAUTH_BYTES_PER_ADDRESS: String(PER_ADDRESS),
      PERRY_HUB_PREAUTH_BYTES_TOTAL: String(TOTAL),
      // The stalled uploads are the point here: the slow-body cut would free the budget for them.
      PERRY_HUB_MIN_BODY_BYTES_PER_SEC: '0',
    };
    await withHub({ natsUrl, prefix, database }, env, async (s) => {
      await s.worker('linux');
      for (const [addresses, budget] of [
        [Array<string>(8).fill('203.0.113.50'), PER_ADDRESS],
        [Array.from({ length: 8 }, (_, i) => `198.51.100.${i + 1}`), TOTAL],
      ] as const) {
        const { attackers, stored, answers, fits } = await attack(s, natsUrl, prefix, [...addresses], budget);
        const refused = answers.filter((a) => a !== undefined);
        // Old hub: all 8 stored in full (48 MiB), none refused.
        expect(refused.length).toBeGreaterThanOrEqual(8 - fits);
        // The first comers are held (and stored) while they wait: what the bucket holds is theirs.
        expect(refused.length).toBeLessThan(8);
        expect(stored).toBeGreaterThan(0);
        for (const a of refused) {
          expect(a.status).toBe(429);
          expect(JSON.parse(a.text).error.code).toBe('RATE_LIMITED');
        }
        expect(stored).toBeLessThanOrEqual(budget);
        // Meanwhile a real CLI (another address, license_key after its tarball) is served.
        const result = await s.publish(['linux'], { licenseKey: await s.hub.registerLicense() }).result;
        expect(result.exitCode).toBe(0);
        for (const a of attackers) a.exchange.destroy();
        await Promise.all(attackers.map((a) => a.exchange.closed));
      }
    });
  });

  test('a full blobs bucket answers 507 in the envelope, and the hub keeps serving', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, { PERRY_HUB_BLOBS_MAX_BYTES: String(8 * MiB) }, async (s) => {
      await s.worker('linux');
      const big = Buffer.alloc(12 * MiB, 7);
      big.set([0x1f, 0x8b, 0x08], 0);
      const refused = await perryPublish({
        server: s.hub.url,
        manifest: { ...MANIFEST, targets: ['linux'] },
        credentials: CREDENTIALS,
        tarball: big,
        licenseKey: await s.hub.registerLicense(),
        timeoutMs: 30_000,
      });
      expect(refused.httpStatus).toBe(507);
      expect(JSON.parse(refused.httpBody)).toEqual({
        error: { code: 'INSUFFICIENT_STORAGE', message: 'The hub is out of storage space; try again later' },
      });
      // The refused upload's chunks are gone again, so a normal build fits.
      expect(await bucketBytes(natsUrl, prefix)).toBeLessThan(1 * MiB);
      const result = await s.publish(['linux'], { licenseKey: await s.hub.registerLicense() }).result;
      expect(result.reason).toBe('Ready');
      expect(result.exitCode).toBe(0);
    });
  });
});
