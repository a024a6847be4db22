/**
 * What the socket-load tests share: one lab node, the C socket fixture compiled for it, and
 * agents scoped to that node's namespace, each started as the CLI a user runs and waited for
 * by its "agent running" log line. Registers its own before/after hooks in the calling suite;
 * cleanup kills the agents it started (by PID), destroys the lab and removes the build.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '@meshlens/deploy/local';
import { createLab, Lines, type Lab } from '@meshlens/e2e/netlab';
import { freePort } from '@meshlens/e2e/tcp-proxy';

export interface ScopedAgent {
  agent: ChildProcess;
  metricsUrl: string;
}

export interface SocketLab {
  readonly lab: Lab;
  /** The compiled fixtures/sockets.c: `hold N` or `churn N [rate]`. */
  readonly sockets: string;
  /** An agent watching only the lab node, `--output stdout`; stdout piped when asked for. */
  startAgent(node: string, slotMs: number, stdout: 'pipe' | 'ignore'): Promise<ScopedAgent>;
}

export function socketLab(prefix: string): SocketLab {
  let lab: Lab | undefined;
  const agents: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), `meshlens-agent-${prefix}-`));
  const sockets = join(dir, 'sockets');

  before(async () => {
    execFileSync('cc', ['-O2', '-o', sockets, fileURLToPath(new URL('../fixtures/sockets.c', import.meta.url))]);
    lab = await createLab({ prefix, hosts: [{ name: 'node' }] });
  });

  after(async () => {
    for (const a of agents) if (a.exitCode === null) a.kill('SIGKILL');
    await lab?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  return {
    get lab() {
      if (!lab) throw new Error('the socket lab is created in before()');
      return lab;
    },
    sockets,
    startAgent(node, slotMs, stdout) {
      return startScopedAgent(this.lab.host('node').ns, node, slotMs, stdout, agents);
    },
  };
}

/**
 * An agent watching only network namespace `ns`, `--output stdout`, started as the CLI a user
 * runs with `extra` flags; pushed to `started` before it is waited for, so that the caller's
 * cleanup finds it.
 */
export async function startScopedAgent(ns: string, node: string, slotMs: number, stdout: 'pipe' | 'ignore', started: ChildProcess[], extra: string[] = []): Promise<ScopedAgent> {
  const agent = spawn(
    process.execPath,
    ['--import', 'tsx', 'cli/src/main.ts', 'agent', '--netns', ns, '--node', node, '--slot-ms', String(slotMs), '--output', 'stdout', '--metrics-port', String(await freePort()), ...extra],
    { cwd: repoRoot, stdio: ['ignore', stdout, 'pipe'] },
  );
  started.push(agent);
  const running = await new Lines(agent, agent.stderr!).next((l) => l.includes('"agent running"'), 30_000);
  return { agent, metricsUrl: (JSON.parse(running) as { metricsUrl: string }).metricsUrl };
}

/** The agent's /metrics as name{labels} -> value. */
export async function scrapeMetrics(metricsUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}
