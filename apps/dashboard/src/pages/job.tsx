/**
 * One job: its state, failure reason, history, attempts and artifacts (re-read every POLL_MS
 * until it ends), and its live log: the job's event log from `GET /api/v1/jobs/:id/events`
 * (Server-Sent Events: the whole log replayed, then followed as it runs), with a header per
 * stage and the stage's progress. A queued or running job can be cancelled after a confirmation.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, TERMINAL_STATES, type JobDetail } from '../api.js';
import { Problem, Section, StateBadge, bytes, duration, time, usePoll } from '../util.js';

/** One line of the rendered log. */
interface LogEntry {
  seq: number;
  kind: 'stage' | 'log' | 'info' | 'error' | 'done';
  text: string;
  stream?: string | undefined;
}

interface Progress {
  stage: string;
  percent: number;
  message: string | null;
}

interface Download {
  name: string;
  target: string;
  url: string;
}

/** A wire message as the CLI receives it (libs/contracts, reference protocol). */
type Wire = Record<string, unknown> & { type?: string };

const str = (v: unknown) => (typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v));

/** Follows the job's event stream; stops once the job has ended and its log was replayed. */
function useJobLog(id: string, ended: boolean) {
  const [entries, setEntries] = useState<LogEntry[]>([]);
  const [progress, setProgress] = useState<Progress | undefined>(undefined);
  const [downloads, setDownloads] = useState<Download[]>([]);
  const [streaming, setStreaming] = useState(true);
  const endedRef = useRef(ended);
  endedRef.current = ended;
  useEffect(() => {
    setEntries([]);
    setProgress(undefined);
    setDownloads([]);
    setStreaming(true);
    const source = new EventSource(api.eventsUrl(id));
    source.onmessage = (event: MessageEvent<string>) => {
      let m: Wire;
      try {
        m = JSON.parse(event.data) as Wire;
      } catch {
        return;
      }
      const seq = Number(event.lastEventId) || 0;
      const add = (entry: Omit<LogEntry, 'seq'>) => setEntries((list) => [...list, { seq, ...entry }]);
      switch (m.type) {
        case 'stage':
          add({ kind: 'stage', text: `${str(m['stage'])}${m['message'] ? `: ${str(m['message'])}` : ''}` });
          setProgress(undefined);
          break;
        case 'progress':
          setProgress({
            stage: str(m['stage']),
            percent: Math.max(0, Math.min(100, Number(m['percent']) || 0)),
            message: typeof m['message'] === 'string' ? m['message'] : null,
          });
          break;
        case 'log':
          add({ kind: 'log', text: str(m['line']), stream: str(m['stream']) || 'stdout' });
          break;
        case 'queue_update':
          add({ kind: 'info', text: `In the queue, position ${str(m['position'])}: ${str(m['message'])}` });
          break;
        case 'artifact_ready': {
          const name = str(m['artifact_name']);
          add({ kind: 'info', text: `Artifact ready: ${name} (${bytes(Number(m['artifact_size']) || 0)})` });
          if (typeof m['download_url'] === 'string') {
            setDownloads((d) => [...d, { name, target: str(m['target']), url: m['download_url'] as string }]);
          }
          break;
        }
        case 'error':
          add({ kind: 'error', text: `Error: ${str(m['message'])}` });
          break;
        case 'complete':
          add({
            kind: 'done',
            text: `${m['success'] === true ? 'Build succeeded' : 'Build failed'} after ${duration(Number(m['duration_secs']) || 0)}${
              m['needs_finishing'] ? `; signing follows on ${str(m['needs_finishing'])}` : ''
            }`,
          });
          break;
        case 'job_created':
          break;
        default:
          add({ kind: 'info', text: `${str(m.type)}: ${str(m['message'])}` });
      }
    };
    source.onerror = () => {
      // The hub ends the stream after the job's last message; do not reconnect then.
      if (source.readyState === EventSource.CLOSED || endedRef.current) {
        source.close();
        setStreaming(false);
      }
    };
    return () => source.close();
  }, [id]);
  return { entries, progress, downloads, streaming };
}

