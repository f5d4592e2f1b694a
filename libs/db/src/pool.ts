import { createPool, createConnection, type Pool } from 'mysql2/promise';

export type { Pool, PoolConnection, RowDataPacket, ResultSetHeader, ExecuteValues } from 'mysql2/promise';

export interface DbOptions {
  dbHost: string;
  dbPort: number;
  dbUser: string;
  dbPassword: string;
  dbName: string;
  dbPoolSize: number;
}

export class DatabaseError extends Error {
  override readonly name = 'DatabaseError';
  constructor(
    readonly code: 'DB_UNREACHABLE' | 'DB_MISSING',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Create the database if it is missing and we may; an existing database is used as it is
 * (a deployment whose user may not CREATE DATABASE simply has it created beforehand).
 */
export async function ensureDatabase(options: DbOptions): Promise<void> {
  let conn;
  try {
    conn = await createConnection({
      host: options.dbHost,
      port: options.dbPort,
      user: options.dbUser,
      password: options.dbPassword,
      connectTimeout: 10_000,
    });
  } catch (err) {
    throw new DatabaseError(
      'DB_UNREACHABLE',
      `Cannot reach MySQL at ${options.dbHost}:${options.dbPort} as ${options.dbUser}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${options.dbName}\` CHARACTER SET utf8mb4`);
  } catch (err) {
    const [rows] = await conn.query('SHOW DATABASES LIKE ?', [options.dbName]);
    if ((rows as unknown[]).length === 0) {
      throw new DatabaseError('DB_MISSING', `Database ${options.dbName} does not exist and cannot be created`, {
        cause: err,
      });
    }
  } finally {
    await conn.end();
  }
}

/** How long a statement waits for an unreachable MySQL (a restart) before its caller hears of it. */
export const DB_UNREACHABLE_RETRY_MS = 20_000;

/**
 * Runs `op` again while MySQL refuses connections (ECONNREFUSED: restarting, or a failover), for
 * at most `forMs`. Only a refused connection is retried: nothing was sent on it, so no statement
 * can run twice. A connection lost mid-statement is the caller's to judge.
 */
export async function whileRefused<T>(op: () => Promise<T>, forMs = DB_UNREACHABLE_RETRY_MS): Promise<T> {
  const deadline = Date.now() + forMs;
  let delayMs = 100;
  for (;;) {
    try {
      return await op();
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ECONNREFUSED' || Date.now() + delayMs > deadline) throw err;
      await new Promise((r) => setTimeout(r, delayMs));
      delayMs = Math.min(delayMs * 2, 1_000);
    }
  }
}

/**
 * A pool whose statements and connections ride out a MySQL restart (see `whileRefused`): a build
 * uploading its artifact or a scheduler assigning a job waits for the database to be back instead
 * of failing at once.
 */
export function openPool(options: DbOptions): Pool {
  const pool = openRawPool(options);
  const retrying = new Proxy(pool, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop === 'query' || prop === 'execute' || prop === 'getConnection')
        return (...args: unknown[]) => whileRefused(() => fn.apply(target, args) as Promise<unknown>);
      return fn.bind(target);
    },
  });
  unretried.set(retrying, pool);
  return retrying;
}

const unretried = new WeakMap<Pool, Pool>();

/** The same pool without the wait for a restarting MySQL: for checks that must answer at once. */
export function failingFast(pool: Pool): Pool {
  return unretried.get(pool) ?? pool;
}

/** Prepared statements a pooled connection keeps (least recently used closed first). */
export const MAX_PREPARED_STATEMENTS_PER_CONNECTION = 64;

function openRawPool(options: DbOptions): Pool {
  return createPool({
    host: options.dbHost,
    port: options.dbPort,
    user: options.dbUser,
    password: options.dbPassword,
    database: options.dbName,
    connectionLimit: options.dbPoolSize,
    waitForConnections: true,
    connectTimeout: 10_000,
    enableKeepAlive: true,
    // BIGINT epoch-millisecond columns must come back as numbers, not strings.
    supportBigNumbers: true,
    bigNumberStrings: false,
    timezone: 'Z',
    // Otherwise every query captures a stack trace up front in case it fails (mysql2's
    // captureStackHolder): a few percent of the hub's CPU at a hundred builds a second. Errors
    // keep their message, code and SQL state; they lose the caller's frames.
    trace: false,
    // The statements every build runs go through `execute`: prepared once per connection and
    // kept, so MySQL parses each of them once instead of once per build. Only fixed statements
    // are prepared (never a list spliced into the text), so a few dozen cover a connection; the
    // bound keeps the server's prepared statements (max_prepared_stmt_count) far from its limit
    // whatever the pool size.
    maxPreparedStatements: MAX_PREPARED_STATEMENTS_PER_CONNECTION,
  });
}

/** DbOptions from plain connection credentials (as a test kit or an operator tool has them). */
export function dbOptions(
  credentials: { host: string; port: number; user: string; password: string; database: string },
  poolSize = 2,
): DbOptions {
  return {
    dbHost: credentials.host,
    dbPort: credentials.port,
    dbUser: credentials.user,
    dbPassword: credentials.password,
    dbName: credentials.database,
    dbPoolSize: poolSize,
  };
}
