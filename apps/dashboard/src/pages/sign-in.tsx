/**
 * Sign-in: the secret goes to the hub once, in a POST; the hub answers with an httpOnly session
 * cookie (this page never stores or sees it). A wrong secret is refused and counted by the hub's
 * failed-authentication limit.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, type SessionState } from '../api.js';

export function SignIn({ onSignedIn }: { onSignedIn: (session: SessionState) => void }) {
  const [secret, setSecret] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const field = useRef<HTMLInputElement>(null);
  // The only field: focused on arrival, so a keyboard user types the secret and presses Enter.
  useEffect(() => field.current?.focus(), []);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const s = await api.signIn(secret);
      setSecret('');
      onSignedIn({ signed_in: true, kind: s.kind, expires_at: s.expires_at });
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) setError(`Too many failed sign-ins: ${err.message}`);
      else if (err instanceof ApiError && err.status === 401)
        setError('Sign-in refused: that is not a valid admin secret, API token or license key.');
      else setError(`Sign-in failed: ${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <h1>Perry Hub</h1>
      <form method="post" action="/ui/session" onSubmit={(e) => void submit(e)} aria-describedby="signin-help">
        <label for="secret">Admin secret, API token or license key</label>
        <input
          id="secret"
          name="secret"
          type="password"
          ref={field}
          autoComplete="current-password"
          required
          maxLength={512}
          value={secret}
          onInput={(e) => setSecret(e.currentTarget.value)}
        />
        <p id="signin-help" class="muted">
          The admin sees every job, the queue, workers and sign VMs; a license key or API token sees its own jobs.
        </p>
        {error && (
          <p class="problem" role="alert" data-testid="signin-error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
