/**
 * The counted abuse limits: failed authentications and registrations per address, submissions
 * per address and per credential. Counted across instances (WindowCounters; submissions are
 * shared every few, see SUBMISSIONS_SHARED_EVERY). A counter that cannot be reached lets the
 * request through (logged): an outage of the limits must not become an outage of the hub.
 *
 * Failures are counted per address only, never per license or account: an attacker guessing
 * someone's key from elsewhere must not lock its owner out.
 */
import type { Logger } from '@perry-hub/runtime';
import type { WindowCounters } from './counters.js';
import { rateLimited } from './retry-after.js';

export interface AbuseSettings {
  selfHosted: boolean;
  authFailuresMax: number;
  authFailuresWindowMs: number;
  registerMaxPerHour: number;
  submissionsPerAddressMaxPerHour: number;
  submissionsPerLicenseMaxPerHour: number;
}

const HOUR_MS = 3_600_000;
/**
 * Submissions are added to the shared counters with every 4th an instance counts per address or
 * license: each instance lets at most 3 through that the others do not know of (README, Limits).
 */
export const SUBMISSIONS_SHARED_EVERY = 4;

export class AbuseLimits {
  constructor(
    private readonly counters: WindowCounters,
    private readonly settings: AbuseSettings,
    private readonly log: Logger,
  ) {}

  private async safely<T>(what: string, run: () => Promise<T>): Promise<T | undefined> {
    try {
      return await run();
    } catch (err) {
      this.log.warn({ err: (err as Error).message, limit: what }, 'rate-limit counter unavailable; not limiting');
      return undefined;
    }
  }

  /** 429 while `address` is over its failed-authentication limit. */
  async assertMayAuthenticate(address: string): Promise<void> {
    const { authFailuresMax: max, authFailuresWindowMs: windowMs } = this.settings;
    if (max === 0) return;
    const seen = await this.safely('auth-failures', () => this.counters.peek('authfail', address, windowMs));
    if (seen && seen.count >= max) {
      throw rateLimited(
        `Too many failed authentications from your address; try again in ${seen.retryAfterSecs} s`,
        seen.retryAfterSecs,
      );
    }
  }

  async recordAuthFailure(address: string): Promise<void> {
    const { authFailuresMax: max, authFailuresWindowMs: windowMs } = this.settings;
    if (max === 0) return;
    const seen = await this.safely('auth-failures', () => this.counters.hit('authfail', address, windowMs));
    if (seen?.count === max) this.log.warn({ address, windowMs }, 'address reached the failed-authentication limit');
  }

  private async count(
    scope: string,
    subject: string,
    max: number,
    message: (perHour: number) => string,
    shareEvery = 1,
  ) {
    if (max === 0 || this.settings.selfHosted) return;
    const seen = await this.safely(scope, () =>
      shareEvery > 1
        ? this.counters.hitShared(scope, subject, HOUR_MS, shareEvery)
        : this.counters.hit(scope, subject, HOUR_MS),
    );
    if (seen && seen.count > max) throw rateLimited(message(max), seen.retryAfterSecs);
  }

  countRegistration(address: string): Promise<void> {
    return this.count(
      'register',
      address,
      this.settings.registerMaxPerHour,
      (n) => `License registration limit reached (${n} per hour from one address)`,
    );
  }

  countSubmissionFrom(address: string): Promise<void> {
    return this.count(
      'submit-address',
      address,
      this.settings.submissionsPerAddressMaxPerHour,
      (n) => `Submission limit reached (${n} per hour from one address)`,
      SUBMISSIONS_SHARED_EVERY,
    );
  }

  /** Per license key or API token, presented (not necessarily valid): HTTP and NATS alike. */
  countSubmissionWith(credential: string): Promise<void> {
    return this.count(
      'submit-license',
      credential,
      this.settings.submissionsPerLicenseMaxPerHour,
      (n) => `Submission limit reached (${n} per hour for one license)`,
      SUBMISSIONS_SHARED_EVERY,
    );
  }
}
