/**
 * Build intake, the same for HTTP and NATS clients. A `Submission` is fed the parts of a request
 * in whatever order they arrive, so the HTTP route can act on each part of a streamed upload:
 * it authorizes as soon as the manifest and a credential are known (for the CLI's Bearer path,
 * before the tarball; for its `license_key` field, which comes last, after it), streams the
 * tarball into the Object Store under the tier's size limit, then records the job. A license at
 * a limit is refused only once the tarball is known: a retry of a build it was already charged
 * for gets that build (see settleLimited).
 *
 * Order of effects: tarball stored → job row → intake message. A crash before the row leaves at
 * most an unreferenced tarball, which the artifact-store sweeps, and a reservation, which the
 * license service releases after its deadline; `abandon()` cleans up after a failure that the
 * process survives, and after a retried submission that adopted its earlier job (resubmit.ts).
 */
import { createHash, randomUUID } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  HubError,
  WS_URL,
  authorizeSubmissionEndpoint,
  projectIdOf,
  releaseSubmissionEndpoint,
  tarballObjectName,
  type BuildAccepted,
  type BuildManifest,
  type SubmissionAuthorization,
} from '@perry-hub/contracts';
import {
  base64Decoder,
  blobDigest,
  byteLimit,
  call,
  gzipCheck,
  isGzipHeader,
  seal,
  type BlobStore,
  type HubMetrics,
  type SealKey,
} from '@perry-hub/runtime';
import { publishIntake, queuePosition, republishQueuedIntake, type JobDeps } from './jobs.js';
import { owedJob, recordOrAdopt, submissionKey } from './resubmit.js';
import { checkCredentials, parseManifest } from './manifest.js';
import { base64Length, tarballTooLarge } from './limits.js';
import type { AbuseLimits } from './abuse/limits.js';
import type { BudgetAccount } from './abuse/budget.js';
import { checkCallbackUrl, NO_CALLBACK_EXCEPTIONS, type CallbackPolicy } from './tools/callback-url.js';
import type { ToolStore } from './tools/store.js';

export interface IntakeDeps extends JobDeps {
  blobs: BlobStore;
  sealKeys: readonly SealKey[];
  /** Submissions per credential; absent in tests of the intake alone. */
  limits?: AbuseLimits | undefined;
  /** How long an identical submission whose result was not delivered gets the same job. */
  resubmitWindowMs: number;
  /** Longest a request may take after authorization: its reservation's deadline. */
  reservationHoldMs: number;
  /** Counts accepted builds; absent in tests of the intake alone. */
  metrics?: HubMetrics | undefined;
  /** This instance: its reservations are released as soon as it is known dead. */
  instanceId?: string | undefined;
  /** What a callback_url may reach (default: public addresses only). */
  callbackPolicy?: CallbackPolicy | undefined;
  /** Tool identities: an HTTP submission with a callback_url belongs to its credential's tool. */
  tools?: ToolStore | undefined;
}

export interface SubmissionOptions {
  via: 'http' | 'nats';
  apiToken?: string | undefined;
  idempotencyKey?: string | undefined;
  /** Largest decoded tarball any tier may send: the limit until the tier is known. */
  maxUploadBytes: number;
  /** Declared request size, compared with the tier's limit as soon as the tier is known. */
  contentLength?: number | undefined;
  /** HTTP: what the request holds before its credential is checked; settled once it is. */
  preauth?: BudgetAccount | undefined;
  /** The tool identity submitting (NATS `<p>.tools.<name>.submit`): the job is its own. */
  tool?: string | undefined;
  /** Where the job's signed callbacks go (checked by the caller). */
  callbackUrl?: string | undefined;
}

/** Multipart framing of one part, generously (boundary line and headers). */
const PART_FRAMING_BYTES = 512;
/** What may still follow the tarball besides its own framing (the CLI sends only license_key). */
const TRAILING_ALLOWANCE_BYTES = 64 * 1024;

type Tarball = { name: string; sizeBytes: number; digest: string } | 'drained';
type Accepted = Exclude<SubmissionAuthorization, { kind: 'limited' }>;
type Limited = Extract<SubmissionAuthorization, { kind: 'limited' }>;

