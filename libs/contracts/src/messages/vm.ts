/**
 * The vm-controller's own messages: its `vm-status` endpoint (read by `GET /api/v1/status`, which
 * shows each pool as a `SignVmSummary`), the measurements it publishes on `<p>.metrics.vm` and the
 * alerts on `<p>.metrics.vm-alert`. The pool state itself (`VmPoolState`) lives with the other
 * signals in signals.ts.
 */
import Type, { type Static } from 'typebox';
import { defineEndpoint } from '../rpc.js';
import { VM_POWER_STATES, VmPoolState } from './signals.js';

export const VM_PROVIDERS = ['azure', 'command', 'none'] as const;
export type VmProviderKind = (typeof VM_PROVIDERS)[number];

export const VmStatus = Type.Object(
  {
    provider: Type.Enum(VM_PROVIDERS),
    /** One entry per configured pool, in configuration order. */
    pools: Type.Array(VmPoolState),
  },
  { additionalProperties: false },
);
export type VmStatus = Static<typeof VmStatus>;

/** One pool as `GET /api/v1/status` shows it, in the `sign_vms` field appended to the original's. */
export const SignVmSummary = Type.Object(
  {
    pool: Type.String(),
    capability: Type.String(),
    power: Type.Enum(VM_POWER_STATES),
    draining: Type.Boolean(),
    message: Type.String(),
  },
  { additionalProperties: false },
);
export type SignVmSummary = Static<typeof SignVmSummary>;

export const VmStatusRequest = Type.Object(
  {
    /**
     * Only pools a provider manages: with provider `none` the answer is `{ provider: 'none',
     * pools: [] }`, without reading the bucket (`GET /api/v1/status` shows no pools then, and
     * asks for every request it serves). Absent or false: every pool, as `GET /api/v1/vms` shows.
     */
    managedOnly: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type VmStatusRequest = Static<typeof VmStatusRequest>;

/** Served by every vm-controller instance (not only the lease holder): it reads the KV state. */
export const vmStatusEndpoint = defineEndpoint({
  service: 'vm-controller',
  name: 'vm-status',
  request: VmStatusRequest,
  response: VmStatus,
  timeoutMs: 2_000,
});

/**
 * `<p>.metrics.vm`: `demandToStartMs` is from the moment sign work (or a pre-warm hint) was
 * first seen waiting to the provider's start call; `bootMs` from that call to the first worker
 * of the pool's capability connecting.
 */
export const VmMetric = Type.Union([
  Type.Object({ pool: Type.String(), demandToStartMs: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
  Type.Object({ pool: Type.String(), bootMs: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
]);
export type VmMetric = Static<typeof VmMetric>;

export const VM_ALERT_CODES = ['VM_STUCK_STARTING'] as const;

/** `<p>.metrics.vm-alert`: something an operator should look at. */
export const VmAlert = Type.Object(
  {
    pool: Type.String(),
    code: Type.Enum(VM_ALERT_CODES),
    message: Type.String(),
    at: Type.Integer(),
  },
  { additionalProperties: false },
);
export type VmAlert = Static<typeof VmAlert>;
