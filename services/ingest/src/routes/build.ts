/**
 * `POST /api/v1/build`: the CLI's text-only multipart (or a binary `tarball` part), streamed into
 * the intake. Checks that need no body run before any of it is read.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { HubError, IDEMPOTENCY_KEY_PATTERN, type BuildAccepted } from '@perry-hub/contracts';
import { bearerToken } from '../auth.js';
import { Submission, type IntakeDeps } from '../intake.js';
import { base64Length, MAX_UPLOAD_BYTES, tarballTooLarge } from '../limits.js';
import { formOverheadBytes, readBuildForm, registerMultipart } from '../multipart.js';
import type { PreauthBudget } from '../abuse/budget.js';
import { clientAddress } from '../abuse/hooks.js';

export interface BuildRouteOptions {
  maxFieldBytes: number;
  budget: PreauthBudget;
}

const IDEMPOTENCY_KEY = new RegExp(IDEMPOTENCY_KEY_PATTERN);

function declaredLength(request: FastifyRequest): number | undefined {
  const header = request.headers['content-length'];
  return header !== undefined && /^\d+$/.test(header) ? Number(header) : undefined;
}

function idempotencyKey(request: FastifyRequest): string | undefined {
  const header = request.headers['idempotency-key'];
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !IDEMPOTENCY_KEY.test(header)) {
    throw new HubError('BAD_REQUEST', 'Invalid Idempotency-Key header: 1 to 128 printable characters without spaces');
  }
  return header;
}

export function buildRoutes(deps: IntakeDeps, options: BuildRouteOptions): FastifyPluginAsync {
  const limits = { maxFieldBytes: options.maxFieldBytes, maxUploadBytes: MAX_UPLOAD_BYTES };
  const overhead = formOverheadBytes(limits);
  return async (app) => {
    await registerMultipart(app, limits);

    app.post('/api/v1/build', {
      // Before the body: a wrong content type, a declared size no tier allows, no way to seal.
      onRequest: async (request) => {
        if (!/multipart\/form-data/i.test(request.headers['content-type'] ?? '')) {
          throw new HubError('BAD_REQUEST', 'Expected multipart/form-data');
        }
        const length = declaredLength(request);
        if (length !== undefined && length > base64Length(MAX_UPLOAD_BYTES) + overhead) {
          throw tarballTooLarge(undefined, MAX_UPLOAD_BYTES);
        }
        if (deps.sealKeys.length === 0) {
          throw new HubError('SERVICE_UNAVAILABLE', 'Build intake is disabled: PERRY_HUB_CREDENTIALS_KEY is not set');
        }
      },
      handler: async (request): Promise<BuildAccepted> => {
        const submission = new Submission(deps, {
          via: 'http',
          apiToken: bearerToken(request),
          idempotencyKey: idempotencyKey(request),
          maxUploadBytes: MAX_UPLOAD_BYTES,
          contentLength: declaredLength(request),
          preauth: options.budget.open(clientAddress(request)),
        });
        try {
          await readBuildForm(request, submission, limits.maxFieldBytes);
          return await submission.finish();
        } catch (err) {
          await submission.abandon();
          throw err;
        }
      },
    });
  };
}
