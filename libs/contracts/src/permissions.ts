/**
 * NATS permissions of every identity, derived from the bus declaration (bus.ts) and the topology
 * (topology.ts): adding a subject or an entry there changes the permissions, nothing else does.
 *
 * - A service may subscribe to its own endpoints (`<p>.svc.<service>.*`) and the NATS micro
 *   discovery subjects of its own micro service, publish to the endpoints it calls and to the core
 *   subjects it declares, and answer what it serves (`allow_responses`).
 * - JetStream API access covers exactly the service's own streams, consumers and buckets: what
 *   `ensureTopology` needs (INFO, CREATE, UPDATE), then per declared access. Never STREAM.DELETE.
 * - Each identity has a private inbox (`_INBOX.<p>.<identity>`, given to nats.js as
 *   `inboxPrefix`), so one service cannot read another's replies.
 * - A tool may only publish `TOOL_SUBJECTS` and its own `<p>.tools.<name>.*`, and read its own inbox.
 */
import { BUS_NEEDS } from './bus.js';
import { isServiceName, SERVICE_NAMES, type ServiceName } from './services.js';
import { subjects as makeSubjects, TOOL_SUBJECTS, token } from './subjects.js';
import { backingStream, topology, type TopologyEntry } from './topology.js';

/** An external tool's identity: one per tool, so tools cannot read each other's replies. */
export interface ToolIdentity {
  readonly tool: string;
}
export type NatsIdentity = ServiceName | ToolIdentity;

export interface NatsPermissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
  /** May publish to the reply subject of a request it received (it serves endpoints). */
  readonly allowResponses: boolean;
}

/**
 * Stands for every prefix: the permissions then use a wildcard wherever the prefix appears (a
 * whole token in subjects, stream and bucket names). Only for a server shared by many prefixes
 * such as the test suite's; a deployment uses its exact prefix.
 */
export const ANY_PREFIX = '*';

/** A valid prefix that stands in for ANY_PREFIX while deriving; no real prefix contains it. */
const SENTINEL = 'anyprefixsentinel';

export function identityName(who: NatsIdentity): string {
  return typeof who === 'string' ? who : `tool-${token(who.tool)}`;
}

/** The identity a name stands for (`scheduler`, `tool-<name>`); undefined when it is neither. */
export function identityFromName(name: string): NatsIdentity | undefined {
  if (isServiceName(name)) return name;
  const tool = /^tool-([A-Za-z0-9_-]+)$/.exec(name)?.[1];
  return tool === undefined ? undefined : { tool };
}

/** The nats.js `inboxPrefix` of an identity: its replies arrive only there. */
export function natsInboxPrefix(prefix: string, who: NatsIdentity): string {
  return `_INBOX.${makeSubjects(prefix).prefix}.${identityName(who)}`;
}

/** The JetStream API's subject prefix (no JetStream domain is used). */
export const JS_API_PREFIX = '$JS.API';
const API = JS_API_PREFIX;

/**
 * Sent by the server when a durable consumer's leader is elected (clustered JetStream only): its
 * owner pulls from the new leader at once (libs/runtime durable-pull.ts).
 */
export function consumerLeaderElectedSubject(stream: string, durable: string): string {
  return `$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.${stream}.${durable}`;
}

/** JetStream API subjects for one topology entry, by the access the service declared. */
function jetStreamSubjects(entry: TopologyEntry, access: readonly string[]): { pub: string[]; sub: string[] } {
  const ensure = (stream: string) => [
    `${API}.STREAM.INFO.${stream}`,
    `${API}.STREAM.CREATE.${stream}`,
    `${API}.STREAM.UPDATE.${stream}`,
  ];
  // Ordered (ephemeral) consumers, direct and stored message gets: reading a stream ad hoc. An
  // ordered consumer deletes its predecessor on reset, so DELETE is on ephemeral names as well.
  const read = (stream: string) => [
    `${API}.CONSUMER.CREATE.${stream}.>`,
    `${API}.CONSUMER.INFO.${stream}.*`,
    `${API}.CONSUMER.MSG.NEXT.${stream}.*`,
    `${API}.CONSUMER.DELETE.${stream}.*`,
    `${API}.STREAM.MSG.GET.${stream}`,
    `${API}.DIRECT.GET.${stream}`,
    `${API}.DIRECT.GET.${stream}.>`,
    // Flow-control replies of push consumers (KV watchers).
    `$JS.FC.${stream}.>`,
  ];
  const purge = (stream: string) => [`${API}.STREAM.PURGE.${stream}`];
  const check = (stream: string) => [`${API}.STREAM.MSG.GET.${stream}`, ...purge(stream)];
  switch (entry.kind) {
    case 'stream':
      return {
        pub: [
          ...ensure(entry.name),
          ...(access.includes('read') ? read(entry.name) : []),
          ...(access.includes('purge') ? purge(entry.name) : []),
          ...(access.includes('check') ? check(entry.name) : []),
        ],
        sub: [],
      };
    case 'consumer': {
      const at = `${entry.stream}.${entry.durable}`;
      return {
        pub: [
          `${API}.CONSUMER.INFO.${at}`,
          `${API}.CONSUMER.CREATE.${at}`,
          `${API}.CONSUMER.CREATE.${at}.>`,
          `${API}.CONSUMER.MSG.NEXT.${at}`,
          // Its owner creates it again when its stream fell behind it (work-queue.ts).
          `${API}.CONSUMER.DELETE.${at}`,
          `$JS.ACK.${at}.>`,
        ],
        sub: [consumerLeaderElectedSubject(entry.stream, entry.durable)],
      };
    }
    case 'kv': {
      const stream = backingStream(entry)!;
      return {
        pub: [
          ...ensure(stream),
          ...(access.includes('read') ? read(stream) : []),
          ...(access.includes('write') ? [`$KV.${entry.bucket}.>`] : []),
        ],
        sub: [],
      };
    }
    case 'obj': {
      const stream = backingStream(entry)!;
      return {
        pub: [
          ...ensure(stream),
          ...(access.includes('read') ? read(stream) : []),
          ...(access.includes('write') ? [`$O.${entry.bucket}.>`, ...purge(stream)] : []),
        ],
        sub: [],
      };
    }
  }
}

