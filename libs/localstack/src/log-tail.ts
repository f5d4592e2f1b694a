import { closeSync, fstatSync, mkdirSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ChildProcess } from 'node:child_process';

const TAIL_LINES = 20;
/** Enough bytes for 20 log lines of any sane length. */
const TAIL_BYTES = 16 * 1024;

/**
 * Where a child's stdout and stderr go. With a log file the child writes to it directly (the file
 * then survives a crash of this process); without one the output is kept only as a short tail in
 * memory, so that a failed start can still say why.
 */
export interface ChildLog {
  /** What to pass as stdout and stderr to `spawn`. */
  readonly stdio: 'pipe' | number;
  /** Call once after spawn: closes this process's copy of the file, or starts reading the pipes. */
  afterSpawn(child: ChildProcess): void;
  /** The last lines the child wrote, oldest first. */
  tail(): string;
}

export function openChildLog(logFile: string | undefined): ChildLog {
  return logFile === undefined ? new MemoryLog() : new FileLog(logFile);
}

class FileLog implements ChildLog {
  readonly stdio: number;
  private readonly path: string;
  private readonly startOffset: number;
  private fdOpen = true;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.path = path;
    this.stdio = openSync(path, 'a');
    // Only this run's lines belong in an error message; the file is appended to across runs.
    this.startOffset = fstatSync(this.stdio).size;
  }

  afterSpawn(): void {
    if (!this.fdOpen) return;
    this.fdOpen = false;
    closeSync(this.stdio);
  }

  tail(): string {
    let fd: number | undefined;
    try {
      fd = openSync(this.path, 'r');
      const size = fstatSync(fd).size;
      const from = Math.max(this.startOffset, size - TAIL_BYTES);
      const buffer = Buffer.alloc(Math.max(0, size - from));
      readSync(fd, buffer, 0, buffer.length, from);
      return lastLines(buffer.toString('utf8'));
    } catch {
      return `(could not read ${this.path})`;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}

class MemoryLog implements ChildLog {
  readonly stdio = 'pipe' as const;
  private text = '';

  afterSpawn(child: ChildProcess): void {
    const append = (chunk: Buffer): void => {
      this.text = (this.text + chunk.toString('utf8')).slice(-TAIL_BYTES);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
  }

  tail(): string {
    return lastLines(this.text);
  }
}

function lastLines(text: string): string {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.slice(-TAIL_LINES).join('\n');
}