/** Passes chunks through after `charge` accepted their size (it throws to refuse them). */
function charging(charge: (bytes: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, callback) {
      try {
        charge(chunk.length);
        callback(null, chunk);
      } catch (err) {
        callback(err as Error);
      }
    },
  });
}

export class Submission {
  readonly jobId = randomUUID();
  private manifestText: string | undefined;
  private manifest: BuildManifest | undefined;
  private sealedCredentials: Buffer | undefined;
  private licenseKey: string | undefined;
  private auth: Accepted | undefined;
  /** Refused by a limit of its license; decided once the tarball's digest is known. */
  private limited: Limited | undefined;
  /** Refused by a limit, but a retry of a job still owed to its user: that job. */
  private owed: string | undefined;
  private tarball: Tarball | undefined;
  private recorded = false;
  private textBytes = 0;

  constructor(
    private readonly deps: IntakeDeps,
    private readonly options: SubmissionOptions,
  ) {}

  /** Count a text part of the request (for the declared-size check). */
  noteTextPart(bytes: number): void {
    this.textBytes += bytes + PART_FRAMING_BYTES;
  }

  /** Count bytes received while the sender is unknown; throws the 429 past the budget. */
  chargeUnauthenticated(bytes: number): void {
    if (this.auth === undefined && this.limited === undefined) this.options.preauth?.charge(bytes);
  }

  setManifest(text: string): void {
    if (this.manifestText !== undefined) throw new HubError('BAD_REQUEST', "Duplicate 'manifest' field");
    this.manifest = parseManifest(text);
    this.manifestText = text;
  }

  /** Sealed at once: the plaintext is not kept. */
  setCredentials(text: string): void {
    if (this.sealedCredentials !== undefined) throw new HubError('BAD_REQUEST', "Duplicate 'credentials' field");
    const key = this.deps.sealKeys[0];
    if (!key)
      throw new HubError('SERVICE_UNAVAILABLE', 'Build intake is disabled: PERRY_HUB_CREDENTIALS_KEY is not set');
    this.sealedCredentials = seal(key, checkCredentials(text), this.jobId);
  }

  setLicenseKey(key: string): void {
    this.licenseKey ??= key;
  }

  /** The `callback_url` part; checked (SSRF guard) before the job is recorded. */
  setCallbackUrl(url: string): void {
    if (this.options.callbackUrl !== undefined) throw new HubError('BAD_REQUEST', "Duplicate 'callback_url' field");
    this.options.callbackUrl = url;
  }

  private get hasCredential(): boolean {
    return this.options.apiToken !== undefined || this.licenseKey !== undefined;
  }

  /**
   * Authorize once the manifest and a credential are known; a no-op before, and after. The size
   * is that of the stored tarball when there is one.
   */
  async authorizeWhenReady(declared?: number): Promise<void> {
    if (this.auth || this.limited || this.owed !== undefined || !this.manifest || !this.hasCredential) return;
    const stored = this.tarball !== undefined && this.tarball !== 'drained' ? this.tarball.sizeBytes : undefined;
    const declaredBytes = declared ?? stored;
    try {
      await this.deps.limits?.countSubmissionWith(this.options.apiToken ?? this.licenseKey ?? '');
      await this.authorize(this.manifest, declaredBytes);
    } catch (err) {
      if (this.limited === undefined) this.owed = await this.owedAtLimit(err);
      if (this.owed === undefined) throw err;
    }
  }

  /** Could this submission be the retry of an earlier one (named by its content)? */
  private get mayBeRetry(): boolean {
    return this.options.idempotencyKey === undefined && this.deps.resubmitWindowMs > 0;
  }

  /**
   * A license at its hourly limit or monthly quota still gets a retry of a build it was already
   * charged for: the retry is not a new publish. Whether it is one is known once the tarball's
   * digest is: at once for the CLI's license_key, which comes after the tarball; for a Bearer
   * token, authorized before the upload, after the upload is read (and discarded).
   */
  private async settleLimited(digest: string): Promise<void> {
    const limited = this.limited!;
    const key = submissionKey(limited.licenseKey, this.manifestText!, digest);
    const owed = await owedJob(this.deps, key, this.deps.resubmitWindowMs);
    if (owed === undefined) {
      const { code, message, details } = limited.error;
      throw new HubError(code, message, { retry: 'retry-later', ...(details ? { details } : {}) });
    }
    this.owed = owed;
  }

