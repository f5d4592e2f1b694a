/**
 * What a worker may call an artifact. The name travels to CLIs in `artifact_ready`, and the old
 * CLI writes the download to `<output>/<artifact_name>` without checking it: a name is a plain
 * file name or it is refused. Shared by the HTTP transfer route and the WebSocket side.
 */

/** Most file systems allow 255 bytes per name. */
export const MAX_ARTIFACT_NAME_BYTES = 255;

/**
 * C0 and C1 controls, DEL, and the bidirectional formatting characters (embeddings, overrides,
 * isolates, marks) that make a name display as something else ("gpj.exe" shown as "exe.jpg").
 */
// eslint-disable-next-line no-control-regex
const FORBIDDEN_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/** Why `name` is not an acceptable artifact name, or undefined when it is. */
export function artifactNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (new TextEncoder().encode(name).length > MAX_ARTIFACT_NAME_BYTES) {
    return `is longer than ${MAX_ARTIFACT_NAME_BYTES} bytes`;
  }
  // In `u` mode a surrogate pair is one code point: this finds only unpaired halves.
  if (/[\ud800-\udfff]/u.test(name)) return 'is not valid Unicode';
  if (/[/\\]/.test(name)) return 'contains a path separator';
  if (name === '.' || name === '..') return 'is not a file name';
  if (name.includes('..')) return "contains '..'";
  if (FORBIDDEN_CHARACTERS.test(name)) return 'contains a control or bidirectional formatting character';
  if (name !== name.trim()) return 'starts or ends with white space';
  // A drive letter or an alternate data stream on Windows ("C:x", "a.exe:stream").
  if (name.includes(':')) return "contains ':'";
  return undefined;
}

export function isArtifactName(name: string): boolean {
  return artifactNameProblem(name) === undefined;
}
