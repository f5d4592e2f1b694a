/**
 * The jobs list, newest first: filters by state, target and (admin) license and tool, kept in the URL
 * (`#/jobs?state=…`), pages by the API's cursor. The first page is re-read every POLL_MS.
 */
import { useState } from 'preact/hooks';
import { api, JOB_STATES, type JobFilters } from '../api.js';
import { JobLink, Problem, Section, StateBadge, duration, since, useNow, usePoll } from '../util.js';

export function Jobs({ admin, params }: { admin: boolean; params: URLSearchParams }) {
  const now = useNow();
  const filters: JobFilters = {
    state: params.get('state') ?? undefined,
    target: params.get('target') ?? undefined,
    license: admin ? (params.get('license') ?? undefined) : undefined,
    tool: admin ? (params.get('tool') ?? undefined) : undefined,
  };
  // Cursors of the pages before this one (Previous), and this page's.
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const key = JSON.stringify({ filters, cursor });
  const page = usePoll(() => api.jobs({ ...filters, ...(cursor ? { cursor } : {}), limit: 25 }), key);

  const [form, setForm] = useState({
    state: filters.state ?? '',
    target: filters.target ?? '',
    license: filters.license ?? '',
    tool: filters.tool ?? '',
  });
  const field = (name: keyof typeof form) => (e: Event) =>
    setForm((f) => ({ ...f, [name]: (e.currentTarget as HTMLInputElement | HTMLSelectElement).value }));

  const apply = (e: Event) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of Object.entries(form)) {
      const v = value.trim();
      if (v !== '' && ((name !== 'license' && name !== 'tool') || admin)) next.set(name, v);
    }
    setCursors([]);
    const q = next.toString();
    location.hash = `#/jobs${q === '' ? '' : `?${q}`}`;
  };

  return (
    <div class="page">
      <h1>Jobs</h1>
      <form class="filters" onSubmit={apply} aria-label="Filter jobs">
        <label>
          State
          <select name="state" value={form.state} onChange={field('state')}>
            <option value="">any</option>
            {JOB_STATES.map((s) => (
              <option value={s} key={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Target
          <input name="target" value={form.target} onInput={field('target')} placeholder="e.g. linux" maxLength={64} />
        </label>
        {admin && (
          <label>
            License key
            <input name="license" value={form.license} onInput={field('license')} maxLength={256} autoComplete="off" />
          </label>
        )}
        {admin && (
          <label>
            Tool
            <input name="tool" value={form.tool} onInput={field('tool')} placeholder="e.g. hone-build" maxLength={64} />
          </label>
        )}
        <button type="submit">Apply</button>
      </form>
      <Section title="Results">
        <Problem error={page.error} />
        {page.data && page.data.jobs.length === 0 && <p class="empty">No job matches.</p>}
        {page.data && page.data.jobs.length > 0 && (
          <div class="scroll" tabIndex={0} role="region" aria-label="Jobs (scrolls sideways)">
            <table data-testid="jobs">
              <thead>
                <tr>
                  <th scope="col">Job</th>
                  <th scope="col">State</th>
                  <th scope="col">Stage</th>
                  <th scope="col">Targets</th>
                  <th scope="col">Tier</th>
                  {admin && <th scope="col">License</th>}
                  {admin && <th scope="col">Tool</th>}
                  <th scope="col">Worker</th>
                  <th scope="col">Queued</th>
                  <th scope="col">Took</th>
                </tr>
              </thead>
              <tbody>
                {page.data.jobs.map((j) => (
                  <tr key={j.id} data-job={j.id}>
                    <td>
                      <JobLink id={j.id} />
                    </td>
                    <td>
                      <StateBadge state={j.state} />
                    </td>
                    <td>{j.stage}</td>
                    <td>{j.targets.join(', ')}</td>
                    <td>{j.tier}</td>
                    {admin && <td class="mono">{j.license_key.slice(0, 12)}…</td>}
                    {admin && <td>{j.tool ?? '—'}</td>}
                    <td>{j.worker ?? '—'}</td>
                    <td>{since(j.queued_at, now)}</td>
                    <td>{j.duration_secs === null ? '—' : duration(j.duration_secs)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <nav class="pager" aria-label="Pages">
          <button type="button" disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>
            ← Newer
          </button>
          <button
            type="button"
            disabled={!page.data?.next_cursor}
            onClick={() => {
              const next = page.data?.next_cursor;
              if (next) setCursors((c) => [...c, next]);
            }}
          >
            Older →
          </button>
        </nav>
      </Section>
    </div>
  );
}
