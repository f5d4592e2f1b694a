/**
 * Downloading an artifact through its one-time link, raw, to a file, checked against the SHA-256
 * the hub announced: `downloadToFile` of `@perry-hub/client`, its errors as the command's.
 */
import { downloadToFile, HubClientError, type Downloaded } from '@perry-hub/client';
import { CliError, EXIT } from './common.js';

export type { Downloaded };

export async function downloadArtifact(
  url: string,
  path: string,
  expectedSha256: string,
  onProgress: (received: number, total: number) => void,
): Promise<Downloaded> {
  try {
    return await downloadToFile(url, path, expectedSha256, { onProgress });
  } catch (err) {
    if (err instanceof HubClientError) throw new CliError(err.message.replace(/^[A-Z_]+: /, ''), EXIT.download);
    throw err;
  }
}
