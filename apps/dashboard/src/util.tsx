/** Small shared pieces: polling, time formatting, state badges. */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { ApiError } from './api.js';

/** How often the pages re-read the JSON routes (the README's Dashboard section says so). */
export const POLL_MS = 2_000;

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  /** Read again now (after an action). */
  refresh: () => void;
}

/**
 * Calls `load` now and every POLL_MS while the page is shown (and the tab visible); a slow answer
 * is never overtaken by the next call. `key` restarts it (new filters, another job).
 */
export function usePoll<T>(load: () => Promise<T>, key: string, enabled = true): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    setData(undefined);
    setError(undefined);
  }, [key]);
  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const value = await loadRef.current();
        if (stopped) return;
        setData(value);
        setError(undefined);
      } catch (err) {
        if (!stopped) setError((err as Error).message);
        // Refused or not found: asking again would only be refused again (and count as a guess).
        if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429) return;
      }
      if (!stopped) timer = setTimeout(run, POLL_MS);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [key, enabled, tick]);
  return { data, error, refresh: () => setTick((t) => t + 1) };
}

/** Re-renders every second (ticking waits and countdowns between polls). */
export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1_000);
    return () => clearInterval(t);
  }, []);
  return now;
}

export function duration(secs: number): string {
  const s = Math.max(0, Math.floor(secs));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

export function since(iso: string | null | undefined, now: number): string {
  if (!iso) return '—';
  return `${duration((now - Date.parse(iso)) / 1000)} ago`;
}

/** A moment ahead, as a countdown ("in 4m 10s"); "now" once it has passed. */
export function countdown(iso: string | null | undefined, now: number): string {
  if (!iso) return '—';
  const left = (Date.parse(iso) - now) / 1000;
  return left <= 0 ? 'now' : `in ${duration(left)}`;
}

export function time(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, {
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge state-${state}`}>{state.replace('_', ' ')}</span>;
}

export function Section({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) {
  const headingId = `h-${id ?? title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <section aria-labelledby={headingId} class="card">
      <h2 id={headingId}>{title}</h2>
      {children}
    </section>
  );
}

export function Problem({ error }: { error: string | undefined }) {
  return error ? (
    <p class="problem" role="alert">
      {error}
    </p>
  ) : null;
}

export function JobLink({ id }: { id: string }) {
  return (
    <a href={`#/jobs/${id}`} class="mono">
      {shortId(id)}
    </a>
  );
}

/** Midnight of today, local time: "today" on the overview. */
export function startOfToday(): Date {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d;
}
