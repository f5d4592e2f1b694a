import { test as base } from 'vitest';
import { createTestDatabase } from './database.js';
import { uniquePrefix } from './names.js';
import { getTestStack } from './stack.js';

/**
 * `test` with the shared servers as fixtures. `stack` is per worker; `prefix` and `database` are
 * fresh for every test, and the database is dropped when the test ends.
 */
export const test = base
  .extend('stack', { scope: 'worker' }, async () => getTestStack())
  .extend('natsUrl', async ({ stack }) => stack.natsUrl)
  .extend('prefix', async () => uniquePrefix())
  .extend('database', async ({ stack }, { onCleanup }) => {
    // The stack dependency orders the start; createTestDatabase reuses the same memoized stack.
    void stack;
    const database = await createTestDatabase();
    onCleanup(() => database.drop());
    return database;
  });
