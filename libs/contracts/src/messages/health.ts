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
