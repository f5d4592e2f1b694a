/**
 * `/healthz`, `/readyz` and `/metrics` on the public HTTP port, for every service of this process
 * (the all-in-one: all six; an ingest run alone: itself). `/readyz` answers 503 with the failing
 * checks while NATS is down, the topology is not ensured, MySQL does not answer or a service's own
 * loop is not running, so a load balancer stops sending traffic to it.
 */
import type { FastifyPluginAsync } from 'fastify';
import Type from 'typebox';
import type { ProcessOps } from '@perry-hub/runtime';

const Readiness = Type.Object(
  {
    ready: Type.Boolean(),
    checks: Type.Record(Type.String(), Type.String(), { description: '"ok", or why not, per <service>.<check>' }),
  },
  { additionalProperties: false },
);

export function opsRoutes(ops: ProcessOps): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/healthz',
      {
        schema: {
          summary: 'The process is alive and answering',
          tags: ['operations'],
          response: {
            200: Type.Object(
              { status: Type.Literal('ok'), uptime_secs: Type.Integer() },
              { additionalProperties: false },
            ),
          },
        },
      },
      async () => ops.health(),
    );
    app.get(
      '/readyz',
      {
        schema: {
          summary: 'Every service of the process is connected and running (503 with the failing checks otherwise)',
          tags: ['operations'],
          response: { 200: Readiness, 503: Readiness },
        },
      },
      async (_request, reply) => {
        const readiness = await ops.readiness();
        return reply.status(readiness.ready ? 200 : 503).send(readiness);
      },
    );
    app.get(
      '/metrics',
      {
        schema: {
          summary: 'Prometheus metrics of every service of the process (text exposition format)',
          tags: ['operations'],
          produces: ['text/plain'],
          response: { 200: Type.String() },
        },
      },
      async (_request, reply) => {
        const text = await ops.metrics.text();
        return reply.type(ops.metrics.contentType).send(text);
      },
    );
  };
}
