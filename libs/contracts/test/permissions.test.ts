import { describe, expect, it } from 'vitest';
import {
  ANY_PREFIX,
  natsInboxPrefix,
  natsPermissions,
  SERVICE_NAMES,
  subjects,
  topology,
  type TopologyEntry,
} from '../src/index.js';

const streamOf = (e: TopologyEntry) =>
  e.kind === 'stream' ? e.name : e.kind === 'kv' ? `KV_${e.bucket}` : e.kind === 'obj' ? `OBJ_${e.bucket}` : e.stream;

describe('natsPermissions', () => {
  it('grants each topology entry to exactly the services that declare it, and no deletes or catch-alls', () => {
    for (const name of SERVICE_NAMES) {
      const p = natsPermissions('acme', name);
      for (const entry of topology('acme')) {
        const info = `$JS.API.STREAM.INFO.${streamOf(entry)}`;
        if (entry.kind === 'consumer') {
          const next = `$JS.API.CONSUMER.MSG.NEXT.${entry.stream}.${entry.durable}`;
          expect(p.publish.includes(next), `${name} ${next}`).toBe(entry.usedBy[name] !== undefined);
        } else {
          // A service that never ensures a stream may still publish to its subjects (e.g. events).
          if (entry.usedBy[name] !== undefined) expect(p.publish, name).toContain(info);
          else expect(p.publish, name).not.toContain(info);
        }
      }
      for (const subject of [...p.publish, ...p.subscribe]) {
        expect(subject).not.toMatch(/STREAM\.DELETE|^>$|^\$JS\.API\.>$|^\$JS\.>$|^acme\.>$|^_INBOX\.>$/);
      }
      expect(p.subscribe).toContain(`${natsInboxPrefix('acme', name)}.>`);
    }
  });

  it('gives a tool only the tool-facing subjects, its own API and its own inbox', () => {
    const s = subjects('acme');
    expect(natsPermissions('acme', { tool: 'ci' })).toEqual({
      publish: [s.buildsSubmit, s.buildsCancel, 'acme.tools.ci.*'],
      subscribe: ['_INBOX.acme.tool-ci.>'],
      allowResponses: false,
    });
  });

  it('for any prefix, puts a wildcard exactly where the prefix was', () => {
    for (const who of [...SERVICE_NAMES, { tool: 'ci' }] as const) {
      const exact = natsPermissions('zq', who);
      const wide = natsPermissions(ANY_PREFIX, who);
      const widen = (subject: string) =>
        subject
          .split('.')
          .map((t) => (/^(zq|ZQ_.*|KV_zq-.*|OBJ_zq-.*|zq-.*)$/.test(t) ? '*' : t))
          .join('.');
      expect(wide.publish).toEqual([...new Set(exact.publish.map(widen))]);
      expect(wide.subscribe).toEqual([...new Set(exact.subscribe.map(widen))]);
      expect(JSON.stringify(wide)).not.toMatch(/sentinel/i);
    }
  });
});
