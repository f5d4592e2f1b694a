/**
 * Configuration from the environment through TypeBox schemas.
 *
 * Each field of a config object declares the environment variable it comes from (`fromEnv`), so
 * the schema is the single source of truth for parsing, defaults, validation, redaction and the
 * README's configuration table. All problems are collected and reported at once. A variable
 * whose text stands for something richer (keys, an address list) is parsed there too
 * (`parsedFromEnv`): its problems are reported with the others, and services receive the value.
 */
import Type, { type Static, type TObject, type TProperties, type TSchema, type TString, type TUnsafe } from 'typebox';
import Value from 'typebox/value';

export interface EnvOptions {
  /** Never printed: logged and listed as `[redacted]`. */
  secret?: boolean;
  description: string;
}

interface EnvAnnotations {
  env: string;
  secret?: boolean;
  description: string;
  /** See ParsedEnvOptions. */
  parse?: (text: string) => unknown;
  expected?: string;
}

/** Annotate a schema with the environment variable it is read from. */
export function fromEnv<T extends TSchema>(name: string, schema: T, options: EnvOptions): T {
  return { ...schema, env: name, description: options.description, ...(options.secret ? { secret: true } : {}) };
}

export interface ParsedEnvOptions<T> extends EnvOptions {
  /** What the text must be, completing "<VARIABLE> must be ...", e.g. "a comma-separated list of ...". */
  expected: string;
  /**
   * The text (the default when unset) as the value services receive. Throws an Error saying which
   * part is wrong, without echoing a secret.
   */
  parse: (text: string) => T;
}

/**
 * A variable read as text (checked against `schema`) and handed on as `parse` makes it. Parsing at
 * load time reports a bad value with every other problem before anything starts, and leaves one
 * parser: services never parse the text again.
 */
export function parsedFromEnv<T>(name: string, schema: TString, options: ParsedEnvOptions<T>): TUnsafe<T> {
  return Type.Unsafe<T>({ ...fromEnv(name, schema, options), parse: options.parse, expected: options.expected });
}

function annotations(schema: TSchema): EnvAnnotations | undefined {
  const a = schema as unknown as Partial<EnvAnnotations>;
  return typeof a.env === 'string' ? (a as EnvAnnotations) : undefined;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: readonly string[]) {
    super(
      `Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`,
    );
  }
}

type Env = Readonly<Record<string, string | undefined>>;

function schemaType(schema: TSchema): string | undefined {
  const t = (schema as { type?: unknown }).type;
  if (typeof t === 'string') return t;
  const anyOf = (schema as { anyOf?: TSchema[] }).anyOf;
  if (anyOf && anyOf.length > 0) return schemaType(anyOf[0] as TSchema);
  return undefined;
}

const BOOLEAN_WORDS: Record<string, boolean> = {
  true: true,
  '1': true,
  yes: true,
  false: false,
  '0': false,
  no: false,
};

function convert(raw: string, schema: TSchema): { ok: true; value: unknown } | { ok: false; reason: string } {
  switch (schemaType(schema)) {
    case 'integer':
    case 'number': {
      const trimmed = raw.trim();
      const pattern = schemaType(schema) === 'integer' ? /^-?\d+$/ : /^-?\d+(\.\d+)?$/;
      if (!pattern.test(trimmed))
        return { ok: false, reason: `must be ${schemaType(schema) === 'integer' ? 'an integer' : 'a number'}` };
      return { ok: true, value: Number(trimmed) };
    }
    case 'boolean': {
      const word = BOOLEAN_WORDS[raw.trim().toLowerCase()];
      return word === undefined ? { ok: false, reason: 'must be true or false (or 1/0)' } : { ok: true, value: word };
    }
    default:
      return { ok: true, value: raw };
  }
}

/**
 * Parse `env` against `schema`. Unset or empty variables take the field's default; a field
 * without default is required. Throws ConfigError listing every problem.
 */
export function loadConfig<T extends TObject>(schema: T, env: Env): Static<T> {
  const problems: string[] = [];
  const result: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(schema.properties as TProperties)) {
    const a = annotations(field);
    if (!a) throw new TypeError(`config field ${key} has no environment variable (use fromEnv)`);
    const raw = env[a.env];
    const shown = a.secret ? '[redacted]' : JSON.stringify(raw);
    const parseInto = (parse: (text: string) => unknown, text: string) => {
      try {
        result[key] = parse(text);
      } catch (err) {
        problems.push(`${a.env} must be ${a.expected ?? 'valid'}: ${(err as Error).message} (got ${shown})`);
      }
    };
    if (raw === undefined || raw === '') {
      if ('default' in field) {
        const fallback = (field as { default: unknown }).default;
        if (a.parse) parseInto(a.parse, String(fallback));
        else result[key] = Value.Clone(fallback);
        continue;
      }
      if (isOptional(field)) continue;
      problems.push(`${a.env} is required (${a.description})`);
      continue;
    }
    const converted = convert(raw, field);
    if (!converted.ok) {
      problems.push(`${a.env} ${converted.reason} (got ${shown})`);
      continue;
    }
    const errors = Value.Errors(field, converted.value);
    const allowed = (field as { enum?: unknown }).enum;
    if (errors.length > 0 && Array.isArray(allowed)) {
      problems.push(`${a.env} must be one of ${allowed.join(', ')} (got ${shown})`);
      continue;
    }
    if (errors.length > 0) {
      problems.push(`${a.env} ${errors.map((e) => e.message).join('; ')} (got ${shown})`);
      continue;
    }
    if (a.parse) parseInto(a.parse, raw);
    else result[key] = converted.value;
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return result as Static<T>;
}

function isOptional(schema: TSchema): boolean {
  return (schema as { '~optional'?: boolean })['~optional'] === true;
}

/** A copy safe to log: secret fields are replaced, unset ones omitted. */
export function redactConfig<T extends TObject>(schema: T, config: Static<T>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(schema.properties as TProperties)) {
    const value = (config as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const empty = value === '' || (Array.isArray(value) && value.length === 0);
    out[key] = annotations(field)?.secret && !empty ? '[redacted]' : value;
  }
  return out;
}

export interface ConfigVariable {
  env: string;
  default: string;
  description: string;
  secret: boolean;
}

/** The variables a schema reads, for `--help` and the README's configuration table. */
export function describeConfig(schema: TObject): ConfigVariable[] {
  return Object.values(schema.properties as TProperties).flatMap((field) => {
    const a = annotations(field);
    if (!a) return [];
    const d = (field as { default?: unknown }).default;
    return [
      {
        env: a.env,
        default: d === undefined ? '(required)' : d === '' ? '(empty)' : String(d),
        description: a.description,
        secret: a.secret === true,
      },
    ];
  });
}

/** Merge config schemas (shared fragments plus a service's own fields) into one object schema. */
export function configSchema<T extends TProperties>(properties: T) {
  return Type.Object(properties, { additionalProperties: false });
}
