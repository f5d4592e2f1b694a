import { describe, expect, it } from 'vitest';
import { AddressList } from '../src/index.js';

describe('AddressList', () => {
  it('matches listed addresses and ranges, IPv4-mapped peers included, in one spelling each', () => {
    const list = AddressList.parse(' 127.0.0.1, 10.0.0.0/8,,0:0:0:0:0:0:0:1 ,fc00::/7,');
    expect(list.entries).toEqual(['127.0.0.1', '10.0.0.0/8', '::1', 'fc00::/7']);
    expect(JSON.stringify({ list })).toBe('{"list":"127.0.0.1,10.0.0.0/8,::1,fc00::/7"}');
    for (const yes of ['127.0.0.1', '::ffff:127.0.0.1', '10.200.3.4', '::ffff:10.1.1.1', '::1', 'fd12::5']) {
      expect(list.includes(yes), yes).toBe(true);
    }
    for (const no of ['127.0.0.2', '11.0.0.1', '::2', 'fe80::1', 'garbage', '', 'unknown']) {
      expect(list.includes(no), no).toBe(false);
    }
  });

  it('is empty for an empty text and matches nothing', () => {
    expect(AddressList.parse('').size).toBe(0);
    expect(AddressList.parse(' , ').includes('127.0.0.1')).toBe(false);
  });

  it('names every entry that is neither an address nor a range', () => {
    expect(() => AddressList.parse('garbage,,x')).toThrow('"garbage", "x" are neither an address nor a range');
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10/8', '10.0.0.0/8/8', 'fe80::1%eth0', 'true', '1']) {
      expect(() => AddressList.parse(`127.0.0.1,${bad}`), bad).toThrow(`"${bad}" is neither`);
    }
  });
});
