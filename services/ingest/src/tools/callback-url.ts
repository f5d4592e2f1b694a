/**
 * SSRF guard for callback URLs, at submission: an http(s) URL without user info whose host is, or
 * resolves to, only public unicast addresses, unless the operator allow-listed the address
 * (PERRY_HUB_CALLBACK_ALLOWED_ADDRESSES). Loopback, private, link-local (cloud metadata at
 * 169.254.169.254 included), unique-local, multicast and reserved addresses are refused. The same
 * rule is applied again at connect time by the delivery (request-filtering-agent), which catches a
 * name that resolves differently later; this check only refuses early what it can see now.
 */
import { lookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';
import { HubError } from '@perry-hub/contracts';
import { AddressList } from '@perry-hub/runtime';

export interface CallbackPolicy {
  /** Addresses or CIDR ranges allowed although not public (e.g. `127.0.0.1` for the all-in-one). */
  readonly allowedAddresses: AddressList;
}

/** Public addresses only. */
export const NO_CALLBACK_EXCEPTIONS: CallbackPolicy = { allowedAddresses: AddressList.EMPTY };

/** Why an address may not be called back, or undefined when it may. */
export function refusedAddress(text: string, policy: CallbackPolicy): string | undefined {
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    address = ipaddr.process(text);
  } catch {
    return `${text} is not an address`;
  }
  if (policy.allowedAddresses.includes(text)) return undefined;
  const range = address.range();
  return range === 'unicast' ? undefined : `${text} is a ${range} address`;
}

/** Throws a 400 naming `callback_url` for a URL the hub will not call. */
export async function checkCallbackUrl(text: string, policy: CallbackPolicy): Promise<URL> {
  const bad = (why: string) => new HubError('BAD_REQUEST', `Invalid 'callback_url': ${why}`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('only http and https are allowed');
  if (url.username !== '' || url.password !== '') throw bad('user info is not allowed');
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (ipaddr.isValid(host)) {
    const why = refusedAddress(host, policy);
    if (why !== undefined) throw bad(`${why}; refused unless allow-listed (PERRY_HUB_CALLBACK_ALLOWED_ADDRESSES)`);
    return url;
  }
  let addresses: { address: string }[] = [];
  try {
    addresses = await lookup(host, { all: true });
  } catch {
    // Not resolvable now: the delivery resolves (and checks) again at connect time.
    return url;
  }
  for (const { address } of addresses) {
    const why = refusedAddress(address, policy);
    if (why !== undefined) {
      throw bad(`${host} resolves to ${why}; refused unless allow-listed (PERRY_HUB_CALLBACK_ALLOWED_ADDRESSES)`);
    }
  }
  return url;
}
