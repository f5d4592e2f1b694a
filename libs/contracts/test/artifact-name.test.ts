import { describe, expect, it } from 'vitest';
import { MAX_ARTIFACT_NAME_BYTES, artifactNameProblem } from '../src/artifact-name.js';

const accepted = [
  'MyApp-3f2c8a9e-5b1d-4c7e-9a2f-1e6d0b7c4a58.ipa',
  'MyApp.app.zip',
  'my app (1).dmg',
  'Ünïcödé-名前.apk',
  'a'.repeat(MAX_ARTIFACT_NAME_BYTES),
  '.hidden',
  'v1.2.3.tar.gz',
];

const refused: [string, RegExp][] = [
  ['', /empty/],
  ['../../../../etc/passwd', /path separator/],
  ['..\\..\\windows\\system.ini', /path separator/],
  ['/etc/passwd', /path separator/],
  ['dist/MyApp.ipa', /path separator/],
  ['..', /not a file name/],
  ['.', /not a file name/],
  ['MyApp..ipa', /'\.\.'/],
  ['gpj.\u202Eexe', /bidirectional/],
  ['a\u2066b', /bidirectional/],
  ['a\u200Fb', /bidirectional/],
  ['line\nbreak.ipa', /control/],
  ['nul\u0000.ipa', /control/],
  ['esc\u001b[31m.ipa', /control/],
  ['c1\u0085.ipa', /control/],
  ['del\u007f.ipa', /control/],
  [' leading.ipa', /white space/],
  ['trailing.ipa ', /white space/],
  ['C:evil.exe', /':'/],
  ['a'.repeat(MAX_ARTIFACT_NAME_BYTES + 1), /longer than 255 bytes/],
  // 128 two-byte characters: 128 characters, 256 bytes.
  ['é'.repeat(128), /longer than 255 bytes/],
  ['lone\ud800surrogate', /not valid Unicode/],
];

describe('artifact names', () => {
  it.each(accepted)('accepts %j', (name) => {
    expect(artifactNameProblem(name)).toBeUndefined();
  });

  it.each(refused)('refuses %j', (name, why) => {
    expect(artifactNameProblem(name)).toMatch(why);
  });
});
