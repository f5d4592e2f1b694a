import { describe, expect, it } from 'vitest';
import Type from 'typebox';
import {
  ConfigError,
  configSchema,
  describeConfig,
  fromEnv,
  loadConfig,
  parsedFromEnv,
  redactConfig,
} from '../src/index.js';

const Schema = configSchema({
  port: fromEnv('T_PORT', Type.Integer({ minimum: 1, maximum: 65535, default: 3456 }), { description: 'port' }),
  host: fromEnv('T_HOST', Type.String({ minLength: 1 }), { description: 'host name' }),
  selfHosted: fromEnv('T_SELF_HOSTED', Type.Boolean({ default: false }), { description: 'flag' }),
  secret: fromEnv('T_SECRET', Type.String({ default: '' }), { description: 'a secret', secret: true }),
  level: fromEnv('T_LEVEL', Type.Enum(['info', 'debug'], { default: 'info' }), { description: 'level' }),
});

describe('loadConfig', () => {
  it('applies defaults and converts strings by the schema', () => {
    const config = loadConfig(Schema, { T_HOST: 'example', T_PORT: '8080', T_SELF_HOSTED: 'true' });
    expect(config).toEqual({ port: 8080, host: 'example', selfHosted: true, secret: '', level: 'info' });
  });

  it('treats an empty variable as unset, as the original hub did', () => {
    expect(loadConfig(Schema, { T_HOST: 'h', T_PORT: '' }).port).toBe(3456);
  });

  it('reports every problem at once', () => {
    let error: unknown;
    try {
      loadConfig(Schema, { T_PORT: '99999', T_SELF_HOSTED: 'maybe', T_LEVEL: 'loud' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toMatch(/T_PORT .*65535/);
    expect(problems.join('\n')).toMatch(/T_HOST is required/);
    expect(problems.join('\n')).toMatch(/T_SELF_HOSTED must be true or false/);
    expect(problems.join('\n')).toMatch(/T_LEVEL/);
    expect((error as ConfigError).message).toMatch(/4 problems/);
  });

  it('rejects numbers with trailing garbage instead of truncating them', () => {
    expect(() => loadConfig(Schema, { T_HOST: 'h', T_PORT: '80abc' })).toThrow(/T_PORT must be an integer/);
  });

  it('never echoes a secret in an error or a log line', () => {
    const Strict = configSchema({
      secret: fromEnv('T_SECRET', Type.String({ minLength: 32 }), { description: 'key', secret: true }),
    });
    expect(() => loadConfig(Strict, { T_SECRET: 'hunter2' })).toThrow(/\[redacted\]/);
    expect(() => loadConfig(Strict, { T_SECRET: 'hunter2' })).not.toThrow(/hunter2/);
    const config = loadConfig(Schema, { T_HOST: 'h', T_SECRET: 'hunter2' });
    expect(JSON.stringify(redactConfig(Schema, config))).not.toContain('hunter2');
  });

  it('describes its variables with defaults for the documentation', () => {
    const vars = describeConfig(Schema);
    expect(vars.map((v) => v.env)).toEqual(['T_PORT', 'T_HOST', 'T_SELF_HOSTED', 'T_SECRET', 'T_LEVEL']);
    expect(vars.find((v) => v.env === 'T_HOST')?.default).toBe('(required)');
    expect(vars.find((v) => v.env === 'T_SECRET')).toMatchObject({ default: '(empty)', secret: true });
  });

  it('parses a variable into the value services receive, and reports a bad one with the others', () => {
    const list = (text: string) =>
      text.split(',').map((item) => {
        if (!/^\d+$/.test(item)) throw new Error(`"${item}" is not a number`);
        return Number(item);
      });
    const Parsed = configSchema({
      ids: parsedFromEnv('T_IDS', Type.String({ default: '1' }), {
        description: 'ids',
        expected: 'comma-separated numbers',
        parse: list,
      }),
      port: fromEnv('T_PORT', Type.Integer({ default: 1 }), { description: 'port' }),
    });
    expect(loadConfig(Parsed, {}).ids).toEqual([1]);
    expect(loadConfig(Parsed, { T_IDS: '2,3' }).ids).toEqual([2, 3]);
    expect(() => loadConfig(Parsed, { T_IDS: '2,x', T_PORT: 'p' })).toThrow(
      /2 problems[^]*T_IDS must be comma-separated numbers: "x" is not a number \(got "2,x"\)/,
    );
    expect(describeConfig(Parsed)[0]).toMatchObject({ env: 'T_IDS', default: '1' });
  });
});
