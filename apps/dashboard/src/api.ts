/**
 * The hub's HTTP API as the dashboard uses it: the jobs and operations routes, with the session
 * cookie the hub set at sign-in (same origin; the browser sends it, no script can read it).
 * Response shapes are the contracts' types.
 */
import type {
  JobCountsResponse,
  JobDetail,
  JobListResponse,
  QueueResponse,
  SessionResponse,
  SessionState,
  VmsResponse,
  WorkersResponse,
} from '@perry-hub/contracts';

export type {
  JobCountsResponse,
  JobDetail,
  JobListResponse,
  JobSummary,
  QueueResponse,
  SessionResponse,
  SessionState,
  VmsResponse,
  WorkerInfo,
  WorkersResponse,
} from '@perry-hub/contracts';

export const JOB_STATES = ['queued', 'running', 'completed', 'failed', 'cancelled', 'expired'] as const;
export const TERMINAL_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled', 'expired']);

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Called when the hub answers 401: the session expired or was never there. */
let onSignedOut: () => void = () => undefined;
export function whenSignedOut(handler: () => void): void {
  onSignedOut = handler;
}

async function request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    const err = new ApiError(res.status, error?.code ?? 'HTTP_ERROR', error?.message ?? `HTTP ${res.status}`);
    if (res.status === 401 && !path.startsWith('/ui/session')) onSignedOut();
    throw err;
  }
  return parsed as T;
}

const query = (params: Record<string, string | undefined>) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
};

export const api = {
  session: () => request<SessionState>('GET', '/ui/session'),
  signIn: (secret: string) => request<SessionResponse>('POST', '/ui/session', { secret }),
  signOut: () => request<void>('POST', '/ui/session/end'),
  jobs: (filters: JobFilters & { cursor?: string; limit?: number }) =>
    request<JobListResponse>(
      'GET',
      `/api/v1/jobs${query({ ...filters, limit: filters.limit === undefined ? undefined : String(filters.limit) })}`,
    ),
  counts: (since: Date) =>
    request<JobCountsResponse>('GET', `/api/v1/jobs/counts${query({ since: since.toISOString() })}`),
  job: (id: string) => request<JobDetail>('GET', `/api/v1/jobs/${encodeURIComponent(id)}`),
  cancel: (id: string) =>
    request<{ job_id: string; cancelled: boolean }>('POST', `/api/v1/jobs/${encodeURIComponent(id)}/cancel`, {}),
  workers: () => request<WorkersResponse>('GET', '/api/v1/workers'),
  queue: () => request<QueueResponse>('GET', '/api/v1/queue'),
  vms: () => request<VmsResponse>('GET', '/api/v1/vms'),
  eventsUrl: (id: string) => `/api/v1/jobs/${encodeURIComponent(id)}/events`,
};

export interface JobFilters {
  state?: string | undefined;
  target?: string | undefined;
  license?: string | undefined;
  tool?: string | undefined;
}