export function Job({ id }: { id: string }) {
  const [ended, setEnded] = useState(false);
  const detail = usePoll(() => api.job(id), `job:${id}`, !ended);
  const job = detail.data;
  useEffect(() => setEnded(false), [id]);
  useEffect(() => {
    if (job && TERMINAL_STATES.has(job.state)) setEnded(true);
  }, [job?.state]);
  const log = useJobLog(id, ended);

  if (detail.error && !job) {
    return (
      <div class="page">
        <h1>Job {id}</h1>
        <Problem error={detail.error} />
        <p>
          <a href="#/jobs">Back to the jobs</a>
        </p>
      </div>
    );
  }
  return (
    <div class="page">
      <h1>
        Job <span class="mono">{id}</span>
      </h1>
      {!job && <p aria-live="polite">Loading…</p>}
      {job && <Summary job={job} onCancelled={detail.refresh} />}
      <Section title="Log">
        <LogView entries={log.entries} progress={log.progress} streaming={log.streaming && !ended} />
      </Section>
      {job && <Artifacts job={job} downloads={log.downloads} />}
      {job && <Callbacks job={job} />}
      {job && <History job={job} />}
    </div>
  );
}

function Summary({ job, onCancelled }: { job: JobDetail; onCancelled: () => void }) {
  const cancellable = job.state === 'queued' || job.state === 'running';
  return (
    <Section title="Summary">
      <dl class="facts">
        <dt>State</dt>
        <dd data-testid="job-state">
          <StateBadge state={job.state} />
          {job.state === 'queued' && job.position > 0 && <span> position {job.position}</span>}
          {job.cancel_requested_at && job.state === 'running' && <span> (cancel requested)</span>}
        </dd>
        <dt>App</dt>
        <dd>
          {job.manifest.app_name ?? '—'} {job.manifest.version ?? ''}
        </dd>
        <dt>Targets</dt>
        <dd>
          {job.manifest.targets.join(', ')} (now: {job.stage} stage)
        </dd>
        <dt>Tier</dt>
        <dd>{job.tier}</dd>
        <dt>Worker</dt>
        <dd>{job.worker ?? '—'}</dd>
        <dt>Queued</dt>
        <dd>{time(job.queued_at)}</dd>
        <dt>Started</dt>
        <dd>{time(job.started_at)}</dd>
        <dt>Finished</dt>
        <dd>
          {time(job.finished_at)}
          {job.duration_secs !== null && ` (${duration(job.duration_secs)})`}
        </dd>
        {job.error && (
          <>
            <dt>Reason</dt>
            <dd class="problem" data-testid="job-error">
              {job.error}
            </dd>
          </>
        )}
      </dl>
      {cancellable && <CancelButton jobId={job.id} onDone={onCancelled} />}
    </Section>
  );
}

function CancelButton({ jobId, onDone }: { jobId: string; onDone: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const confirm = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await api.cancel(jobId);
      dialog.current?.close();
      onDone();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class="danger" onClick={() => dialog.current?.showModal()}>
        Cancel job…
      </button>
      <dialog ref={dialog} aria-labelledby="cancel-title">
        <h2 id="cancel-title">Cancel this job?</h2>
        <p>The build stops and its submitter is told it was cancelled. This cannot be undone.</p>
        <Problem error={error} />
        <div class="actions">
          <button type="button" class="danger" disabled={busy} onClick={() => void confirm()}>
            Yes, cancel the job
          </button>
          <button type="button" onClick={() => dialog.current?.close()} autoFocus>
            Keep it
          </button>
        </div>
      </dialog>
    </>
  );
}

function LogView({
  entries,
  progress,
  streaming,
}: {
  entries: LogEntry[];
  progress: Progress | undefined;
  streaming: boolean;
}) {
  const end = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  useEffect(() => {
    if (follow) end.current?.scrollIntoView({ block: 'nearest' });
  }, [entries.length, follow]);
  return (
    <>
      <p class="muted" aria-live="polite">
        {streaming ? 'Following the build live.' : 'The whole log, replayed.'}{' '}
        <label class="inline">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> follow
        </label>
      </p>
      {progress && (
        <div class="progress" data-testid="progress">
          <label>
            {progress.stage}
            {progress.message ? `: ${progress.message}` : ''} ({progress.percent}%)
            <progress max={100} value={progress.percent} />
          </label>
        </div>
      )}
      <div class="log" role="log" aria-label="Build log" tabIndex={0} data-testid="log">
        {entries.length === 0 && <div class="log-empty">No log messages yet.</div>}
        {entries.map((e, i) => (
          <div key={`${e.seq}:${i}`} class={`log-${e.kind}${e.stream === 'stderr' ? ' log-stderr' : ''}`}>
            {e.kind === 'stage' ? <strong>▸ {e.text}</strong> : e.text}
          </div>
        ))}
        <div ref={end} />
      </div>
    </>
  );
}

