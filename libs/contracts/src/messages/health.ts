import Type, { type Static } from 'typebox';
import { SERVICE_NAMES } from '../services.js';
import { defineEndpoint } from '../rpc.js';

export const HealthRequest = Type.Object({}, { additionalProperties: false });
export type HealthRequest = Static<typeof HealthRequest>;

export const Health = Type.Object(
  {
    service: Type.Enum(SERVICE_NAMES),
    instanceId: Type.String({ description: 'Unique per process start' }),
    status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
    uptimeMs: Type.Integer({ minimum: 0 }),
    version: Type.String(),
    checks: Type.Record(Type.String(), Type.Union([Type.Literal('ok'), Type.String()]), {
      description: 'Dependency name to "ok" or the reason it is not',
    }),
  },
  { additionalProperties: false },
);
export type Health = Static<typeof Health>;

/** Every service answers `<p>.svc.<service>.health`; the endpoint spec is built per service. */
export function healthEndpoint(service: (typeof SERVICE_NAMES)[number]) {
  return defineEndpoint({ service, name: 'health', request: HealthRequest, response: Health, timeoutMs: 2_000 });
}

/**
 * An instance's liveness record in the instances bucket (key = instance id). Refreshed every
 * third of the instance TTL; deleted on an orderly stop, and by the next start of the same
 * all-in-one (which knows its predecessor died). An instance whose record expired or vanished is
 * dead: what it held (workers' sockets, their jobs) is released without waiting for silence.
 */
export const InstanceLiveness = Type.Object(
  {
    instanceId: Type.String(),
    service: Type.Enum(SERVICE_NAMES),
    startedAt: Type.Integer(),
    /** Epoch ms, on the writer's clock, after which readers may declare the instance dead. */
    expiresAt: Type.Integer(),
    /**
     * A worker-gateway's: the presence bucket's revision of its latest acknowledged write when
     * the record was written. What the record vouches for about its workers' entries holds for a
     * reader only once the reader's copy of presence has reached this revision.
     */
    presenceRevision: Type.Optional(Type.Integer({ minimum: 0 })),
    /**
     * A worker-gateway's: epoch ms on its clock before which every change to its workers'
     * presence entries had been acknowledged (at most `presenceRevision`) when the record was
     * written.
     */
    presenceCurrentAt: Type.Optional(Type.Integer()),
  },
  // Fields a later version adds are ignored, not a reason to ignore the instance.
  { additionalProperties: true },
);
export type InstanceLiveness = Static<typeof InstanceLiveness>;
