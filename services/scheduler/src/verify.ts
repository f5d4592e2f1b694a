/**
 * The original's verification gate (reference 3.3), available and off by default
 * (PERRY_HUB_VERIFY_ENABLED). A worker's `build_complete{has_distribution:true}` makes the hub
 * send the job's artifact to perry-verify and poll the verdict, without blocking anything else
 * (the original blocked its event loop on curl); then the worker is told `proceed_distribute` or
 * `skip_distribute`, and the CLI sees `error VERIFY_FAILED` on failure.
 */
import { call } from '@perry-hub/runtime';
import { submitVerificationEndpoint, type Ack, type WireObject } from '@perry-hub/contracts';
import { sendCommand } from './commands.js';
import { finishJob } from './outcomes.js';
import type { Context, RunningJob } from './state.js';
import { wire } from './wire.js';

function platform(targets: readonly string[]): string {
  const first = targets.find((t) => ['ios', 'android', 'macos'].includes(t.replace(/-sign$/, '')));
  if (first?.startsWith('ios')) return 'ios-simulator';
  if (first?.startsWith('android')) return 'android-emulator';
  return 'macos-arm64';
}

const progress = (jobId: string, percent: number, message: string) =>
  JSON.stringify({ type: 'progress', job_id: jobId, stage: 'verifying', percent, message });

export async function onBuildComplete(ctx: Context, job: RunningJob, message: WireObject): Promise<Ack> {
  if (!ctx.config.verifyEnabled) {
    ctx.log.info({ jobId: job.jobId }, 'build_complete ignored: the verification gate is off');
    return { accepted: true };
  }
  if (message['has_distribution'] !== true) {
    // As the original: nothing to distribute, so the hub completes the job itself.
    const duration = typeof message['duration_secs'] === 'number' ? message['duration_secs'] : 0;
    const complete = JSON.stringify({
      type: 'complete',
      job_id: job.jobId,
      success: true,
      duration_secs: duration,
      artifacts: [],
    });
    const ok = await finishJob(ctx, {
      job,
      from: 'running',
      finish: { status: 'completed', errorMessage: null, finalEvents: [complete] },
    });
    return { accepted: ok };
  }
  await ctx.events.append(job.jobId, wire.stage(job.jobId, 'verifying', 'Verifying binary before distribution...'));
  void verify(ctx, job).catch((err: unknown) => ctx.log.error({ err, jobId: job.jobId }, 'verification failed to run'));
  return { accepted: true };
}

async function verify(ctx: Context, job: RunningJob): Promise<void> {
  const base = ctx.config.verifyUrl.replace(/\/+$/, '');
  let reason: string | undefined;
  try {
    const { verificationId } = await call(ctx.nc, ctx.subjects, submitVerificationEndpoint, {
      jobId: job.jobId,
      attempt: job.attempt,
      verifyUrl: base,
      target: platform(job.targets),
    });
    reason = 'Verification timed out';
    const deadline = ctx.now() + ctx.config.verifyTimeoutMs;
    while (ctx.now() < deadline) {
      await new Promise((r) => setTimeout(r, ctx.config.verifyPollMs));
      const text = await fetch(`${base}/verify/${encodeURIComponent(verificationId)}`, {
        signal: AbortSignal.timeout(10_000),
      })
        .then((r) => r.text())
        .catch(() => ''); // poll errors are retried, as the original did
      const status = /"status"\s*:\s*"([^"]*)"/.exec(text)?.[1];
      if (status !== 'completed' && status !== 'failed') {
        await ctx.events.append(job.jobId, progress(job.jobId, 50, 'Verifying binary...'));
        continue;
      }
      const result = /"result"\s*:\s*"([^"]*)"/.exec(text)?.[1];
      reason =
        result === 'passed'
          ? undefined
          : (/"message"\s*:\s*"([^"]*)"/.exec(text)?.[1] ?? `Verification ${result ?? status}`);
      break;
    }
  } catch (err) {
    reason = `Verification could not be submitted: ${(err as Error).message}`;
  }
  if (!ctx.running.has(job.jobId)) return; // ended meanwhile
  if (reason === undefined) {
    await ctx.events.append(job.jobId, progress(job.jobId, 100, 'Verification passed'));
    await sendCommand(ctx, job.workerId, { kind: 'proceed_distribute', jobId: job.jobId });
    return;
  }
  await sendCommand(ctx, job.workerId, { kind: 'skip_distribute', jobId: job.jobId, reason });
  await ctx.events.append(
    job.jobId,
    JSON.stringify({ type: 'error', job_id: job.jobId, code: 'VERIFY_FAILED', message: reason }),
  );
}