  /**
   * The per-credential abuse limit, counted before the license is asked: the same rule, for the
   * license_key path only (a Bearer token's license is not known without asking).
   */
  private async owedAtLimit(err: unknown): Promise<string | undefined> {
    const atLimit = err instanceof HubError && (err.code === 'RATE_LIMITED' || err.code === 'PUBLISH_LIMIT_REACHED');
    const { tarball, licenseKey, manifestText } = this;
    if (!atLimit || tarball === undefined || tarball === 'drained' || licenseKey === undefined) return undefined;
    if (this.options.apiToken !== undefined || this.options.idempotencyKey !== undefined) return undefined;
    if (manifestText === undefined || this.deps.resubmitWindowMs === 0) return undefined;
    const key = submissionKey(licenseKey, manifestText, tarball.digest);
    return owedJob(this.deps, key, this.deps.resubmitWindowMs);
  }

  private async authorize(manifest: BuildManifest, declaredBytes: number | undefined): Promise<void> {
    const auth = await call(this.deps.nc, this.deps.subjects, authorizeSubmissionEndpoint, {
      jobId: this.jobId,
      ...(this.options.apiToken !== undefined ? { apiToken: this.options.apiToken } : { licenseKey: this.licenseKey }),
      projectId: projectIdOf(manifest),
      ...(declaredBytes !== undefined ? { declaredBytes } : {}),
      ...(this.options.idempotencyKey !== undefined ? { idempotencyKey: this.options.idempotencyKey } : {}),
      ...(this.mayBeRetry ? { deferLimits: true } : {}),
      ...(this.deps.instanceId !== undefined ? { instanceId: this.deps.instanceId } : {}),
      holdMs: this.deps.reservationHoldMs,
    });
    // The sender is known: what it sends from now on is bounded by the largest tier's limits.
    this.options.preauth?.settle();
    if (auth.kind === 'limited') {
      this.limited = auth;
      const tarball = this.tarball;
      if (tarball !== undefined && tarball !== 'drained') await this.settleLimited(tarball.digest);
      return;
    }
    this.auth = auth;
    // The declared request size may already tell that the tarball cannot fit the tier.
    const { contentLength } = this.options;
    if (this.auth.kind === 'accepted' && contentLength !== undefined && this.tarball === undefined) {
      const { maxUploadBytes } = this.auth.limits;
      const rest = this.textBytes + PART_FRAMING_BYTES + TRAILING_ALLOWANCE_BYTES;
      if (contentLength > base64Length(maxUploadBytes) + rest) {
        throw tarballTooLarge(this.auth.tier, maxUploadBytes);
      }
    }
  }

  private uploadLimit(): { maxBytes: number; tooLarge: () => Error } {
    if (this.auth?.kind === 'accepted') {
      const { tier, limits } = this.auth;
      return { maxBytes: limits.maxUploadBytes, tooLarge: () => tarballTooLarge(tier, limits.maxUploadBytes) };
    }
    const maxBytes = this.options.maxUploadBytes;
    return { maxBytes, tooLarge: () => tarballTooLarge(undefined, maxBytes) };
  }

  /**
   * Authorize between parts, before the whole body is read, only where the original's order of
   * errors allows: a Bearer token (checked before the upload, the original read all first), or
   * a license key that came after the tarball. A `license_key` field before the tarball waits for
   * it, so a request missing its tarball still gets that 400 first.
   */
  async authorizeBetweenParts(): Promise<void> {
    if (this.options.apiToken !== undefined || this.tarball !== undefined) await this.authorizeWhenReady();
  }

