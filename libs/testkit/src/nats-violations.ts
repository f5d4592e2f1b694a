/**
 * A permissions violation by a service user means the bus declaration (libs/contracts bus.ts,
 * topology.ts) misses something the code does: the service would fail in production. Tests fail
 * loudly on it: every test nats-server's log is scanned after the test file (see setup.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { TEST_TOOL, testIdentityOf } from './nats-auth.js';

const watched = new Set<string>();
const recorded: string[] = [];

/** nats-server 2.10: `Publish Violation - Nkey "U...", Subject "..."` (or Subscription). */
const VIOLATION = /(Publish|Subscription) Violation - (?:Nkey|User) "([^"]+)"(.*)$/;

/**
 * A publish to an inbox is only ever the answer to a request, allowed by `allow_responses`
 * rather than declared; the server refuses it when the request came before a nats-server
 * restart (the requester then retries). Such refusals say nothing about the declaration.
 */
const RESPONSE = /Publish Violation.*Subject "_INBOX\./;

/**
 * Deliberate attacks by the tool identity are the tests' own business. With `services` (public
 * key -> service name, for a server with users of its own), only those users' violations count.
 */
function serviceViolations(logText: string, services?: ReadonlyMap<string, string>): string[] {
  return logText.split('\n').flatMap((line) => {
    const m = VIOLATION.exec(line);
    if (!m || RESPONSE.test(line)) return [];
    if (services && !services.has(m[2]!)) return [];
    const who = services?.get(m[2]!) ?? testIdentityOf(m[2]!) ?? m[2]!;
    return who === TEST_TOOL ? [] : [`${who}: ${m[1]} Violation${m[3]}`];
  });
}

/** Scan this log when the test file ends (the shared server runs until the process exits). */
export function watchNatsLog(file: string): void {
  watched.add(file);
}

/**
 * Scan this log now (an isolated server's, before its directory is removed). `services`: for a
 * server whose users are not the test kit's (the all-in-one's own), their public keys by name.
 */
export function recordNatsLog(file: string, services?: ReadonlyMap<string, string>): void {
  if (existsSync(file)) recorded.push(...serviceViolations(readFileSync(file, 'utf8'), services));
}

/** Every service permissions violation so far; the test file fails if there is any. */
export function natsPermissionViolations(): string[] {
  const found = [...recorded];
  for (const file of watched) if (existsSync(file)) found.push(...serviceViolations(readFileSync(file, 'utf8')));
  return [...new Set(found)];
}
