/**
 * One entry of a job's event log (`<p>.jobs.<id>.events`) holds one wire message, or, when it
 * carries the EVENT_BATCH_HEADER, several: the gateway appends the messages a worker sent together
 * (one socket read, or what arrived while the previous append was being stored) as one JetStream
 * message, so a burst costs one publish and one ack instead of one per line. The messages are
 * joined by a newline (a wire message is one line of JSON: JSON.stringify escapes every newline,
 * and UTF-8 never carries the byte 0x0A inside a character), and every reader hands them on one
 * by one, byte for byte as the worker's gateway stored them. An entry without the header is one
 * message, whatever it contains.
 */

/** Header of a batched entry: how many wire messages it holds. */
export const EVENT_BATCH_HEADER = 'Perry-Events';

const NEWLINE = 0x0a;

/** The stored payload of several wire messages (each a line of JSON without a newline). */
export function joinEvents(events: readonly string[]): string {
  return events.join('\n');
}

/**
 * The wire messages of one stored entry, in order: `count` is the entry's EVENT_BATCH_HEADER
 * (absent or unreadable: the entry is one message).
 */
export function splitEvents(data: Uint8Array, count: string | undefined): Uint8Array[] {
  if (count === undefined || !(Number(count) > 1)) return [data];
  const out: Uint8Array[] = [];
  let start = 0;
  for (let i = data.indexOf(NEWLINE); i >= 0; i = data.indexOf(NEWLINE, start)) {
    out.push(data.subarray(start, i));
    start = i + 1;
  }
  out.push(data.subarray(start));
  return out;
}