  /** Stream the tarball part into the Object Store (or, for a known duplicate, nowhere). */
  async receiveTarball(stream: Readable, encoding: 'base64' | 'binary', field: string): Promise<void> {
    if (this.tarball !== undefined) throw new HubError('BAD_REQUEST', 'Only one tarball part is allowed');
    await this.authorizeWhenReady();
    const { maxBytes, tooLarge } = this.uploadLimit();
    const notGzip = () => new HubError('BAD_REQUEST', `Invalid '${field}': the tarball is not gzip-compressed`);
    const through = [
      ...(this.auth === undefined && !this.limited && this.options.preauth
        ? [charging((n) => this.chargeUnauthenticated(n))]
        : []),
      ...(encoding === 'base64'
        ? [base64Decoder((at) => new HubError('BAD_REQUEST', `Invalid '${field}': not base64 (at character ${at})`))]
        : []),
      gzipCheck(notGzip),
    ];
    if (this.auth?.kind === 'duplicate' || this.limited) {
      // The job exists already, or a limit refuses a new one: check and discard the upload,
      // keeping its digest (a retry of a build its license was already charged for is owed it).
      const hash = createHash('sha256');
      const stages = [stream, ...through, byteLimit(maxBytes, tooLarge)];
      await (pipeline as (...s: unknown[]) => Promise<void>)(...stages, async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) hash.update(chunk);
      });
      this.tarball = 'drained';
      if (this.limited) await this.settleLimited(blobDigest(hash.digest()));
      return;
    }
    const name = tarballObjectName(this.jobId);
    const info = await this.deps.blobs.put(name, stream, {
      maxBytes,
      tooLarge,
      through,
      metadata: { job: this.jobId },
      fresh: true,
    });
    this.tarball = { name, sizeBytes: info.size, digest: info.digest };
  }

  /**
   * NATS clients upload first: take over `uploads/<uuid>` as this job's tarball (renamed: its
   * chunks keep their id), or an object already stored under this job's tarball name.
   */
  async adoptUpload(objectName: string): Promise<void> {
    const info = await this.deps.blobs.info(objectName);
    if (!info) throw new HubError('BAD_REQUEST', `Tarball object not found: ${objectName}`);
    await this.authorizeWhenReady(info.size);
    const { maxBytes, tooLarge } = this.uploadLimit();
    if (info.size > maxBytes) throw tooLarge();
    if (!isGzipHeader(await this.firstBytes(objectName))) {
      throw new HubError('BAD_REQUEST', `Invalid tarball ${objectName}: not gzip-compressed`);
    }
    if (this.limited) await this.settleLimited(info.digest);
    if (this.auth?.kind === 'duplicate' || this.owed !== undefined) {
      await this.deps.blobs.delete(objectName);
      this.tarball = 'drained';
      return;
    }
    const name = tarballObjectName(this.jobId);
    if (objectName !== name) await this.deps.blobs.rename(objectName, name);
    this.tarball = { name, sizeBytes: info.size, digest: info.digest };
  }

  private async firstBytes(objectName: string): Promise<Buffer> {
    const found = await this.deps.blobs.get(objectName);
    if (!found) return Buffer.alloc(0);
    for await (const chunk of found.stream) {
      found.stream.destroy();
      return chunk as Buffer;
    }
    return Buffer.alloc(0);
  }

  /** Check that nothing is missing (in the original's order), authorize if not done, record. */
  async finish(): Promise<BuildAccepted> {
    if (!this.manifest || this.manifestText === undefined)
      throw new HubError('BAD_REQUEST', "Missing 'manifest' field");
    if (this.tarball === undefined) throw new HubError('BAD_REQUEST', "Missing 'tarball_b64' field");
    if (!this.hasCredential) {
      throw new HubError('BAD_REQUEST', "Missing 'license_key' field or Authorization header");
    }
    if (this.sealedCredentials === undefined) this.setCredentials('{}');
    if (this.options.callbackUrl !== undefined) {
      await checkCallbackUrl(this.options.callbackUrl, this.deps.callbackPolicy ?? NO_CALLBACK_EXCEPTIONS);
    }
    await this.authorizeWhenReady(this.tarball === 'drained' ? undefined : this.tarball.sizeBytes);
    if (this.limited && this.owed === undefined && this.tarball !== 'drained') {
      await this.settleLimited(this.tarball.digest);
    }
    if (this.owed !== undefined) {
      this.deps.log.info({ jobId: this.owed }, 'a retried submission at its limit got its earlier job');
      return this.earlier(this.owed);
    }
    const auth = this.auth!;
    if (auth.kind === 'duplicate') return this.earlier(auth.jobId);
    if (this.tarball === 'drained') throw new Error('a tarball was discarded for a job that is not a duplicate');
    if (this.options.callbackUrl !== undefined && this.options.tool === undefined) {
      // Callbacks are signed with a tool's secret: the tool bound to this license or account.
      const tool = await this.deps.tools?.boundTo(auth.licenseKey, auth.accountId);
      if (!tool) {
        throw new HubError(
          'BAD_REQUEST',
          "Invalid 'callback_url': callbacks need a tool identity bound to this license or account (perry-hub tools add)",
        );
      }
      this.options.tool = tool.name;
    }
    const queuedAt = Date.now();
    const job = {
      jobId: this.jobId,
      licenseKey: auth.licenseKey,
      tier: auth.tier,
      priority: auth.priority,
      accountId: auth.accountId,
      manifestText: this.manifestText,
      manifest: this.manifest,
      sealedCredentials: this.sealedCredentials!,
      tarballRef: this.tarball.name,
      idempotencyKey: this.options.idempotencyKey,
      submissionKey:
        this.options.idempotencyKey === undefined && this.deps.resubmitWindowMs > 0
          ? submissionKey(auth.licenseKey, this.manifestText, this.tarball.digest)
          : undefined,
      via: this.options.via,
      tool: this.options.tool,
      callbackUrl: this.options.callbackUrl,
    };
    const recorded = await recordOrAdopt(this.deps, job, queuedAt, this.deps.resubmitWindowMs);
    if (recorded.adopted) {
      this.deps.log.info({ jobId: recorded.jobId, duplicate: this.jobId }, 'a retried submission got its earlier job');
      return this.earlier(recorded.jobId);
    }
    this.recorded = true;
    this.deps.metrics?.jobsSubmitted.inc({ via: this.options.via });
    const notified = this.deps.positions?.expect(this.jobId);
    await publishIntake(this.deps, job, queuedAt);
    this.deps.log.info(
      {
        jobId: this.jobId,
        license: maskedLicense(auth.licenseKey),
        ...(auth.accountId ? { accountId: auth.accountId } : {}),
        tier: auth.tier,
        targets: job.manifest.targets,
        tarballBytes: this.tarball.sizeBytes,
        via: this.options.via,
      },
      'build submitted',
    );
    const recordedAs = { tier: job.tier, targets: [...job.manifest.targets], queuedAt };
    const answer = await this.answer(this.jobId, recordedAs, notified);
    this.deps.log.info({ jobId: this.jobId, position: answer.position }, 'build queued');
    return answer;
  }

  /**
   * The same build as an earlier submission: this one's tarball and reservation go, and the
   * earlier job is answered, made sure of being queued if it still waits for its first dispatch.
   */
  private async earlier(jobId: string): Promise<BuildAccepted> {
    await this.abandon();
    await republishQueuedIntake(this.deps, jobId, this.options.via).catch((err: unknown) =>
      // The job is recorded: the scheduler also takes it from MySQL at its next takeover.
      this.deps.log.warn({ err, jobId }, 'could not check that the earlier job is queued'),
    );
    return this.answer(jobId);
  }

  private async answer(
    jobId: string,
    recorded?: Parameters<typeof queuePosition>[2],
    notified?: Parameters<typeof queuePosition>[3],
  ): Promise<BuildAccepted> {
    return { job_id: jobId, ws_url: WS_URL, position: await queuePosition(this.deps, jobId, recorded, notified) };
  }

  /** Undo what a failed submission did: its tarball and its reservation. Best effort, idempotent. */
  async abandon(): Promise<void> {
    this.options.preauth?.settle();
    if (this.recorded) return;
    const tarball = this.tarball;
    if (tarball !== undefined && tarball !== 'drained') {
      await this.deps.blobs.delete(tarball.name).catch(() => undefined);
    }
    if (this.auth?.kind === 'accepted') {
      await call(this.deps.nc, this.deps.subjects, releaseSubmissionEndpoint, { jobId: this.jobId }).catch((err) =>
        this.deps.log.warn({ err: (err as Error).message, jobId: this.jobId }, 'could not release a submission'),
      );
    }
  }
}

/** Enough of a license key to tell licenses apart in a log, not enough to use one. */
export function maskedLicense(key: string): string {
  return key.length <= 9 ? '…' : `${key.slice(0, 9)}…`;
}
