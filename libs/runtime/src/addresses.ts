/**
 * Lists of IP addresses and CIDR ranges from configuration (trusted proxies, the callback
 * allow-list), parsed once when the configuration is loaded. Matching is node's BlockList, which
 * also matches an IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`) against IPv4 entries.
 */
import { BlockList, isIP } from 'node:net';
import Type from 'typebox';
import { parsedFromEnv } from './config.js';

export const ADDRESS_LIST_EXPECTED =
  'a comma-separated list of IP addresses or CIDR ranges (e.g. 127.0.0.1,10.0.0.0/8)';

/** A variable holding an AddressList, empty by default. */
export function addressListFromEnv(name: string, description: string) {
  return parsedFromEnv(name, Type.String({ default: '' }), {
    description,
    expected: ADDRESS_LIST_EXPECTED,
    parse: (text) => AddressList.parse(text),
  });
}

const MAX_PREFIX = { 4: 32, 6: 128 } as const;

/** The WHATWG URL host serializer gives one spelling per address (`0:0::1` is `::1`). */
function canonical(address: string, family: 4 | 6): string {
  return family === 4 ? new URL(`http://${address}/`).hostname : new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

function familyOf(address: string): 4 | 6 | undefined {
  // A zone index (`fe80::1%eth0`) names an interface of one host: it has no place in a list.
  const family = address.includes('%') ? 0 : isIP(address);
  return family === 4 || family === 6 ? family : undefined;
}

export class AddressList {
  static readonly EMPTY = new AddressList([], new BlockList());

  /** The entries in one spelling each: for a library that takes strings, and for the log. */
  readonly entries: readonly string[];
  readonly #blocks: BlockList;

  private constructor(entries: readonly string[], blocks: BlockList) {
    this.entries = entries;
    this.#blocks = blocks;
  }

  /**
   * Comma-separated addresses and CIDR ranges; empty items are skipped, so '' is the empty list.
   * Throws an Error naming every entry that is neither.
   */
  static parse(text: string): AddressList {
    const blocks = new BlockList();
    const entries: string[] = [];
    const bad: string[] = [];
    for (const item of text.split(',').map((s) => s.trim())) {
      if (item === '') continue;
      const slash = item.lastIndexOf('/');
      const address = slash < 0 ? item : item.slice(0, slash);
      const family = familyOf(address);
      const prefixText = slash < 0 ? undefined : item.slice(slash + 1);
      const prefix = prefixText === undefined ? undefined : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
      if (family === undefined || (prefix !== undefined && !(prefix <= MAX_PREFIX[family]))) {
        bad.push(JSON.stringify(item));
        continue;
      }
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (prefix === undefined) blocks.addAddress(address, type);
      else blocks.addSubnet(address, prefix, type);
      entries.push(prefix === undefined ? canonical(address, family) : `${canonical(address, family)}/${prefix}`);
    }
    if (bad.length > 0) {
      throw new Error(`${bad.join(', ')} ${bad.length === 1 ? 'is neither' : 'are neither'} an address nor a range`);
    }
    return new AddressList(entries, blocks);
  }

  get size(): number {
    return this.entries.length;
  }

  /** Whether `address` is listed or inside a listed range; false for anything not an address. */
  includes(address: string): boolean {
    const family = familyOf(address);
    if (family === undefined || this.entries.length === 0) return false;
    return this.#blocks.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }

  /** Logged as it would be configured. */
  toJSON(): string {
    return this.entries.join(',');
  }
}
