import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { Lines } from './exec.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Where scripts/setup.d/20-netlab.sh puts the delay program; NETLAB_DELAY_BIN overrides it. */
export function delayProgramPath(): string {
  const candidates = [
    process.env.NETLAB_DELAY_BIN,
    join(here, '..', 'build', 'netlab-delay'),
    join(process.env.MESHLENS_CACHE ?? join(homedir(), '.cache', 'meshlens'), 'bin', 'netlab-delay'),
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(`netlab-delay not built (looked in ${candidates.join(', ')}); run scripts/setup.d/20-netlab.sh`);
  }
  return found;
}

/**
 * Talks to one netlab-delay process (running in the router namespace): each queue number gets a
 * delay; iptables rules elsewhere decide which packets go to which queue.
 */
export class DelayProgram {
  private readonly lines: Lines;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly child: ChildProcess) {
    this.lines = new Lines(child, child.stdout!);
  }

  /** `spawn` must start the program with piped stdin/stdout; resolves once its queues are bound. */
  static async start(spawn: () => ChildProcess): Promise<DelayProgram> {
    const program = new DelayProgram(spawn());
    await program.lines.next((l) => l === 'ready');
    return program;
  }

  /** Resolves once packets queued to `queue` from now on are held `ms` milliseconds. */
  setDelay(queue: number, ms: number): Promise<void> {
    const next = this.chain.then(async () => {
      this.child.stdin!.write(`${queue} ${ms}\n`);
      const reply = await this.lines.next((l) => l.startsWith('ok ') || l.startsWith('error '));
      if (reply.startsWith('error ')) throw new Error(`netlab-delay: ${reply}`);
    });
    this.chain = next.catch(() => undefined);
    return next;
  }
}
