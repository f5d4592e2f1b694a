/**
 * Rendering and checking nats-server configuration text.
 *
 * Users always live inside one named account with JetStream enabled, never in a top-level
 * `authorization {}` block: beside `accounts {}` such a block let clients in without credentials
 * (CVE-2023-47090, nats-server before 2.10.4), and any config the hub renders or is given is
 * checked for that shape.
 */
import { LocalStackError } from './errors.js';

export interface NatsUserPermissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
  readonly allowResponses: boolean;
}

/** A user of the hub's account: an NKEY public key (preferred) or a user name and password. */
export type NatsUser =
  | { readonly nkey: string; readonly permissions?: NatsUserPermissions }
  | { readonly user: string; readonly password: string; readonly permissions?: NatsUserPermissions };

export const HUB_ACCOUNT = 'HUB';

const q = (value: string) => JSON.stringify(value);
const list = (values: readonly string[]) => `[${values.map(q).join(', ')}]`;

function renderUser(u: NatsUser, indent: string): string {
  const who = 'nkey' in u ? `nkey: ${q(u.nkey)}` : `user: ${q(u.user)}, password: ${q(u.password)}`;
  if (!u.permissions) return `${indent}{ ${who} }`;
  const p = u.permissions;
  return [
    `${indent}{`,
    `${indent}  ${who}`,
    `${indent}  permissions: {`,
    `${indent}    publish: { allow: ${list(p.publish)} }`,
    `${indent}    subscribe: { allow: ${list(p.subscribe)} }`,
    ...(p.allowResponses ? [`${indent}    allow_responses: true`] : []),
    `${indent}  }`,
    `${indent}}`,
  ].join('\n');
}

/** The `accounts {}` block holding every user in the hub's account. */
export function renderNatsAccounts(users: readonly NatsUser[]): string {
  const config = [
    'accounts {',
    `  ${HUB_ACCOUNT}: {`,
    '    jetstream: enabled',
    '    users: [',
    users.map((u) => renderUser(u, '      ')).join(',\n'),
    '    ]',
    '  }',
    '}',
    '',
  ].join('\n');
  assertSafeNatsConfig(config);
  return config;
}

/** Top-level keys of a nats-server config (string-, comment- and nesting-aware). */
export function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let i = 0;
  let atKeyPosition = true;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '#' || (c === '/' && text[i + 1] === '/')) {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === '"' || c === "'") {
      const end = text.indexOf(c, i + 1);
      i = end < 0 ? text.length : end + 1;
      atKeyPosition = false;
      continue;
    }
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    if (c === '\n' || c === ',' || c === '}' || c === '{') atKeyPosition = true;
    if (depth === 0 && atKeyPosition && /[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(text.slice(i))!;
      keys.push(m[0].toLowerCase());
      i += m[0].length;
      atKeyPosition = false;
      continue;
    }
    i++;
  }
  return keys;
}

/** Refuses a config whose top level has an `authorization` block beside `accounts`. */
export function assertSafeNatsConfig(text: string): void {
  const keys = topLevelKeys(text);
  if (keys.includes('authorization') && keys.includes('accounts')) {
    throw new LocalStackError(
      'UNSAFE_CONFIG',
      'nats-server config has a top-level authorization {} block beside accounts {}: put every user inside ' +
        'a named account (a top-level block there lets clients in without credentials on some versions)',
    );
  }
}
