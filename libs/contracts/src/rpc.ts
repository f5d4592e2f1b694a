/**
 * Request/reply endpoints as data. Each endpoint names its service, its subject token and the
 * schemas of its request and response, so the serving side and every caller validate the same
 * shapes. Replies travel in one envelope: `{ok:true,result}` or `{ok:false,error}`.
 */
import Type, { type Static, type TSchema } from 'typebox';
import type { ServiceName } from './services.js';
import { ERROR_CODES } from './errors.js';

export interface EndpointSpec<Req extends TSchema = TSchema, Res extends TSchema = TSchema> {
  readonly service: ServiceName;
  readonly name: string;
  readonly request: Req;
  readonly response: Res;
  /** How long a caller waits for a reply before giving up with UPSTREAM_TIMEOUT. */
  readonly timeoutMs: number;
}

export function defineEndpoint<Req extends TSchema, Res extends TSchema>(
  spec: EndpointSpec<Req, Res>,
): EndpointSpec<Req, Res> {
  return spec;
}

export type RequestOf<E> = E extends EndpointSpec<infer Req, TSchema> ? Static<Req> : never;
export type ResponseOf<E> = E extends EndpointSpec<TSchema, infer Res> ? Static<Res> : never;

export const RpcError = Type.Object(
  {
    code: Type.Enum(ERROR_CODES),
    message: Type.String(),
    retry: Type.Optional(Type.Enum(['never', 'retry', 'retry-later'])),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);
export type RpcError = Static<typeof RpcError>;

export const RpcReply = Type.Union([
  Type.Object({ ok: Type.Literal(true), result: Type.Unknown() }, { additionalProperties: false }),
  Type.Object({ ok: Type.Literal(false), error: RpcError }, { additionalProperties: false }),
]);
export type RpcReply = Static<typeof RpcReply>;
