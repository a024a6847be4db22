/**
 * The product's processes on one machine, each the same CLI a user would start by hand,
 * as a child of `up`: started one after another once the previous answers /healthz,
 * stopped by PID in reverse order.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));

export interface ComponentSpec {
  name: string;
  args: string[];
  /** /healthz of the component; start waits until it answers 200. */
  healthUrl: string;
  /** Added to this process's environment for the child. */
  env?: Record<string, string>;
}

export interface Running {
  spec: ComponentSpec;
  child: ChildProcess;
  logFile: string;
}

/** Enough of a component's log to hold its last error's message, not only the stack under it. */
function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-30).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function startComponent(spec: ComponentSpec, logFile: string, timeoutMs = 90_000): Promise<Running> {
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', main, ...spec.args], {
    stdio: ['ignore', fd, fd],
    env: spec.env ? { ...process.env, ...spec.env } : process.env,
  });
  closeSync(fd);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${spec.name} exited during start-up (${logFile}):\n${tail(logFile)}`);
    const ok = await fetch(spec.healthUrl, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (ok) return { spec, child, logFile };
    await delay(250);
  }
  child.kill('SIGKILL');
  throw new Error(`${spec.name} did not answer ${spec.healthUrl} within ${timeoutMs / 1000}s (${logFile})`);
}

/** SIGTERM in reverse start order (the agent flushes before the analyzer goes), SIGKILL after 15 s. */
export async function stopComponents(running: Running[]): Promise<void> {
  for (const r of [...running].reverse()) {
    if (r.child.exitCode !== null || r.child.signalCode !== null) continue;
    const exited = new Promise((resolve) => r.child.once('exit', resolve));
    r.child.kill('SIGTERM');
    const timer = setTimeout(() => r.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}
