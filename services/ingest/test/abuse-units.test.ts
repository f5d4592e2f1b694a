// The pure parts of the abuse limits: how addresses are counted and the in-flight byte budget.
import { describe, expect, it } from 'vitest';
import type { HubError } from '@perry-hub/contracts';
import { addressKey } from '../src/abuse/address.js';
import { PreauthBudget } from '../src/abuse/budget.js';
import { retryAfterSecs } from '../src/abuse/retry-after.js';

describe('addressKey', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['::ffff:cb00:7107', '203.0.113.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff::1', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002::', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
  ])('%s counts as %s', (ip, key) => {
    expect(addressKey(ip)).toBe(key);
  });

  it('two hosts of one /64 are one address; neighbouring /64s are not', () => {
    expect(addressKey('2001:db8:a:b::1')).toBe(addressKey('2001:db8:a:b:dead:beef:0:2'));
    expect(addressKey('2001:db8:a:b::1')).not.toBe(addressKey('2001:db8:a:c::1'));
  });
});

describe('PreauthBudget', () => {
  const refusal = (run: () => void) => {
    try {
      run();
    } catch (err) {
      return err as HubError;
    }
    return undefined;
  };

  it('refuses past the per-address budget with a 429 and Retry-After, other addresses unaffected', () => {
    const budget = new PreauthBudget({ perAddressBytes: 100, totalBytes: 1000 });
    const a1 = budget.open('a');
    const a2 = budget.open('a');
    a1.charge(60);
    const err = refusal(() => a2.charge(41));
    expect(err?.code).toBe('RATE_LIMITED');
    expect(err?.status).toBe(429);
    expect(retryAfterSecs(err)).toBeGreaterThan(0);
    expect(refusal(() => budget.open('b').charge(100))).toBeUndefined();
    expect(budget.totalBytes).toBe(160);
  });

  it('refuses past the total budget', () => {
    const budget = new PreauthBudget({ perAddressBytes: 100, totalBytes: 150 });
    budget.open('a').charge(100);
    expect(refusal(() => budget.open('b').charge(51))?.code).toBe('RATE_LIMITED');
  });

  it('settling gives the bytes back once, and later charges are free', () => {
    const budget = new PreauthBudget({ perAddressBytes: 100, totalBytes: 100 });
    const account = budget.open('a');
    account.charge(100);
    account.settle();
    account.settle();
    expect(budget.totalBytes).toBe(0);
    account.charge(1000);
    expect(budget.totalBytes).toBe(0);
    budget.open('a').charge(100);
    expect(budget.totalBytes).toBe(100);
  });
});
