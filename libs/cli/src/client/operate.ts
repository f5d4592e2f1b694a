/**
 * The operator's view of a running hub, over its HTTP API: `jobs`, `job ID`, `logs ID [-f]`,
 * `cancel ID`, `workers`, `queue`, `vm`. Each prints a table or lines on a terminal and JSON
 * with `--json`. Jobs are visible to the admin secret (all of them) and to the license key or
 * API token that submitted them (their own).
 */
import { Option, type Command } from 'commander';
import { JOB_LIST_LIMIT, JOB_STATUSES } from '@perry-hub/contracts';
import {
  ADMIN_ENV_HELP,
  adminSecret,
  CLIENT_ENV_HELP,
  clientCommand,
  EXIT,
  EXIT_CODES_HELP,
  formatDuration,
  serverUrl,
  table,
  writeJson,
  type Io,
} from './common.js';
import { hubRequest } from './http.js';
import { followEvents } from './events.js';
import { credentialFor, type AuthOptions } from './auth.js';
import { renderer } from './render.js';
import { checkInteger, checkListOf, checkTime } from './options.js';

interface JobSummary {
  id: string;
  state: string;
  stage: string;
  targets: string[];
  tier: string;
  license_key: string | null;
  account_id: string | null;
  attempt: number;
  retries: number;
  queued_at: string;
  started_at: string | null;
  finished_at: string | null;
  duration_secs: number | null;
  worker: string | null;
  error: string | null;
  delivery: string | null;
}

interface JobDetail extends JobSummary {
  position: number;
  cancel_requested_at: string | null;
  manifest: Record<string, unknown>;
  history: ({ at: string; state: string; attempt: number } & Record<string, unknown>)[];
  attempts: {
    attempt: number;
    stage: string;
    worker: string | null;
    started_at: string;
    ended_at: string | null;
    outcome: string;
    reason?: string | null;
  }[];
  artifacts: { name: string; target: string; size: number; sha256: string; state: string; expires_at: string }[];
}

const since = (iso: string | null) => (iso ? formatDuration(Date.now() - Date.parse(iso)) : '');
const time = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');

const AUTH_HELP = `
Credential: the admin secret sees every job; a license key or API token only its own jobs
(--admin-secret, --api-token, --license-key, or their variables).`;

const ADMIN_AUTH_HELP = `
Credential: the admin secret only (--admin-secret or its variable).`;

const adminSecretOption = () => new Option('--admin-secret <secret>', 'admin secret (env PERRY_HUB_ADMIN_SECRET)');

function withAuth(cmd: Command): Command {
  return cmd
    .addOption(adminSecretOption())
    .addOption(new Option('--api-token <token>', "an account API token: that account's jobs (env PERRY_HUB_API_TOKEN)"))
    .addOption(new Option('--license-key <key>', "a license key: that license's jobs (env PERRY_LICENSE_KEY)"));
}

/** The operator's views of the whole hub (workers, queue, VMs): the admin secret is the one credential. */
function withAdminAuth(cmd: Command): Command {
  return cmd.addOption(adminSecretOption());
}

