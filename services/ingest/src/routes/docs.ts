/**
 * The OpenAPI document of every route, built from the routes' TypeBox schemas, at `/docs/json`
 * (and `/docs/yaml`), with Swagger UI at `/docs`. The UI's files come from its npm package: the
 * page works without internet access.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { HUB_VERSION } from '@perry-hub/contracts';

/**
 * The original hub's routes decode their bodies themselves (their wire shapes are the contract's
 * TypeBox schemas in libs/contracts, byte-compatible with the original): a Fastify body or
 * response schema would change how they validate and serialize. They get a summary here.
 */
const ORIGINAL_ROUTES: Readonly<Record<string, readonly [tag: string, summary: string]>> = {
  'GET /api/v1/status': [
    'status',
    'Queue length, connected workers, supported targets (the original shape; sign_vms appended)',
  ],
  'POST /api/v1/build': [
    'builds',
    'Submit a build: multipart manifest, credentials, license_key and tarball (tarball_b64 or a file part)',
  ],
  'POST /api/v1/license/register': ['licenses', 'Register a free license'],
  'POST /api/v1/license/verify': ['licenses', 'Check a license key'],
  'GET /api/v1/account': ['accounts', 'The account of an API token (Bearer)'],
  'POST /api/v1/account/create': ['accounts', 'Create an account (admin)'],
  'POST /api/v1/account/update': ['accounts', 'Change an account (admin)'],
  'GET /api/v1/admin/workers': ['operations', 'Connected workers in the original shape (admin)'],
  'POST /api/v1/admin/update-perry': ['operations', 'Tell idle workers to update the perry compiler (admin)'],
  'GET /api/v1/tarball/:jobId': ['workers', "A job's tarball, for its worker (per-job token)"],
  'POST /api/v1/artifact/upload/:jobId': ['workers', 'Upload a build artifact, from its worker (per-job token)'],
  'GET /api/v1/dl/:token': [
    'builds',
    'Download an artifact once (base64 for the CLI; raw bytes and Range for new clients)',
  ],
};

export function registerDocs(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const known = methods.map((m) => ORIGINAL_ROUTES[`${String(m)} ${route.url}`]).find(Boolean);
    if (!known) return;
    const schema = (route.schema ?? {}) as Record<string, unknown>;
    route.schema = { ...schema, tags: [known[0]], summary: (schema['summary'] as string | undefined) ?? known[1] };
  });
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
