/**
 * What the hub is doing now: builds today by outcome, the queue per target and tier (oldest wait
 * and why), workers, sign VM pools and the latest jobs; re-read every POLL_MS without a reload.
 * A license or API-token session sees its own counts and jobs only (the rest is the admin's).
 */
import { api, JOB_STATES, type QueueResponse, type VmsResponse, type WorkersResponse } from '../api.js';
import {
  JobLink,
  Problem,
  Section,
  StateBadge,
  countdown,
  duration,
  since,
  startOfToday,
  time,
  useNow,
  usePoll,
} from '../util.js';
import { WorkersTable } from './workers.js';

export function Overview({ admin }: { admin: boolean }) {
  const now = useNow();
  const counts = usePoll(() => api.counts(startOfToday()), 'counts');
  const recent = usePoll(() => api.jobs({ limit: 10 }), 'recent');
  const queue = usePoll(() => api.queue(), 'queue', admin);
  const workers = usePoll(() => api.workers(), 'workers', admin);
  const vms = usePoll(() => api.vms(), 'vms', admin);

  return (
    <div class="page">
      <h1>Overview</h1>
      <Section title="Builds today">
        <Problem error={counts.error} />
        <ul class="tiles" aria-label="Builds queued today, by state">
          <li class="tile">
            <span class="tile-value" data-testid="count-total">
              {counts.data?.total ?? '…'}
            </span>
            <span class="tile-label">total</span>
          </li>
          {JOB_STATES.map((s) => (
            <li class={`tile tile-${s}`} key={s}>
              <span class="tile-value" data-testid={`count-${s}`}>
                {counts.data?.states[s] ?? '…'}
              </span>
              <span class="tile-label">{s}</span>
            </li>
          ))}
        </ul>
      </Section>

      {admin && <QueueSection queue={queue.data} error={queue.error} now={now} />}

      <Section title="Latest jobs">
        <Problem error={recent.error} />
        {recent.data && recent.data.jobs.length === 0 && <p class="empty">No jobs yet.</p>}
        {recent.data && recent.data.jobs.length > 0 && (
          <div class="scroll" tabIndex={0} role="region" aria-label="Latest jobs (scrolls sideways)">
            <table data-testid="recent-jobs">
              <thead>
                <tr>
                  <th scope="col">Job</th>
                  <th scope="col">State</th>
                  <th scope="col">Targets</th>
                  <th scope="col">Worker</th>
                  <th scope="col">Queued</th>
                </tr>
              </thead>
              <tbody>
                {recent.data.jobs.map((j) => (
                  <tr key={j.id} data-job={j.id}>
                    <td>
                      <JobLink id={j.id} />
                    </td>
                    <td>
                      <StateBadge state={j.state} />
                    </td>
                    <td>{j.targets.join(', ')}</td>
                    <td>{j.worker ?? '—'}</td>
                    <td>{since(j.queued_at, now)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <p>
          <a href="#/jobs">All jobs →</a>
        </p>
      </Section>

      {admin && (
        <Section title="Workers">
          <Problem error={workers.error} />
          <WorkersTable data={workers.data as WorkersResponse | undefined} now={now} />
        </Section>
      )}
      {admin && <VmSection vms={vms.data} error={vms.error} now={now} />}
    </div>
  );
}

function QueueSection({ queue, error, now }: { queue: QueueResponse | undefined; error?: string; now: number }) {
  return (
    <Section title="Queue">
      <Problem error={error} />
      {queue && (
        <p class="summary" data-testid="queue-summary">
          {queue.queued} queued, {queue.running} running
        </p>
      )}
      {queue && queue.queues.length === 0 && <p class="empty">Nothing waits.</p>}
      {queue && queue.queues.length > 0 && (
        <div class="scroll" tabIndex={0} role="region" aria-label="Queue (scrolls sideways)">
          <table data-testid="queue">
            <thead>
              <tr>
                <th scope="col">Target</th>
                <th scope="col">Tier</th>
                <th scope="col">Queued</th>
                <th scope="col">Oldest wait</th>
                <th scope="col">Why it waits</th>
              </tr>
            </thead>
            <tbody>
              {queue.queues.map((q) => (
                <tr key={`${q.target}/${q.tier}`}>
                  <td>{q.target}</td>
                  <td>{q.tier}</td>
                  <td>{q.queued}</td>
                  <td>{duration((now - Date.parse(q.oldest_queued_at)) / 1000)}</td>
                  <td class="wide">
                    <ul class="plain">
                      {q.waiting.map((w) => (
                        <li key={w.reason}>
                          <span class="reason">{w.reason.replace(/_/g, ' ')}</span> ({w.jobs}): {w.message}
                        </li>
                      ))}
                    </ul>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}

function VmSection({ vms, error, now }: { vms: VmsResponse | undefined; error?: string; now: number }) {
  return (
    <Section title="Sign VM pools">
      <Problem error={error} />
      {vms && <p class="summary">Provider: {vms.provider}</p>}
      {vms && vms.pools.length === 0 && <p class="empty">No sign VM pools are configured.</p>}
      {vms && vms.pools.length > 0 && (
        <div class="scroll" tabIndex={0} role="region" aria-label="Sign VM pools (scrolls sideways)">
          <table>
            <thead>
              <tr>
                <th scope="col">Pool</th>
                <th scope="col">Capability</th>
                <th scope="col">Power</th>
                <th scope="col">Last start</th>
                <th scope="col">Boot time</th>
                <th scope="col">Deallocates</th>
                <th scope="col">Last job ended</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {vms.pools.map((p) => (
                <tr key={p.pool}>
                  <td>{p.pool}</td>
                  <td>{p.capability}</td>
                  <td>
                    <span class={`badge power-${p.power}`}>{p.power}</span>
                    {p.draining && <span class="badge"> draining</span>}
                  </td>
                  <td title={time(p.start_requested_at)}>{since(p.start_requested_at, now)}</td>
                  <td>{p.last_boot_secs === null ? '—' : `${Math.round(p.last_boot_secs)}s`}</td>
                  <td title={time(p.idle_until)}>{countdown(p.idle_until, now)}</td>
                  <td title={time(p.last_job_ended_at)}>{since(p.last_job_ended_at, now)}</td>
                  <td class="wide">{p.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}
