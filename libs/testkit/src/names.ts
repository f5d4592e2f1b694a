import { randomInt } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const RANDOM_LENGTH = 8;
const LABEL_MAX_LENGTH = 18;

/**
 * A name no other test uses: a NATS subject token, a stream-name part and a database name at once
 * (`/^[a-z][a-z0-9_]{0,30}$/`), e.g. `t_k3j9x2ab` or `t_orders_k3j9x2ab`.
 */
export function uniquePrefix(label?: string): string {
  const clean = (label ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, LABEL_MAX_LENGTH)
    .replace(/^_+|_+$/g, '');
  let random = '';
  for (let i = 0; i < RANDOM_LENGTH; i++) random += ALPHABET[randomInt(ALPHABET.length)];
  return clean === '' ? `t_${random}` : `t_${clean}_${random}`;
}
