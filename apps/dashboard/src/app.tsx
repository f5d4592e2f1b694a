/**
 * The dashboard's shell: who is signed in (the hub's session cookie, asked on load), the
 * navigation, and the page the location hash names (`#/`, `#/jobs`, `#/jobs/<id>`, `#/workers`).
 */
import { useEffect, useState } from 'preact/hooks';
import { api, whenSignedOut, type SessionState } from './api.js';
import { SignIn } from './pages/sign-in.js';
import { Overview } from './pages/overview.js';
import { Jobs } from './pages/jobs.js';
import { Job } from './pages/job.js';
import { Workers } from './pages/workers.js';

interface Route {
  page: 'overview' | 'jobs' | 'job' | 'workers' | 'unknown';
  id?: string;
  params: URLSearchParams;
}

function parseHash(hash: string): Route {
  const [path = '', q = ''] = hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(q);
  const parts = path.split('/').filter(Boolean);
  if (parts.length === 0) return { page: 'overview', params };
  if (parts[0] === 'jobs' && parts.length === 1) return { page: 'jobs', params };
  if (parts[0] === 'jobs' && parts.length === 2) return { page: 'job', id: decodeURIComponent(parts[1] ?? ''), params };
  if (parts[0] === 'workers' && parts.length === 1) return { page: 'workers', params };
  return { page: 'unknown', params };
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseHash(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

const KIND_LABEL = { admin: 'admin', account: 'account (API token)', license: 'license' } as const;

export function App() {
  const [session, setSession] = useState<SessionState | undefined>(undefined);
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const route = useRoute();
  useEffect(() => {
    whenSignedOut(() => setSession({ signed_in: false, kind: null, expires_at: null }));
    api
      .session()
      .then(setSession)
      .catch((err: Error) => setProblem(`The hub did not answer: ${err.message}`));
  }, []);
  // After a navigation the focus moves to the new page, for keyboard and screen-reader users.
  const [first, setFirst] = useState(true);
  useEffect(() => {
    if (first) setFirst(false);
    else document.getElementById('main')?.focus({ preventScroll: true });
  }, [route.page, route.id]);

  if (problem)
    return (
      <p role="alert" class="problem page">
        {problem}
      </p>
    );
  if (!session) return <p class="page">Loading…</p>;
  if (!session.signed_in || !session.kind) return <SignIn onSignedIn={(s) => setSession(s)} />;
  const admin = session.kind === 'admin';
  const signOut = async () => {
    await api.signOut().catch(() => undefined);
    setSession({ signed_in: false, kind: null, expires_at: null });
  };
  const current = (page: Route['page']) => (route.page === page ? { 'aria-current': 'page' as const } : {});
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Perry Hub</span>
        <nav aria-label="Main">
          <a href="#/" {...current('overview')}>
            Overview
          </a>
          <a href="#/jobs" {...current('jobs')}>
            Jobs
          </a>
          {admin && (
            <a href="#/workers" {...current('workers')}>
              Workers
            </a>
          )}
        </nav>
        <span class="who" data-testid="who">
          Signed in: {KIND_LABEL[session.kind]}
        </span>
        <button type="button" class="link" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {route.page === 'overview' && <Overview admin={admin} />}
        {route.page === 'jobs' && <Jobs admin={admin} params={route.params} key={route.params.toString()} />}
        {route.page === 'job' && route.id && <Job id={route.id} key={route.id} />}
        {route.page === 'workers' && (admin ? <Workers /> : <p>Only the admin sees the workers.</p>)}
        {route.page === 'unknown' && (
          <p>
            No such page. <a href="#/">Overview</a>
          </p>
        )}
      </main>
    </>
  );
}
