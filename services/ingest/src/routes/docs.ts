/**
 * The OpenAPI document of every route, built from the routes' TypeBox schemas, at `/docs/json`
 * (and `/docs/yaml`), with Swagger UI at `/docs`. The UI's files come from its npm package: the
 * page works without internet access.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { HUB_VERSION } from '@perry-hub/contracts';

export function registerDocs(app: FastifyInstance): void {
  void app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Perry Hub HTTP API',
        version: HUB_VERSION,
        description:
          'Build submission, status, licenses and accounts (the original hub’s routes, unchanged), ' +
          'transfers for workers, and the jobs and operations API. Errors: {"error":{"code","message"}}.',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'The admin secret, an account API token, or (jobs API) a license key',
          },
        },
      },
    },
  });
  void app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
}
