import { execFile, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Resolve with the result instead of rejecting when the command exits non-zero. */
  allowFailure?: boolean;
  timeoutMs?: number;
  input?: string;
}

export class ExecError extends Error {
  constructor(
    readonly command: string,
    readonly result: ExecResult,
  ) {
    super(`${command} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
}

export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { encoding: 'utf8', maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 60_000, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        const result = { code, stdout, stderr };
        if (code !== 0 && !opts.allowFailure) reject(new ExecError([cmd, ...args].join(' '), result));
        else resolve(result);
      },
    );
    // A command that exits without reading its input closes the pipe; its exit status tells the story.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input);
  });
}

/** Runs a command inside a named network namespace; `ip netns exec` execs it, so the PID is the command's. */
export function netnsArgs(ns: string, cmd: string, args: readonly string[]): string[] {
  return ['netns', 'exec', ns, cmd, ...args];
}

/**
 * Lines of a child's output, kept until a waiter takes them, so a readiness line printed before
 * anyone waits for it is not lost. This is how the lab waits for readiness instead of sleeping.
 */
export class Lines {
  private readonly pending: string[] = [];
  private waiter: (() => void) | undefined;
  private ended: string | undefined;

  constructor(child: ChildProcess, stream: Readable) {
    createInterface({ input: stream }).on('line', (line) => {
      this.pending.push(line);
      this.waiter?.();
    });
    child.once('exit', (code, signal) => {
      this.ended = `process ${child.pid} exited (${code ?? signal})`;
      this.waiter?.();
    });
  }

  /** Resolves with the first line that matches, dropping the lines before it. */
  next(match: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
    const skipped: string[] = [];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms; saw: ${skipped.join(' | ')}`)), timeoutMs);
      const done = (err: Error | null, line?: string) => {
        clearTimeout(timer);
        this.waiter = undefined;
        if (err) reject(err);
        else resolve(line!);
      };
      const check = () => {
        for (let line = this.pending.shift(); line !== undefined; line = this.pending.shift()) {
          if (match(line)) return done(null, line);
          skipped.push(line);
        }
        if (this.ended) done(new Error(`${this.ended} before the expected line; saw: ${skipped.join(' | ')}`));
      };
      this.waiter = check;
      check();
    });
  }
}

export async function pollUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
