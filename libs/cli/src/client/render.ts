/** A job's wire messages as lines for a person: stage headers, log lines, queue place, the end. */
import { formatBytes, type Io } from './common.js';

export function renderer(io: Io, enabled: boolean): (m: Record<string, unknown> & { type: string }) => void {
  const tty = io.out.isTTY === true;
  const paint = (code: string, text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
  let lastStage = '';
  const say = (line: string) => enabled && io.out.write(`${line}\n`);
  return (m) => {
    const str = (k: string) => (typeof m[k] === 'string' ? (m[k] as string) : '');
    switch (m.type) {
      case 'queue_update':
        say(`Queue position ${String(m['position'])}${str('message') ? `: ${str('message')}` : ''}`);
        break;
      case 'stage':
        if (str('stage') !== lastStage) say(paint('36;1', `── ${str('stage')} ──`));
        lastStage = str('stage');
        if (str('message')) say(`  ${str('message')}`);
        break;
      case 'log':
        say(str('stream') === 'stderr' ? paint('33', `  ${str('line')}`) : `  ${str('line')}`);
        break;
      case 'artifact_ready':
        say(
          `Artifact ready: ${str('artifact_name')} (${formatBytes(Number(m['artifact_size']))}), sha256 ${str('sha256')}`,
        );
        break;
      case 'published':
        say(`Published to ${str('platform')}: ${str('message')}`);
        break;
      case 'error':
        say(paint('31;1', `Build error [${str('code')}]: ${str('message')}`));
        break;
      case 'complete':
        say(
          m['success'] === true
            ? paint('32;1', `Build succeeded in ${Number(m['duration_secs']).toFixed(1)} s`)
            : paint('31;1', `Build failed after ${Number(m['duration_secs']).toFixed(1)} s`),
        );
        break;
      default:
        break;
    }
  };
}