function Artifacts({ job, downloads }: { job: JobDetail; downloads: Download[] }) {
  if (job.artifacts.length === 0 && downloads.length === 0) return null;
  const urlOf = (name: string) => downloads.findLast((d) => d.name === name)?.url;
  return (
    <Section title="Artifacts">
      <p class="muted">A download link works once: the first download (here or by the CLI) uses it.</p>
      <div class="scroll" tabIndex={0} role="region" aria-label="Artifacts (scrolls sideways)">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Target</th>
              <th scope="col">Size</th>
              <th scope="col">State</th>
              <th scope="col">Expires</th>
              <th scope="col">SHA-256</th>
            </tr>
          </thead>
          <tbody>
            {job.artifacts.map((a) => {
              const url = urlOf(a.name);
              return (
                <tr key={`${a.name}:${a.attempt}`}>
                  <td>{url && a.state !== 'done' ? <a href={url}>{a.name}</a> : a.name}</td>
                  <td>{a.target}</td>
                  <td>{bytes(a.size)}</td>
                  <td>{a.state}</td>
                  <td>{time(a.expires_at)}</td>
                  <td class="mono hash" title={a.sha256}>
                    {a.sha256.slice(0, 16)}…
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </Section>
  );
}

/** The signed callbacks to the job's callback_url (tools): each binary and the terminal event. */
function Callbacks({ job }: { job: JobDetail }) {
  const callbacks = job.callbacks ?? [];
  if (callbacks.length === 0) return null;
  return (
    <Section title="Webhook deliveries">
      <div class="scroll" tabIndex={0} role="region" aria-label="Webhook deliveries (scrolls sideways)">
        <table data-testid="callbacks">
          <thead>
            <tr>
              <th scope="col">What</th>
              <th scope="col">State</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last answer</th>
              <th scope="col">Next attempt</th>
              <th scope="col">Delivered</th>
              <th scope="col">webhook-id</th>
            </tr>
          </thead>
          <tbody>
            {callbacks.map((c) => (
              <tr key={c.webhook_id}>
                <td>
                  {c.kind === 'artifact' ? `${c.artifact_name ?? 'artifact'} (${c.target ?? '?'})` : c.event_type}
                </td>
                <td>{c.state}</td>
                <td>{c.attempts}</td>
                <td>{c.last_status ?? c.last_error ?? '—'}</td>
                <td>{time(c.next_attempt_at)}</td>
                <td>{time(c.delivered_at)}</td>
                <td class="mono">{c.webhook_id}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Section>
  );
}

function History({ job }: { job: JobDetail }) {
  return (
    <>
      <Section title="State history">
        <ol class="history" data-testid="history">
          {job.history.map((h, i) => (
            <li key={i}>
              <time dateTime={h.at}>{time(h.at)}</time> <StateBadge state={h.state} />
              {h.attempt !== undefined && h.attempt > 0 && <span> attempt {h.attempt}</span>}
              {h.stage && <span> · {h.stage}</span>}
              {h.worker && <span> · on {h.worker}</span>}
              {h.reason && <span class="muted"> · {h.reason}</span>}
            </li>
          ))}
        </ol>
      </Section>
      {job.attempts.length > 0 && (
        <Section title="Attempts">
          <div class="scroll" tabIndex={0} role="region" aria-label="Attempts (scrolls sideways)">
            <table>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Stage</th>
                  <th scope="col">Worker</th>
                  <th scope="col">Started</th>
                  <th scope="col">Ended</th>
                  <th scope="col">Outcome</th>
                </tr>
              </thead>
              <tbody>
                {job.attempts.map((a) => (
                  <tr key={a.attempt}>
                    <td>{a.attempt}</td>
                    <td>{a.stage}</td>
                    <td>{a.worker}</td>
                    <td>{time(a.started_at)}</td>
                    <td>{time(a.ended_at)}</td>
                    <td>
                      {a.outcome}
                      {a.reason && <span class="muted"> ({a.reason})</span>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </Section>
      )}
    </>
  );
}