function servicePermissions(prefix: string, service: ServiceName): NatsPermissions {
  const s = makeSubjects(prefix);
  const needs = BUS_NEEDS[service];
  const micro = `perry-hub-${service}`;
  const publish = [
    ...needs.calls.map((spec) => s.endpoint(spec.service, spec.name)),
    ...needs.publishes.map((pattern) => pattern(s)),
  ];
  const subscribe = [
    `${s.serviceGroup(service)}.*`,
    '$SRV.*',
    `$SRV.*.${micro}`,
    `$SRV.*.${micro}.*`,
    `${natsInboxPrefix(prefix, service)}.>`,
    ...needs.subscribes.map((pattern) => pattern(s)),
  ];
  const entries = topology(prefix).flatMap((entry) => {
    const access = entry.usedBy[service];
    return access === undefined ? [] : [jetStreamSubjects(entry, access)];
  });
  if (entries.length > 0) publish.push(`${API}.INFO`);
  for (const e of entries) {
    publish.push(...e.pub);
    subscribe.push(...e.sub);
  }
  return { publish: unique(publish), subscribe: unique(subscribe), allowResponses: true };
}

function toolPermissions(prefix: string, who: ToolIdentity): NatsPermissions {
  const s = makeSubjects(prefix);
  return {
    // Its own API only: `<p>.tools.<name>.*` tells the ingest who asks (nats-server passes no
    // user identity along with a message).
    publish: [...TOOL_SUBJECTS.map((key) => s[key]), s.toolOps(who.tool)],
    subscribe: [`${natsInboxPrefix(prefix, who)}.>`],
    allowResponses: false,
  };
}

/** Replaces every token naming the sentinel prefix (a subject, stream or bucket) with `*`. */
function widen(subject: string): string {
  return subject
    .split('.')
    .map((t) => (t.toLowerCase().includes(SENTINEL) ? '*' : t))
    .join('.');
}

export function natsPermissions(prefix: string, who: NatsIdentity): NatsPermissions {
  const exact = prefix === ANY_PREFIX ? SENTINEL : prefix;
  const p = typeof who === 'string' ? servicePermissions(exact, who) : toolPermissions(exact, who);
  if (prefix !== ANY_PREFIX) return p;
  return { ...p, publish: unique(p.publish.map(widen)), subscribe: unique(p.subscribe.map(widen)) };
}

/** Every service's permissions, in start order. */
export function servicePermissionSets(prefix: string): ReadonlyMap<ServiceName, NatsPermissions> {
  return new Map(SERVICE_NAMES.map((name) => [name, natsPermissions(prefix, name)]));
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

/** One user of the server's account: an NKEY public key and what it may do. */
export interface NatsNkeyUser {
  readonly nkey: string;
  readonly permissions: NatsPermissions;
}

/**
 * The server-side users for identities' public keys (by identity name: `scheduler`,
 * `tool-<name>`), each with the permissions derived for the prefix (ANY_PREFIX on a server shared
 * by many prefixes). An unknown name is a TypeError. In the order of the names, so that the same
 * identities always render the same config, however they were gathered.
 */
export function natsUsers(prefix: string, publicKeys: ReadonlyMap<string, string>): NatsNkeyUser[] {
  const byName = [...publicKeys].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return byName.map(([name, nkey]) => {
    const who = identityFromName(name);
    if (who === undefined) throw new TypeError(`NATS identity "${name}" is neither a service nor tool-<name>`);
    return { nkey, permissions: natsPermissions(prefix, who) };
  });
}
