/**
 * Bytes held before authentication. The CLI sends `license_key` after the tarball, so an upload
 * is stored before anyone knows who sent it; those bytes count against a per-address and a
 * total budget of this instance until the license is known (or the request ends). A request
 * that would pass either is refused at once, so unauthenticated clients cannot fill the disk.
 */
import { rateLimited } from './retry-after.js';
import type { HubError } from '@perry-hub/contracts';

/** Come back after this long: the uploads holding the budget are likely done by then. */
const RETRY_AFTER_SECS = 30;

export interface BudgetLimits {
  perAddressBytes: number;
  totalBytes: number;
}

export class PreauthBudget {
  private total = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(private readonly limits: BudgetLimits) {}

  /** The account of one request from `address`. */
  open(address: string): BudgetAccount {
    return new BudgetAccount(this, address);
  }

  get totalBytes(): number {
    return this.total;
  }

  /** @internal */
  take(address: string, bytes: number): HubError | undefined {
    const held = this.byAddress.get(address) ?? 0;
    if (held + bytes > this.limits.perAddressBytes) {
      return rateLimited(
        'Too much unauthenticated upload in progress from your address: send the credential first (Authorization header) or wait for your other uploads',
        RETRY_AFTER_SECS,
      );
    }
    if (this.total + bytes > this.limits.totalBytes) {
      return rateLimited('Too much unauthenticated upload in progress; try again shortly', RETRY_AFTER_SECS);
    }
    this.byAddress.set(address, held + bytes);
    this.total += bytes;
    return undefined;
  }

  /** @internal */
  give(address: string, bytes: number): void {
    const left = (this.byAddress.get(address) ?? 0) - bytes;
    if (left > 0) this.byAddress.set(address, left);
    else this.byAddress.delete(address);
    this.total -= bytes;
  }
}

export class BudgetAccount {
  private held = 0;
  private settled = false;

  constructor(
    private readonly budget: PreauthBudget,
    private readonly address: string,
  ) {}

  /** Count `bytes` more; throws the 429 when they do not fit. No-op once settled. */
  charge(bytes: number): void {
    if (this.settled || bytes === 0) return;
    const refused = this.budget.take(this.address, bytes);
    if (refused) throw refused;
    this.held += bytes;
  }

  /** The sender is known, or the request is over: give everything back. Idempotent. */
  settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.budget.give(this.address, this.held);
    this.held = 0;
  }
}
