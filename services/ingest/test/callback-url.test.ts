// The SSRF guard of callback URLs at submission: literal addresses and names resolving to
// loopback, private, link-local (cloud metadata) addresses are refused unless allow-listed.
import { describe, expect, it } from 'vitest';
import { HubError } from '@perry-hub/contracts';
import { AddressList } from '@perry-hub/runtime';
import { checkCallbackUrl, refusedAddress, type CallbackPolicy } from '../src/tools/callback-url.js';

const NONE: CallbackPolicy = { allowedAddresses: AddressList.EMPTY };
const allowing = (text: string): CallbackPolicy => ({ allowedAddresses: AddressList.parse(text) });

async function refusal(url: string, policy: CallbackPolicy = NONE): Promise<string> {
  return checkCallbackUrl(url, policy).then(
    () => 'allowed',
    (err: unknown) => (err instanceof HubError ? `${err.code} ${err.message}` : String(err)),
  );
}

describe('callback URL guard', () => {
  it.each([
    ['http://127.0.0.1:9000/artifact/1', /127\.0\.0\.1 is a loopback address/],
    ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is a linkLocal address/],
    ['http://[::1]/x', /::1 is a loopback address/],
    ['http://10.0.0.1/x', /10\.0\.0\.1 is a private address/],
    ['http://[::ffff:10.0.0.1]/x', /is a private address/],
    ['http://0.0.0.0/x', /unspecified/],
    ['http://localhost:8447/artifact/7', /localhost resolves to .* loopback address/],
    ['ftp://example.com/x', /only http and https/],
    ['http://user:pw@example.com/x', /user info/],
    ['not a url', /not a URL/],
  ])('refuses %s', async (url, why) => {
    const answer = await refusal(url);
    expect(answer).toMatch(/^BAD_REQUEST Invalid 'callback_url': /);
    expect(answer).toMatch(why);
  });

  it('allows public addresses, and what the operator allow-listed', async () => {
    expect(await refusal('https://93.184.215.14/artifact/1')).toBe('allowed');
    const loopback = allowing('127.0.0.1, ::1');
    expect(await refusal('http://127.0.0.1:9000/x', loopback)).toBe('allowed');
    expect(await refusal('http://[::1]:9000/x', loopback)).toBe('allowed');
    expect(await refusal('http://127.0.0.2/x', loopback)).toMatch(/loopback/);
    expect(await refusal('http://[::ffff:127.0.0.1]/x', loopback)).toBe('allowed');
    expect(await refusal('http://10.1.2.3/x', allowing('10.0.0.0/8'))).toBe('allowed');
    expect(refusedAddress('192.168.1.1', allowing('10.0.0.0/8'))).toMatch(/private/);
  });
});
