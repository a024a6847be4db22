/** Starting, finding and stopping the infrastructure's own processes, strictly by PID. */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/** A failure the user can act on; the CLI prints its message as one line. */
export class InfraError extends Error {
  override name = 'InfraError';
}

export async function assertPortFree(port: number, what: string, envVar: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new InfraError(
          err.code === 'EADDRINUSE'
            ? `port ${port} on 127.0.0.1 (${what}) is already in use; free it or set ${envVar}`
            : `cannot bind 127.0.0.1:${port} for ${what}: ${err.message}`,
        ),
      );
    });
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

/**
 * Waits until 127.0.0.1:`port` can be bound again, so that "stopped" means the next `up` finds
 * its ports free: a process can be reported gone (its main thread a zombie) a moment before
 * the last of its sockets is closed.
 */
export async function waitPortFree(port: number, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await assertPortFree(port, what, '');
      return;
    } catch {
      if (Date.now() >= deadline) throw new InfraError(`port ${port} on 127.0.0.1 (${what}) still in use ${timeoutMs} ms after its process stopped`);
      await delay(100);
    }
  }
}

/** Starts a daemon in its own process group with output to a log file; returns its PID. */
export function spawnDaemon(cmd: string, args: string[], logFile: string, cwd: string): number {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(cmd, args, { cwd, detached: true, stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) throw new InfraError(`could not start ${cmd}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0); it is gone for our purposes.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** True only if `pid` is alive and its command line mentions `marker`: PIDs get reused. */
export function isOurProcess(pid: number, marker: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return false;
  }
}

/** SIGTERM, wait for a clean exit, SIGKILL only if it does not come. */
export async function stopProcess(pid: number, graceMs = 30_000): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await delay(100);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  while (isAlive(pid)) await delay(50);
}

export function tailOf(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Polls `probe` until it succeeds; fails fast if the process died (its log tail is the
 * most useful error there is) and with a clear message on timeout. Never hangs.
 */
export async function waitReady(
  what: string,
  pid: number,
  logFile: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) {
      throw new InfraError(`${what} exited during start-up; last log lines (${logFile}):\n${tailOf(logFile)}`);
    }
    if (await probe()) return;
    await delay(250);
  }
  await stopProcess(pid, 5_000);
  throw new InfraError(`${what} did not become ready within ${timeoutMs / 1000}s; see ${logFile}`);
}