export function registerOperateCommands(program: Command, io: Io, setCode: (code: number) => void): void {
  const help = `${AUTH_HELP}\n\n${CLIENT_ENV_HELP}\n\n${EXIT_CODES_HELP}`;
  const adminHelp = `${ADMIN_AUTH_HELP}\n\n${ADMIN_ENV_HELP}\n\n${EXIT_CODES_HELP}`;

  withAuth(clientCommand(program, 'jobs', 'list jobs, newest first'))
    .option('--state <states>', `only these states, comma-separated: ${JOB_STATUSES.join(', ')}`)
    .option('--target <target>', 'only jobs for this target')
    .option('--license <key>', 'only this license (admin)')
    .option('--since <time>', 'only jobs queued since (ISO time or epoch ms)')
    .option(
      '--limit <n>',
      `at most this many a page (${JOB_LIST_LIMIT.min}-${JOB_LIST_LIMIT.max})`,
      String(JOB_LIST_LIMIT.default),
    )
    .option('--all', 'follow the pages to the end')
    .addHelpText('after', help)
    .action(
      async (
        o: AuthOptions & {
          state?: string;
          target?: string;
          license?: string;
          since?: string;
          limit: string;
          all?: boolean;
        },
      ) => {
        const limit = checkInteger('--limit', o.limit, JOB_LIST_LIMIT);
        if (o.state !== undefined) checkListOf('--state', o.state, JOB_STATUSES);
        if (o.since !== undefined) checkTime('--since', o.since);
        const server = serverUrl(o, io.env);
        const bearer = credentialFor(o, io.env, server);
        const jobs: JobSummary[] = [];
        let cursor: string | undefined;
        do {
          const page = await hubRequest<{ jobs: JobSummary[]; next_cursor: string | null }>(server, '/api/v1/jobs', {
            bearer,
            query: { state: o.state, target: o.target, license: o.license, since: o.since, limit, cursor },
          });
          jobs.push(...page.jobs);
          cursor = page.next_cursor ?? undefined;
        } while (o.all && cursor);
        if (o.json) writeJson(io, { jobs, ...(o.all ? {} : { next_cursor: cursor ?? null }) });
        else {
          table(
            io,
            ['job', 'state', 'targets', 'tier', 'worker', 'attempt', 'queued', 'took', 'error'],
            jobs.map((j) => [
              j.id,
              j.stage === 'sign' && j.state !== 'completed' ? `${j.state} (sign)` : j.state,
              j.targets.join(','),
              j.tier,
              j.worker ?? '',
              j.attempt,
              `${since(j.queued_at)} ago`,
              j.duration_secs === null ? '' : formatDuration(j.duration_secs * 1000),
              (j.error ?? '').slice(0, 60),
            ]),
          );
          if (cursor && !o.all) io.out.write(`(more: --all, or --since an earlier time)\n`);
        }
        setCode(EXIT.ok);
      },
    );

  withAuth(clientCommand(program, 'job', 'everything known about one job: state history, attempts, artifacts'))
    .argument('<id>', 'the job id')
    .addHelpText('after', help)
    .action(async (id: string, o: AuthOptions) => {
      const server = serverUrl(o, io.env);
      const job = await hubRequest<JobDetail>(server, `/api/v1/jobs/${encodeURIComponent(id)}`, {
        bearer: credentialFor(o, io.env, server),
      });
      if (o.json) {
        writeJson(io, job);
        return setCode(EXIT.ok);
      }
      const m = job.manifest;
      io.out.write(
        [
          `Job ${job.id}: ${job.state}${job.state === 'queued' ? ` (position ${job.position})` : ''}`,
          `  app       ${String(m['app_name'] ?? '')} ${String(m['version'] ?? '')} (${String(m['bundle_id'] ?? '')})`,
          `  targets   ${job.targets.join(', ')} (${job.stage} stage), ${job.tier}`,
          `  queued    ${time(job.queued_at)}`,
          ...(job.started_at ? [`  started   ${time(job.started_at)}`] : []),
          ...(job.finished_at ? [`  finished  ${time(job.finished_at)}`] : []),
          ...(job.duration_secs !== null ? [`  took      ${formatDuration(job.duration_secs * 1000)}`] : []),
          ...(job.worker ? [`  worker    ${job.worker} (attempt ${job.attempt}, ${job.retries} retries)`] : []),
          ...(job.error ? [`  error     ${job.error}`] : []),
          ...(job.delivery ? [`  delivery  ${job.delivery}`] : []),
          '',
          'History:',
        ].join('\n') + '\n',
      );
      table(
        io,
        ['at', 'state', 'attempt', 'detail'],
        job.history.map((h) => [
          time(h.at),
          h.state,
          h.attempt,
          [h['worker'], h['reason'], h['via']].filter((x) => typeof x === 'string' && x !== '').join('; '),
        ]),
      );
      if (job.attempts.length > 0) {
        io.out.write('\nAttempts:\n');
        table(
          io,
          ['attempt', 'stage', 'worker', 'started', 'outcome', 'reason'],
          job.attempts.map((a) => [a.attempt, a.stage, a.worker ?? '', time(a.started_at), a.outcome, a.reason ?? '']),
        );
      }
      if (job.artifacts.length > 0) {
        io.out.write('\nArtifacts:\n');
        table(
          io,
          ['name', 'target', 'size', 'sha256', 'state', 'expires'],
          job.artifacts.map((a) => [a.name, a.target, a.size, a.sha256, a.state, time(a.expires_at)]),
        );
      }
      setCode(EXIT.ok);
    });

  withAuth(clientCommand(program, 'logs', "a job's log: stages, log lines, errors and its end"))
    .argument('<id>', 'the job id')
    .option('-f, --follow', 'keep following until the job ends (exit 1 if it failed)')
    .addHelpText('after', `\nWith --json, one event a line, each exactly as the CLI receives it.\n${help}`)
    .action(async (id: string, o: AuthOptions & { follow?: boolean }) => {
      const server = serverUrl(o, io.env);
      const render = renderer(io, !o.json);
      let success: boolean | undefined;
      await followEvents(server, id, credentialFor(o, io.env, server), {
        follow: o.follow === true,
        onEvent: (event) => {
          if (o.json) io.out.write(`${JSON.stringify(event)}\n`);
          else render(event);
          if (event.type === 'complete') success = event['success'] === true;
          if (event.type === 'error') success = false;
        },
        onReconnect: (n) => !o.json && io.err.write(`connection lost; reconnecting (${n})\n`),
      });
      setCode(o.follow && success === false ? EXIT.failed : EXIT.ok);
    });

  withAuth(clientCommand(program, 'cancel', 'cancel a queued or running job'))
    .argument('<id>', 'the job id')
    .addHelpText('after', help)
    .action(async (id: string, o: AuthOptions) => {
      const server = serverUrl(o, io.env);
      const licenseKey = o.licenseKey ?? (o.adminSecret || o.apiToken ? undefined : io.env['PERRY_LICENSE_KEY']);
      const answer = await hubRequest<{ job_id: string; cancelled: boolean }>(
        server,
        `/api/v1/jobs/${encodeURIComponent(id)}/cancel`,
        licenseKey && !o.adminSecret && !o.apiToken
          ? { method: 'POST', body: { license_key: licenseKey } }
          : { method: 'POST', bearer: credentialFor(o, io.env, server) },
      );
      if (o.json) writeJson(io, answer);
      else io.out.write(`Job ${answer.job_id}: cancel ${answer.cancelled ? 'requested' : 'not needed'}\n`);
      setCode(EXIT.ok);
    });

  withAdminAuth(clientCommand(program, 'workers', 'connected workers: capabilities, slots, the jobs each runs'))
    .addHelpText('after', adminHelp)
    .action(async (o: AuthOptions) => {
      const server = serverUrl(o, io.env);
      const answer = await hubRequest<{
        expected_version: string;
        workers: {
          id: string;
          name: string;
          capabilities: string[];
          slots: { max: number; busy: number; free: number };
          jobs: { job_id: string; attempt: number }[];
          connected_at: string;
          perry_version: string | null;
        }[];
      }>(server, '/api/v1/workers', { bearer: adminSecret(o, io.env, server) });
      if (o.json) writeJson(io, answer);
      else {
        table(
          io,
          ['worker', 'capabilities', 'slots', 'jobs', 'connected', 'perry'],
          answer.workers.map((w) => [
            w.name,
            w.capabilities.join(','),
            `${w.slots.busy}/${w.slots.max} busy`,
            w.jobs.map((j) => j.job_id).join(' '),
            `${since(w.connected_at)} ago`,
            w.perry_version ?? '',
          ]),
        );
        if (answer.expected_version) io.out.write(`Expected perry version: ${answer.expected_version}\n`);
      }
      setCode(EXIT.ok);
    });

  withAdminAuth(clientCommand(program, 'queue', 'what waits, per target and tier, for how long, and why'))
    .addHelpText('after', adminHelp)
    .action(async (o: AuthOptions) => {
      const server = serverUrl(o, io.env);
      const answer = await hubRequest<{
        queued: number;
        running: number;
        queues: {
          target: string;
          tier: string;
          queued: number;
          oldest_wait_secs: number;
          waiting: { reason: string; message: string; jobs: number }[];
        }[];
      }>(server, '/api/v1/queue', { bearer: adminSecret(o, io.env, server) });
      if (o.json) writeJson(io, answer);
      else {
        io.out.write(`${answer.queued} queued, ${answer.running} running\n`);
        table(
          io,
          ['target', 'tier', 'queued', 'oldest wait', 'why'],
          answer.queues.map((q) => [
            q.target,
            q.tier,
            q.queued,
            formatDuration(q.oldest_wait_secs * 1000),
            q.waiting.map((w) => `${w.jobs}× ${w.message || w.reason}`).join('\n'),
          ]),
        );
      }
      setCode(EXIT.ok);
    });

  withAdminAuth(clientCommand(program, 'vm', 'sign VM pools: power state, draining, what they are doing'))
    .addHelpText('after', adminHelp)
    .action(async (o: AuthOptions) => {
      const server = serverUrl(o, io.env);
      const answer = await hubRequest<{
        provider: string;
        pools: {
          pool: string;
          capability: string;
          power: string;
          draining: boolean;
          updated_at: string;
          message: string;
        }[];
      }>(server, '/api/v1/vms', { bearer: adminSecret(o, io.env, server) });
      if (o.json) writeJson(io, answer);
      else {
        io.out.write(`VM provider: ${answer.provider}\n`);
        table(
          io,
          ['pool', 'capability', 'power', 'draining', 'updated', 'message'],
          answer.pools.map((p) => [
            p.pool,
            p.capability,
            p.power,
            p.draining ? 'yes' : '',
            `${since(p.updated_at)} ago`,
            p.message,
          ]),
        );
      }
      setCode(EXIT.ok);
    });
}
