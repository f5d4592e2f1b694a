// The operator's commands against a real hub with a simulated Rust worker: jobs, job, logs,
// cancel, workers, queue, vm, each in --json (parsed) and for a person; owners see only their own.
import { beforeAll, describe, expect } from 'vitest';
import { test } from '@perry-hub/testkit';
import { ensureBuilt } from '../support/hub-process.js';
import { ADMIN_SECRET } from '../support/test-hub.js';
import { until, withHub } from './dispatch-kit.js';
import { runCli } from './cli-support.js';

beforeAll(() => ensureBuilt());

describe('perry-hub operator commands', () => {
  test(
    'jobs, job, workers, queue, vm, cancel and logs on a running build',
    { timeout: 180_000 },
    async ({ natsUrl, prefix, database }) => {
      await withHub({ natsUrl, prefix, database }, {}, async (s) => {
        await s.worker('linux', { name: 'ops-linux', script: () => ({ hang: true, logLines: 2 }) });
        const licenseKey = await s.hub.registerLicense();
        const build = s.publish(['linux'], { licenseKey });
        const jobId = await build.jobId;
        const admin = { PERRY_HUB_SERVER: s.hub.url, PERRY_HUB_ADMIN_SECRET: ADMIN_SECRET };
        await until('the job runs', async () => (await s.status(jobId)).status === 'running');

        const jobs = await runCli(['jobs', '--json', '--state', 'running'], admin);
        expect(jobs.code).toBe(0);
        const listed = JSON.parse(jobs.stdout) as { jobs: { id: string; state: string; worker: string }[] };
        expect(listed.jobs).toEqual([expect.objectContaining({ id: jobId, state: 'running', worker: 'ops-linux' })]);
        const table = await runCli(['jobs'], admin);
        console.log(`$ perry-hub jobs\n${table.stdout}`);
        expect(table.code).toBe(0);
        expect(table.stdout).toMatch(new RegExp(`${jobId}\\s+running\\s+linux\\s+free\\s+ops-linux`));

        const detail = await runCli(['job', jobId, '--json'], admin);
        expect(detail.code).toBe(0);
        expect(JSON.parse(detail.stdout)).toMatchObject({ id: jobId, state: 'running', attempt: 1 });
        const human = await runCli(['job', jobId], admin);
        console.log(`$ perry-hub job ${jobId}\n${human.stdout}`);
        expect(human.stdout).toContain(`Job ${jobId}: running`);
        expect(human.stdout).toContain('ops-linux');

        const workers = await runCli(['workers', '--json'], admin);
        const w = (JSON.parse(workers.stdout) as { workers: { name: string; jobs: { job_id: string }[] }[] }).workers;
        expect(w).toEqual([
          expect.objectContaining({ name: 'ops-linux', jobs: [expect.objectContaining({ job_id: jobId })] }),
        ]);
        const workerTable = await runCli(['workers'], admin);
        console.log(`$ perry-hub workers\n${workerTable.stdout}`);
        expect(workerTable.stdout).toMatch(/ops-linux\s+linux/);
        console.log(`$ perry-hub queue\n${(await runCli(['queue'], admin)).stdout}`);
        console.log(`$ perry-hub vm\n${(await runCli(['vm'], admin)).stdout}`);

        const queue = await runCli(['queue', '--json'], admin);
        expect(queue.code).toBe(0);
        expect(JSON.parse(queue.stdout)).toMatchObject({ queued: 0, running: 1 });
        const vm = await runCli(['vm', '--json'], admin);
        expect(vm.code).toBe(0);
        expect(JSON.parse(vm.stdout)).toMatchObject({ provider: 'none' });

        // Owners see their own jobs; another license is told the job does not exist.
        const own = await runCli(['jobs', '--json'], { PERRY_HUB_SERVER: s.hub.url, PERRY_LICENSE_KEY: licenseKey });
        expect((JSON.parse(own.stdout) as { jobs: { id: string }[] }).jobs.map((j) => j.id)).toEqual([jobId]);
        const stranger = await runCli(['job', jobId], {
          PERRY_HUB_SERVER: s.hub.url,
          PERRY_LICENSE_KEY: await s.hub.registerLicense(),
        });
        expect(stranger.code).toBe(3);
        expect(stranger.stderr).toContain('404 JOB_NOT_FOUND');
        const noAdmin = await runCli(['workers'], { PERRY_HUB_SERVER: s.hub.url, PERRY_HUB_ADMIN_SECRET: 'wrong' });
        expect(noAdmin.code).toBe(3);

        // Follow the log live, cancel as the owner, and the follower ends with the build: exit 1.
        const follower = runCli(['logs', jobId, '-f'], admin);
        const cancel = await runCli(['cancel', jobId], { PERRY_HUB_SERVER: s.hub.url, PERRY_LICENSE_KEY: licenseKey });
        expect(cancel.code).toBe(0);
        expect(cancel.stdout).toContain(`Job ${jobId}: cancel requested`);
        const followed = await follower;
        console.log(`$ perry-hub logs ${jobId} -f\n${followed.stdout}`);
        expect(followed.code).toBe(1);
        expect(followed.stdout).toContain('── compiling ──');
        expect(followed.stdout).toMatch(/Build failed after/);
        expect((await build.result).exitCode).toBe(1);

        const logs = await runCli(['logs', jobId, '--json'], admin);
        expect(logs.code).toBe(0);
        const events = logs.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { type: string });
        expect(events.map((e) => e.type)).toContain('stage');
        expect(events.at(-1)?.type).toBe('complete');
        const after = await runCli(['job', jobId, '--json'], admin);
        expect(JSON.parse(after.stdout)).toMatchObject({ state: 'cancelled' });
      });
    },
  );
});
