/**
 * The jobs API. Credentials as `Authorization: Bearer …` (or the dashboard's session cookie, see
 * session.ts): the admin secret (every job), an account's API token or a license key (that
 * submitter's own jobs). Cancel also takes the submitting license as `{"license_key":"…"}` in a
 * JSON body, as before.
 *
 * A job that is not the caller's is answered exactly like a job that does not exist, 404
 * JOB_NOT_FOUND, on every route (detail, events, cancel): a job id lets a client watch a build
 * over the WebSocket, but through this API it must not tell a stranger whether an id exists.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import {
  BuildCancelled,
  CancelBody,
  HubError,
  JobCountsQuery,
  JobCountsResponse,
  JobDetail,
  JobIdParams,
  JobListQuery,
  JobListResponse,
  type BuildCancelled as BuildCancelledT,
  type JobDetail as JobDetailT,
} from '@perry-hub/contracts';
import type { Pool } from '@perry-hub/db';
import { decode, type Logger } from '@perry-hub/runtime';
import { bearerToken } from '../auth.js';
import { cancelBuild, cancelNeedsCredential } from '../cancel.js';
import { identify, type Caller } from '../caller.js';
import { countJobs, jobState, listJobs, readJob } from '../job-records.js';
import { streamJobEvents } from '../job-events.js';
import type { BusDeps } from './license.js';

export interface JobRouteDeps extends BusDeps {
  adminSecret: string;
  db: Pool;
  log: Logger;
  subjectPrefix: string;
  /** PERRY_HUB_PUBLIC_URL, for the artifacts' links. */
  publicUrl?: string | undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const notFound = () => new HubError('JOB_NOT_FOUND', 'Job not found');
const BEARER = [{ bearer: [] }];
const ErrorEnvelope = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String() }),
});

export function jobRoutes(deps: JobRouteDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    app.get(
      '/api/v1/jobs',
      {
        schema: {
          summary: 'List jobs, newest first (admin: all jobs; a license key or API token: its own)',
          tags: ['jobs'],
          security: BEARER,
          querystring: JobListQuery,
          response: { 200: JobListResponse, 400: ErrorEnvelope, 401: ErrorEnvelope, 403: ErrorEnvelope },
        },
      },
      async (request) => {
        const caller = await identify(deps, request);
        return listJobs(deps.db, caller, request.query);
      },
    );

    app.get(
      '/api/v1/jobs/counts',
      {
        schema: {
          summary: 'How many jobs are in each state (admin: all jobs; a license key or API token: its own)',
          tags: ['jobs'],
          security: BEARER,
          querystring: JobCountsQuery,
          response: { 200: JobCountsResponse, 400: ErrorEnvelope, 401: ErrorEnvelope },
        },
      },
      async (request) => {
        const caller = await identify(deps, request);
        return countJobs(deps.db, caller, request.query.since);
      },
    );

    app.get(
      '/api/v1/jobs/:id',
      {
        schema: {
          summary: 'Everything known about a job: state history, attempts, position, artifacts, failure reason',
          tags: ['jobs'],
          security: BEARER,
          params: JobIdParams,
          response: { 200: JobDetail, 401: ErrorEnvelope, 404: ErrorEnvelope },
        },
      },
      async (request): Promise<JobDetailT> => {
        const caller = await identify(deps, request);
        if (!UUID.test(request.params.id)) throw notFound();
        const detail = await readJob(deps, caller, request.params.id, deps.publicUrl);
        if (!detail) throw notFound();
        return detail;
      },
    );

    app.get(
      '/api/v1/jobs/:id/events',
      {
        schema: {
          summary: 'The job’s messages as Server-Sent Events: the whole log replayed, then live, until it ends',
          description:
            'Each event’s data is one wire message exactly as the CLI receives it over the WebSocket ' +
            '(stage, progress, log, queue_update, artifact_ready, error, complete); its id is the event ' +
            'log sequence: reconnect with Last-Event-ID to continue. The stream ends after the job finished.',
          tags: ['jobs'],
          security: BEARER,
          params: JobIdParams,
          produces: ['text/event-stream'],
          response: { 200: Type.String({ description: 'text/event-stream' }), 404: ErrorEnvelope },
        },
      },
      async (request, reply) => {
        const caller = await identify(deps, request);
        if (!UUID.test(request.params.id)) throw notFound();
        const state = await jobState(deps.db, caller, request.params.id);
        if (!state) throw notFound();
        await streamJobEvents(deps, request, reply, request.params.id, state);
      },
    );

    app.post(
      '/api/v1/jobs/:id/cancel',
      {
        schema: {
          summary: 'Cancel a queued or running job (its submitter, or the admin)',
          tags: ['jobs'],
          security: BEARER,
          params: JobIdParams,
          response: { 200: BuildCancelled, 401: ErrorEnvelope, 404: ErrorEnvelope, 409: ErrorEnvelope },
        },
      },
      async (request): Promise<BuildCancelledT> => {
        const body = decode(CancelBody, request.body ?? {}, 'request body');
        let caller: Caller;
        // The Bearer credential (or session) is identified as for reading the job; without one,
        // the submitting license in the body (compared with the job's by the scheduler).
        if (bearerToken(request) !== undefined) caller = await identify(deps, request);
        else if (body.license_key !== undefined) caller = { kind: 'license', licenseKey: body.license_key };
        else throw cancelNeedsCredential('an Authorization header');
        if (caller.kind === 'tool') throw notFound();
        return cancelBuild(deps, request.params.id, caller);
      },
    );
  };
}
