/**
 * The expected Perry version: PERRY_EXPECTED_VERSION, unless an admin set another through the
 * update-perry route. The admin's choice is kept in KV so that every gateway instance agrees and
 * a restart keeps it (the original held it in memory). It is watched, so a change made through
 * one instance applies to the hellos of all of them within milliseconds.
 *
 * It lives in the presence bucket under a key that is not a worker id (the gateway has no bucket
 * of its own in the topology); presence readers skip entries that are not WorkerPresence.
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { topologyNames } from '@perry-hub/contracts';
import { watchKv } from '@perry-hub/runtime';
import type { Logger } from 'pino';

export const EXPECTED_VERSION_KEY = 'settings.expected-perry-version';

export class ExpectedVersion {
  readonly #kv: KV;
  readonly #fallback: string;
  #stored = '';
  #stop: (() => void) | undefined;

  private constructor(kv: KV, fallback: string) {
    this.#kv = kv;
    this.#fallback = fallback;
  }

  static async open(
    nc: NatsConnection,
    config: { subjectPrefix: string; expectedPerryVersion: string },
    log: Logger,
  ): Promise<ExpectedVersion> {
    const kv = await new Kvm(nc).open(topologyNames(config.subjectPrefix).presenceBucket);
    const setting = new ExpectedVersion(kv, config.expectedPerryVersion);
    const entry = await kv.get(EXPECTED_VERSION_KEY);
    if (entry?.operation === 'PUT') setting.#stored = readValue(entry.string());
    const watch = await watchKv(kv, { key: EXPECTED_VERSION_KEY });
    setting.#stop = () => watch.stop();
    void (async () => {
      for await (const e of watch) setting.#stored = e.operation === 'PUT' ? readValue(e.string()) : '';
    })().catch((err: unknown) => log.warn({ err }, 'expected version watch ended'));
    return setting;
  }

  /** '' when no version is expected. */
  get current(): string {
    return this.#stored !== '' ? this.#stored : this.#fallback;
  }

  async set(version: string): Promise<void> {
    await this.#kv.put(EXPECTED_VERSION_KEY, JSON.stringify({ expectedPerryVersion: version }));
    this.#stored = version;
  }

  stop(): void {
    this.#stop?.();
  }
}

function readValue(text: string): string {
  try {
    const value = (JSON.parse(text) as { expectedPerryVersion?: unknown }).expectedPerryVersion;
    return typeof value === 'string' ? value : '';
  } catch {
    return '';
  }
}
