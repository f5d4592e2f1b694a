/**
 * Connected workers and what each runs (admin), and the jobs that lost their worker and wait
 * again: queued after a lost worker (`retries` > 0), not those waiting for their sign stage.
 */
import { api, type WorkersResponse } from '../api.js';
import { JobLink, Problem, Section, StateBadge, since, time, useNow, usePoll } from '../util.js';

export function WorkersTable({ data, now }: { data: WorkersResponse | undefined; now: number }) {
  if (!data) return null;
  if (data.workers.length === 0) return <p class="empty">No worker is connected.</p>;
  return (
    <div class="scroll" tabIndex={0} role="region" aria-label="Workers (scrolls sideways)">
      <table data-testid="workers">
        <thead>
          <tr>
            <th scope="col">Worker</th>
            <th scope="col">Capabilities</th>
            <th scope="col">Slots (busy / max)</th>
            <th scope="col">Free</th>
            <th scope="col">Running</th>
            <th scope="col">Version</th>
            <th scope="col">Connected</th>
          </tr>
        </thead>
        <tbody>
          {data.workers.map((w) => (
            <tr key={w.id} data-worker={w.name}>
              <td>{w.name}</td>
              <td>{w.capabilities.join(', ')}</td>
              <td>
                {w.slots.busy} / {w.slots.max}
              </td>
              <td>{w.slots.free}</td>
              <td>
                {w.jobs.length === 0
                  ? 'idle'
                  : w.jobs.map((j) => (
                      <span key={j.job_id} class="job-ref">
                        <JobLink id={j.job_id} /> <span class="muted">#{j.attempt}</span>
                      </span>
                    ))}
              </td>
              <td>
                {w.perry_version || '—'}
                {data.expected_version !== '' && w.perry_version !== data.expected_version && (
                  <span class="badge warn" title={`expected ${data.expected_version}`}>
                    {' '}
                    outdated
                  </span>
                )}
              </td>
              <td title={time(w.connected_at)}>{since(w.connected_at, now)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Workers() {
  const now = useNow();
  const workers = usePoll(() => api.workers(), 'workers');
  const requeued = usePoll(() => api.jobs({ state: 'queued', limit: 200 }), 'requeued');
  const waitingAgain = requeued.data?.jobs.filter((j) => j.retries > 0) ?? [];
  return (
    <div class="page">
      <h1>Workers</h1>
      <Section title="Connected workers">
        <Problem error={workers.error} />
        {workers.data && workers.data.expected_version !== '' && (
          <p class="summary">Expected perry version: {workers.data.expected_version}</p>
        )}
        <WorkersTable data={workers.data} now={now} />
      </Section>
      <Section title="Re-queued jobs">
        <p class="muted">Jobs whose worker went away during a build, waiting for another one.</p>
        <Problem error={requeued.error} />
        {requeued.data && waitingAgain.length === 0 && <p class="empty">None.</p>}
        {waitingAgain.length > 0 && (
          <div class="scroll" tabIndex={0} role="region" aria-label="Re-queued jobs (scrolls sideways)">
            <table data-testid="requeued">
              <thead>
                <tr>
                  <th scope="col">Job</th>
                  <th scope="col">State</th>
                  <th scope="col">Targets</th>
                  <th scope="col">Last worker</th>
                  <th scope="col">Retries</th>
                </tr>
              </thead>
              <tbody>
                {waitingAgain.map((j) => (
                  <tr key={j.id}>
                    <td>
                      <JobLink id={j.id} />
                    </td>
                    <td>
                      <StateBadge state="re-queued" />
                    </td>
                    <td>{j.targets.join(', ')}</td>
                    <td>{j.worker ?? '—'}</td>
                    <td>{j.retries}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
    </div>
  );
}
