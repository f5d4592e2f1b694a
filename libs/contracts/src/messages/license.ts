/**
 * The license service's request/reply endpoints (`<p>.svc.license.<name>`), and the HTTP bodies
 * of the license and account routes, which keep the original hub's field names (reference 1.2).
 *
 * Failures travel as HubErrors with the original's codes and messages, so the HTTP front door
 * passes them through unchanged (e.g. `PUBLISH_LIMIT_REACHED` with `details.usage`).
 */
import Type, { type Static } from 'typebox';
import { defineEndpoint } from '../rpc.js';
import { TIERS } from './jobs.js';

const Tier = Type.Enum(TIERS);
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const LicenseInfo = Type.Object(
  {
    licenseKey: Type.String(),
    tier: Tier,
    platforms: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);
export type LicenseInfo = Static<typeof LicenseInfo>;

export const registerLicenseEndpoint = defineEndpoint({
  service: 'license',
  name: 'register',
  request: Type.Object({ githubUsername: Nullable(Type.String({ maxLength: 255 })) }, { additionalProperties: false }),
  response: LicenseInfo,
  timeoutMs: 5_000,
});

export const verifyLicenseEndpoint = defineEndpoint({
  service: 'license',
  name: 'verify',
  request: Type.Object({ licenseKey: Type.String({ maxLength: 256 }) }, { additionalProperties: false }),
  response: Type.Object(
    { valid: Type.Boolean(), tier: Nullable(Tier), platforms: Nullable(Type.Array(Type.String())) },
    { additionalProperties: false },
  ),
  timeoutMs: 5_000,
});

export const SubmissionLimits = Type.Object(
  {
    maxUploadBytes: Type.Integer({ description: 'Decoded tarball size' }),
    concurrentBuilds: Type.Integer({ description: 'Builds running at once; the scheduler enforces it' }),
    hourlySubmissions: Type.Integer(),
    monthlyPublishes: Type.Integer(),
  },
  { additionalProperties: false },
);

/**
 * Check a submission and reserve its place in the hourly and monthly counters, atomically (one
 * MySQL transaction, so several instances agree). Exactly one of licenseKey and apiToken.
 * Errors: AUTH_INVALID, LICENSE_INVALID, ACCOUNT_REQUIRED, PUBLISH_LIMIT_REACHED, RATE_LIMITED,
 * UPLOAD_TOO_LARGE, BAD_REQUEST (the two limits are answered as `limited` with `deferLimits`). A
 * submission whose intake then fails must be released.
 */
export const authorizeSubmissionEndpoint = defineEndpoint({
  service: 'license',
  name: 'authorize-submission',
  request: Type.Object(
    {
      jobId: Type.String({ format: 'uuid' }),
      licenseKey: Type.Optional(Type.String({ maxLength: 256 })),
      apiToken: Type.Optional(Type.String({ maxLength: 256 })),
      projectId: Type.String({ maxLength: 255, description: 'manifest bundle_id (device binding)' }),
      declaredBytes: Type.Optional(Type.Integer({ minimum: 0, description: 'Decoded tarball size, when known' })),
      idempotencyKey: Type.Optional(Type.String({ maxLength: 128 })),
      deferLimits: Type.Optional(
        Type.Boolean({
          description:
            'Answer `limited` instead of failing with RATE_LIMITED or PUBLISH_LIMIT_REACHED: the submission may be a retry of a build already counted, which the caller can tell only once its tarball is read',
        }),
      ),
      instanceId: Type.Optional(
        Type.String({
          maxLength: 128,
          description: 'The instance holding the request: its reservation is released as soon as that instance is dead',
        }),
      ),
      holdMs: Type.Optional(
        Type.Integer({
          minimum: 0,
          description:
            'Longest the submitting request may still take to record its job; a reservation without a job after it is released',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  response: Type.Union([
    Type.Object(
      {
        kind: Type.Literal('accepted'),
        licenseKey: Type.String(),
        tier: Tier,
        priority: Type.Integer(),
        accountId: Nullable(Type.String()),
        limits: SubmissionLimits,
      },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        kind: Type.Literal('duplicate'),
        jobId: Type.String({ description: 'The job an earlier submission with this idempotency key created' }),
        licenseKey: Type.String(),
      },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        kind: Type.Literal('limited'),
        licenseKey: Type.String({ description: 'The license the submission runs under (names a retried build)' }),
        error: Type.Object(
          {
            code: Type.Union([Type.Literal('RATE_LIMITED'), Type.Literal('PUBLISH_LIMIT_REACHED')]),
            message: Type.String(),
            details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
          },
          { additionalProperties: false },
        ),
      },
      { additionalProperties: false, description: 'Only with `deferLimits`: nothing was reserved' },
    ),
  ]),
  timeoutMs: 5_000,
});
export type SubmissionAuthorization = Static<(typeof authorizeSubmissionEndpoint)['response']>;

/** Give back a reservation whose intake failed (it then counts toward no limit). Idempotent. */
export const releaseSubmissionEndpoint = defineEndpoint({
  service: 'license',
  name: 'release-submission',
  request: Type.Object({ jobId: Type.String() }, { additionalProperties: false }),
  response: Type.Object({ released: Type.Boolean() }, { additionalProperties: false }),
  timeoutMs: 5_000,
});

export const AccountView = Type.Object(
  {
    id: Type.String(),
    githubUsername: Type.String(),
    email: Type.String(),
    tier: Tier,
    hasPaymentMethod: Type.Boolean(),
    usage: Type.Object(
      {
        publishes: Type.Integer(),
        publishLimit: Type.Integer(),
        deepVerifies: Type.Integer(),
        verifyLimit: Type.Integer(),
        period: Type.String({ description: 'YYYY-MM' }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type AccountView = Static<typeof AccountView>;

/** Errors: AUTH_INVALID "Invalid API token". */
export const accountGetEndpoint = defineEndpoint({
  service: 'license',
  name: 'account-get',
  request: Type.Object({ apiToken: Type.String({ maxLength: 256 }) }, { additionalProperties: false }),
  response: AccountView,
  timeoutMs: 5_000,
});

/** Creates an account, or returns the existing one (with its token) for a known github id. */
export const accountCreateEndpoint = defineEndpoint({
  service: 'license',
  name: 'account-create',
  request: Type.Object(
    {
      githubId: Type.String({ minLength: 1, maxLength: 64 }),
      githubUsername: Type.String({ minLength: 1, maxLength: 255 }),
      email: Type.Optional(Type.String({ maxLength: 255 })),
    },
    { additionalProperties: false },
  ),
  response: Type.Object(
    { id: Type.String(), apiToken: Type.String(), githubUsername: Type.String(), tier: Tier, created: Type.Boolean() },
    { additionalProperties: false },
  ),
  timeoutMs: 5_000,
});

/** Updates an account and syncs its tier onto every linked license. Errors: NOT_FOUND. */
export const accountUpdateEndpoint = defineEndpoint({
  service: 'license',
  name: 'account-update',
  request: Type.Object(
    {
      accountId: Type.String({ minLength: 1, maxLength: 36 }),
      tier: Type.Optional(Tier),
      polarCustomerId: Type.Optional(Type.String({ maxLength: 255 })),
      polarSubscriptionId: Type.Optional(Type.String({ maxLength: 255 })),
      hasPaymentMethod: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  ),
  response: Type.Object({ ok: Type.Literal(true) }, { additionalProperties: false }),
  timeoutMs: 5_000,
});

/** Page sizes of the license list (`GET /api/v1/admin/licenses`, `perry-hub licenses list --limit`). */
export const LICENSE_LIST_LIMIT = { min: 1, max: 1000, default: 100 } as const;

/** Licenses, newest first, with this month's publishes: `perry-hub licenses list` (admin). */
export const licenseListEndpoint = defineEndpoint({
  service: 'license',
  name: 'license-list',
  request: Type.Object(
    {
      tier: Type.Optional(Tier),
      limit: Type.Integer({ minimum: LICENSE_LIST_LIMIT.min, maximum: LICENSE_LIST_LIMIT.max }),
    },
    { additionalProperties: false },
  ),
  response: Type.Object(
    {
      period: Type.String(),
      licenses: Type.Array(
        Type.Object(
          {
            licenseKey: Type.String(),
            tier: Tier,
            githubUsername: Type.Union([Type.String(), Type.Null()]),
            accountId: Type.Union([Type.String(), Type.Null()]),
            createdAt: Type.Union([Type.Number(), Type.Null()]),
            deviceBound: Type.Boolean(),
            projectBundleId: Type.Union([Type.String(), Type.Null()]),
            publishes: Type.Integer({ minimum: 0 }),
          },
          { additionalProperties: false },
        ),
      ),
    },
    { additionalProperties: false },
  ),
  timeoutMs: 5_000,
});

/** `GET /api/v1/admin/licenses` */
export const LicenseListQuery = Type.Object(
  {
    tier: Type.Optional(Tier),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
  },
  { additionalProperties: false },
);
export const LicenseListResponse = Type.Object(
  {
    period: Type.String(),
    licenses: Type.Array(
      Type.Object(
        {
          license_key: Type.String(),
          tier: Tier,
          github_username: Type.Union([Type.String(), Type.Null()]),
          account_id: Type.Union([Type.String(), Type.Null()]),
          created_at: Type.Union([Type.String(), Type.Null()]),
          device_bound: Type.Boolean(),
          project_bundle_id: Type.Union([Type.String(), Type.Null()]),
          publishes: Type.Integer({ minimum: 0 }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type LicenseListResponse = Static<typeof LicenseListResponse>;

// HTTP bodies (reference 1.2 #4-#8). Required fields are checked by the routes, so that a
// missing one gets the original's message ("account_id required", ...).

export const RegisterBody = Type.Object(
  {
    github_username: Type.Optional(Type.String({ maxLength: 255 })),
    github_token: Type.Optional(Type.String({ description: 'Accepted for spec clients and ignored, as originally' })),
  },
  { additionalProperties: false },
);
export const RegisterResponse = Type.Object(
  { license_key: Type.String(), tier: Tier, platforms: Type.Array(Type.String()) },
  { additionalProperties: false },
);
export const VerifyBody = Type.Object(
  { license_key: Type.Optional(Type.String({ maxLength: 256 })) },
  { additionalProperties: false },
);
export const VerifyResponse = Type.Object(
  { valid: Type.Boolean(), tier: Nullable(Tier), platforms: Nullable(Type.Array(Type.String())) },
  { additionalProperties: false },
);
export const AccountResponse = Type.Object(
  {
    id: Type.String(),
    github_username: Type.String(),
    email: Type.String(),
    tier: Tier,
    has_payment_method: Type.Boolean(),
    usage: Type.Object(
      {
        publishes: Type.Integer(),
        publish_limit: Type.Integer(),
        deep_verifies: Type.Integer(),
        verify_limit: Type.Integer(),
        period: Type.String(),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export const AccountCreateBody = Type.Object(
  {
    github_id: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Integer({ minimum: 0 })])),
    github_username: Type.Optional(Type.String({ maxLength: 255 })),
    email: Type.Optional(Type.String({ maxLength: 255 })),
  },
  { additionalProperties: false },
);
export const AccountCreateResponse = Type.Object(
  { id: Type.String(), api_token: Type.String(), github_username: Type.String(), tier: Tier, created: Type.Boolean() },
  { additionalProperties: false },
);
export const AccountUpdateBody = Type.Object(
  {
    account_id: Type.Optional(Type.String({ maxLength: 36 })),
    tier: Type.Optional(Tier),
    polar_customer_id: Type.Optional(Type.String({ maxLength: 255 })),
    polar_subscription_id: Type.Optional(Type.String({ maxLength: 255 })),
    has_payment_method: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export const OkResponse = Type.Object({ ok: Type.Literal(true) }, { additionalProperties: false });
