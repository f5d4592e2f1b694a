/** Requests to the hub's HTTP API, with its error envelope turned into a message and exit code. */
import { CliError, EXIT } from './common.js';

export interface RequestOptions {
  method?: string;
  body?: unknown;
  /** Sent as `Authorization: Bearer <bearer>`. */
  bearer?: string;
  /** Extra query parameters (undefined ones are left out). */
  query?: Record<string, string | number | undefined>;
}

export async function hubRequest<T>(server: string, path: string, options: RequestOptions = {}): Promise<T> {
  const url = new URL(`${server}${path}`);
  for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
  // One decision, used for the request and for the message that names it.
  const method = options.method ?? (options.body === undefined ? 'GET' : 'POST');
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: {
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(options.bearer === undefined ? {} : { authorization: `Bearer ${options.bearer}` }),
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    });
  } catch (err) {
    throw unreachable(server, err);
  }
  const text = await res.text();
  if (!res.ok) throw refused(res.status, text, `${method} ${path}`);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new CliError(`the hub answered ${path} with something that is not JSON: ${text.slice(0, 200)}`, EXIT.hub);
  }
}

export function unreachable(server: string, err: unknown): CliError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message;
  return new CliError(`cannot reach the hub at ${server} (${why}); check --server or PERRY_HUB_SERVER`, EXIT.hub);
}

/** The hub's `{"error":{"code","message"}}` as one line. */
export function refused(status: number, body: string, what: string): CliError {
  let detail = body.slice(0, 300);
  try {
    const e = (JSON.parse(body) as { error?: { code?: string; message?: string } }).error;
    if (e?.code) detail = `${e.code}: ${e.message ?? ''}`;
  } catch {
    // not the envelope: show the start of the body
  }
  const hint = status === 401 || status === 403 ? ' (check the credential)' : status === 404 ? '' : '';
  return new CliError(`the hub refused ${what}: ${status} ${detail}${hint}`, EXIT.hub);
}
