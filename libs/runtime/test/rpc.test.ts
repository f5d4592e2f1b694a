// The bus's one error envelope: a HubError travels as it is, MySQL being unreachable is a
// passing condition (503, retry), and anything else is logged and hidden behind INTERNAL_ERROR.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import Type from 'typebox';
import { defineEndpoint, HubError, subjects as makeSubjects } from '@perry-hub/contracts';
import { connectTestNats, test } from '@perry-hub/testkit';
import { call, errorReply, handle, serveEndpoints } from '../src/index.js';

const lines: string[] = [];
const log = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
const mysqlError = (code: string) => Object.assign(new Error(`mysql: ${code}`), { code, fatal: true });

describe('errorReply', () => {
  it('keeps a HubError code, message, retry rule and details', () => {
    expect(errorReply(new HubError('RATE_LIMITED', 'slow down', { details: { usage: 3 } }), log, 'x')).toEqual({
      ok: false,
      error: { code: 'RATE_LIMITED', message: 'slow down', retry: 'retry-later', details: { usage: 3 } },
    });
  });

  it.each(['ECONNREFUSED', 'PROTOCOL_CONNECTION_LOST', 'ER_SERVER_SHUTDOWN', 'ER_CON_COUNT_ERROR'])(
    'answers SERVICE_UNAVAILABLE to retry when MySQL is unreachable (%s), logged as a warning',
    (code) => {
      lines.length = 0;
      expect(errorReply(mysqlError(code), log, 'artifact-store.claim')).toEqual({
        ok: false,
        error: { code: 'SERVICE_UNAVAILABLE', message: expect.stringMatching(/database/), retry: 'retry' },
      });
      expect(lines.map((l) => (JSON.parse(l) as { level: number }).level)).toEqual([40]);
    },
  );

  it('hides any other failure behind INTERNAL_ERROR and logs it as an error', () => {
    lines.length = 0;
    expect(errorReply(Object.assign(new Error('boom'), { code: 'ER_PARSE_ERROR' }), log, 'x')).toEqual({
      ok: false,
      error: { code: 'INTERNAL_ERROR', message: 'Internal error' },
    });
    expect(lines.map((l) => (JSON.parse(l) as { level: number }).level)).toEqual([50]);
  });
});

describe('call, while nobody serves the endpoint', () => {
  const echo = defineEndpoint({
    service: 'scheduler',
    name: 'echo',
    request: Type.Object({ n: Type.Integer() }),
    response: Type.Object({ n: Type.Integer() }),
    timeoutMs: 1_000,
  });

  test('fails at once by default, and with forMs keeps asking until a server appears', async ({ natsUrl, prefix }) => {
    const nc = await connectTestNats(natsUrl);
    const subjects = makeSubjects(prefix);
    try {
      await expect(call(nc, subjects, echo, { n: 1 })).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
      const asked = call(nc, subjects, echo, { n: 2 }, { forMs: 15_000 });
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const served = await serveEndpoints({ nc, subjects, service: 'scheduler', version: '0.0.0', log }, [
        handle(echo, async ({ n }) => ({ n })),
      ]);
      expect(await asked).toEqual({ n: 2 });
      await served.stop();
      await expect(call(nc, subjects, echo, { n: 3 }, { forMs: 500 })).rejects.toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
      });
    } finally {
      await nc.close();
    }
  });
});
