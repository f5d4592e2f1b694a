/**
 * The build form, read as a stream. The CLI sends text parts only, the tarball as base64 in
 * `tarball_b64` (reference 4.2); multipart parsers buffer text fields whole, so that one part is
 * decoded on the fly. New clients may send a binary file part `tarball` instead. Every limit is
 * explicit; unknown text parts are ignored, as originally.
 *
 * Every part is read as a stream (`isPartAFile` is always true): busboy reads a text field past
 * its size limit to the end before it says so, which let one over-long `manifest` be read
 * forever. Read as streams, a part is refused (413) at the byte that crosses its limit, and
 * every byte is counted against the unauthenticated-upload budget as it arrives.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import multipart from '@fastify/multipart';
import { HubError } from '@perry-hub/contracts';
import type { Submission } from './intake.js';
import { base64Length } from './limits.js';

export const TARBALL_FIELDS: Readonly<Record<string, 'base64' | 'binary'>> = {
  tarball_b64: 'base64',
  tarball: 'binary',
};

export interface FormLimits {
  maxFieldBytes: number;
  maxUploadBytes: number;
}

/** Text parts the CLI sends plus room for a few unknown ones. */
const MAX_TEXT_FIELDS = 16;

/** Bytes a form may carry besides the tarball: its text parts and the multipart framing. */
export function formOverheadBytes(limits: FormLimits): number {
  return MAX_TEXT_FIELDS * (limits.maxFieldBytes + 1024);
}

export async function registerMultipart(app: FastifyInstance, limits: FormLimits): Promise<void> {
  await app.register(multipart, {
    isPartAFile: () => true,
    limits: {
      fields: MAX_TEXT_FIELDS,
      fieldSize: limits.maxFieldBytes,
      fieldNameSize: 100,
      files: MAX_TEXT_FIELDS + 1,
      parts: MAX_TEXT_FIELDS + 1,
      headerPairs: 32,
      // A backstop only: the intake enforces the tier's (smaller) decoded limit while streaming.
      fileSize: base64Length(limits.maxUploadBytes) + 4,
    },
    throwFileSizeLimit: true,
  });
}

/** @fastify/multipart and busboy errors as the hub's errors (the original's wording where it had one). */
export function formError(err: unknown): unknown {
  if (err instanceof HubError) return err;
  const e = err as { code?: string; message?: string };
  switch (e.code) {
    // Every part arrives as a file stream, so the files limit is a parts limit too (a second
    // tarball part is refused by the submission itself).
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
    case 'FST_FILES_LIMIT':
      return new HubError(
        'BAD_REQUEST',
        `Too many parts in the multipart body (at most ${MAX_TEXT_FIELDS} text parts)`,
      );
    case 'FST_REQ_FILE_TOO_LARGE':
      return new HubError('UPLOAD_TOO_LARGE', 'Tarball too large');
    case 'FST_PROTO_VIOLATION':
      return new HubError('BAD_REQUEST', 'Failed to parse multipart body: a part name is not allowed');
    case 'FST_INVALID_JSON_FIELD_ERROR':
      return new HubError('BAD_REQUEST', 'Failed to parse multipart body: a part declared as JSON is not valid JSON');
    case 'FST_MP_PREMATURE_CLOSE':
      return new HubError('BAD_REQUEST', 'Failed to parse multipart body: the request ended early');
  }
  if (err instanceof Error && !('statusCode' in err && Number(err.statusCode) >= 500)) {
    return new HubError('BAD_REQUEST', `Failed to parse multipart body: ${e.message ?? 'malformed'}`, { cause: err });
  }
  return err;
}

/**
 * Feed the request's parts to the submission, in their order, acting on each as it arrives.
 * Parser failures become 400s; what the submission throws (or the store) passes through.
 */
export async function readBuildForm(
  request: FastifyRequest,
  submission: Submission,
  maxFieldBytes: number,
): Promise<void> {
  const parts = request.parts();
  for (;;) {
    let next: Awaited<ReturnType<typeof parts.next>>;
    try {
      next = await parts.next();
    } catch (err) {
      throw formError(err);
    }
    if (next.done) return;
    const part = next.value;
    if (part.type === 'file' && part.fieldname in TARBALL_FIELDS) {
      let streamError: unknown;
      part.file.once('error', (err) => (streamError = err));
      try {
        await submission.receiveTarball(part.file, TARBALL_FIELDS[part.fieldname]!, part.fieldname);
      } catch (err) {
        throw err === streamError ? formError(err) : err;
      }
      continue;
    }
    if (part.type !== 'file') throw new Error('multipart: every part is configured to arrive as a stream');
    const value = await readTextPart(part.file, part.fieldname, maxFieldBytes, submission);
    submission.noteTextPart(Buffer.byteLength(value) + part.fieldname.length);
    if (part.fieldname === 'manifest') submission.setManifest(value);
    else if (part.fieldname === 'credentials') submission.setCredentials(value);
    else if (part.fieldname === 'license_key') submission.setLicenseKey(value);
    else if (part.fieldname === 'callback_url') submission.setCallbackUrl(value);
    await submission.authorizeBetweenParts();
  }
}

/**
 * A text part, refused with 413 at the byte that crosses `maxBytes` (the rest is not read: the
 * answer closes the connection).
 */
async function readTextPart(
  stream: Readable,
  field: string,
  maxBytes: number,
  submission: Submission,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) {
        throw new HubError(
          'UPLOAD_TOO_LARGE',
          `Field '${field.slice(0, 100)}' is too large (at most ${maxBytes} bytes)`,
        );
      }
      submission.chargeUnauthenticated(chunk.length);
      chunks.push(chunk);
    }
  } catch (err) {
    throw formError(err);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}
