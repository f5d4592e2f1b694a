/**
 * The build manifest (reference 5.1) and signing credentials (5.2) as the hub checks them at
 * intake. The hub requires only what it or every worker needs; any other key passes through
 * untouched, because workers read keys the hub does not know (and ignore keys they do not know).
 */
import Type, { type Static } from 'typebox';
import { CLIENT_TARGETS } from './jobs.js';

/**
 * What a build produces. `app` (the default when absent): packaged, and possibly finished by a
 * sign stage. `plugin`: compiled only, always one stage, the raw binary per target.
 */
export const BUILD_TYPES = ['app', 'plugin'] as const;
export type BuildType = (typeof BUILD_TYPES)[number];

export const BuildManifest = Type.Object(
  {
    app_name: Type.String({ minLength: 1, maxLength: 200, description: 'Application name (every worker requires it)' }),
    bundle_id: Type.String({
      minLength: 1,
      maxLength: 255,
      description: 'Reverse-DNS identifier; also the project identity of a device-bound license',
    }),
    version: Type.String({ minLength: 1, maxLength: 64, description: 'Version or build number' }),
    entry: Type.String({ minLength: 1, maxLength: 1024, description: 'Entry file, relative to the project root' }),
    targets: Type.Array(Type.Enum(CLIENT_TARGETS), {
      minItems: 1,
      maxItems: CLIENT_TARGETS.length,
      description: 'What to build; sign targets (`ios-sign`, ...) are set by the hub itself, never by a client',
    }),
    build_type: Type.Optional(
      Type.Enum(BUILD_TYPES, {
        description:
          '`app` (default) or `plugin`: a plugin build is compiled only, never re-queued to a sign stage; its artifacts are the raw binaries, one per target',
      }),
    ),
  },
  { additionalProperties: true },
);
export type BuildManifest = Static<typeof BuildManifest>;

/**
 * Credentials are an open JSON object (reference 5.2 lists what the CLI and the workers know).
 * The hub never reads them: it seals them at intake and hands them only to the assigned worker.
 */
export const BuildCredentials = Type.Record(Type.String(), Type.Unknown(), {
  description: 'Signing credentials, forwarded verbatim to the worker in job_assign',
});
export type BuildCredentials = Static<typeof BuildCredentials>;

/** What a device-bound license is bound to (the original's `bundle_id || name || ''`). */
export function projectIdOf(manifest: Readonly<Record<string, unknown>>): string {
  for (const key of ['bundle_id', 'name']) {
    const value = manifest[key];
    if (typeof value === 'string' && value !== '') return value;
  }
  return '';
}

/** The manifest's build type; absent means `app`. */
export function buildTypeOf(manifest: Readonly<Record<string, unknown>>): BuildType {
  return manifest['build_type'] === 'plugin' ? 'plugin' : 'app';
}
