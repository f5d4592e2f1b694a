/**
 * What a worker may say about itself in `worker_hello` (reference 2.4.1). Checked at the gateway
 * when the hello arrives, so a bad value is refused with a clear reason instead of reaching
 * presence, the scheduler or MySQL (`builds.workerName`). The three Rust workers' real hellos
 * (linux, macOS, Windows) all pass.
 */
import { CLIENT_TARGETS, SIGN_TARGETS } from './jobs.js';

/** Every capability a worker may advertise: the targets clients ask for and the hub's sign targets. */
export const WORKER_CAPABILITIES: readonly string[] = [...CLIENT_TARGETS, ...SIGN_TARGETS];

/** Host names and `PERRY_WORKER_NAME`s: letters, digits, `.`, `_`, `-`; fits `workerName VARCHAR(255)`. */
export const WORKER_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]*$';
export const WORKER_NAME_MAX_CHARS = 128;

/** `max_concurrent` (PERRY_MAX_CONCURRENT_BUILDS); absent means one slot (the Windows worker). */
export const WORKER_MAX_SLOTS = 64;

/** `perry_version` (output of `perry --version`): printable ASCII, short. */
export const PERRY_VERSION_PATTERN = '^[\\x21-\\x7e]*$';
export const PERRY_VERSION_MAX_CHARS = 64;
