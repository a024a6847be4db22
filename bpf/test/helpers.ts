/**
 * Test plumbing: bounded waits, namespaces we create ourselves, peers we start by PID.
 * Also exported as @meshlens/bpf/testing for the probe tests that run on the network lab.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { cgroup2Mount, type ProbeEvent, type Probes, type SocketStats } from '../src/index.js';

/** Polls `probe` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Collects events from now on; `until` resolves once `pred` matched `n` of them. */
export function recorder(probes: Probes) {
  const seen: ProbeEvent[] = [];
  const off = probes.onEvent((e) => seen.push(e));
  return {
    seen,
    stop: off,
    until: <E extends ProbeEvent>(what: string, pred: (e: ProbeEvent) => e is E, n = 1, timeoutMs = 10_000) =>
      waitFor(what, () => {
        const hits = seen.filter(pred);
        return hits.length >= n ? hits : undefined;
      }, timeoutMs),
  };
}

export function socketsOnPort(probes: Probes, port: number): SocketStats[] {
  return probes.readSocketStats().filter((s) => s.local.port === port || s.remote.port === port);
}

export function netnsInode(path: string): number {
  return statSync(path).ino;
}

/** cgroup v2 id of a process: the inode of its cgroup directory. */
export function cgroupIdOf(pid: number | 'self'): number {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
  if (!line) throw new Error('process has no cgroup v2 membership');
  return statSync(cgroup2Mount() + line.slice(3)).ino;
}

export async function listen(server: net.Server, host: string): Promise<number> {
  server.listen(0, host);
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** A port with nothing listening on it right now (taken from a listener we then closed). */
export async function closedPort(host: string): Promise<number> {
  const s = net.createServer();
  const port = await listen(s, host);
  await new Promise((r) => s.close(r));
  return port;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Two namespaces joined by a veth pair: `a` is 198.18.0.1 / fd00:6d6c::1, `b` is
 * 198.18.0.2 / fd00:6d6c::2. Only these addresses, inside these namespaces, get traffic.
 */
export class NetnsPair {
  readonly a: string;
  readonly b: string;
  static readonly A4 = '198.18.0.1';
  static readonly B4 = '198.18.0.2';
  static readonly A6 = 'fd00:6d6c::1';
  static readonly B6 = 'fd00:6d6c::2';
  private readonly children = new Set<ChildProcess>();

  constructor(tag: string) {
    this.a = `mlbpf-${process.pid}-${tag}-a`;
    this.b = `mlbpf-${process.pid}-${tag}-b`;
    try {
      ip('netns', 'add', this.a);
      ip('netns', 'add', this.b);
      ip('link', 'add', 'mlbpf-veth-a', 'netns', this.a, 'type', 'veth', 'peer', 'name', 'mlbpf-veth-b', 'netns', this.b);
      for (const [ns, v4, v6, dev] of [
        [this.a, NetnsPair.A4, NetnsPair.A6, 'mlbpf-veth-a'],
        [this.b, NetnsPair.B4, NetnsPair.B6, 'mlbpf-veth-b'],
      ] as const) {
        ip('-n', ns, 'addr', 'add', `${v4}/24`, 'dev', dev);
        ip('-n', ns, 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad');
        ip('-n', ns, 'link', 'set', dev, 'up');
        ip('-n', ns, 'link', 'set', 'lo', 'up');
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  inode(ns: string): number {
    return netnsInode(`/run/netns/${ns}`);
  }

  /** Runs a command inside `ns`; `ip netns exec` execs it, so the PID is the command's. */
  spawn(ns: string, cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  peer(ns: string, args: string[]): Peer {
    return new Peer(this.spawn(ns, process.execPath, [fileURLToPath(new URL('./fixtures/peer.mjs', import.meta.url)), ...args]));
  }

  destroy(): void {
    for (const c of this.children) if (c.pid) process.kill(c.pid, 'SIGKILL');
    for (const ns of [this.a, this.b]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // Never created (constructor failed part-way).
      }
    }
  }
}

type PeerMsg = { event: string } & Record<string, unknown>;

/** A fixtures/peer.mjs process; `next(event)` waits for its next JSON line of that kind. */
export class Peer {
  private readonly lines: PeerMsg[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      this.lines.push(JSON.parse(l) as PeerMsg);
      for (const w of this.waiters.splice(0)) w();
    });
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
  }

  get pid(): number {
    return this.child.pid!;
  }

  async next(event: string, timeoutMs = 5000): Promise<PeerMsg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex((l) => l.event === event);
      if (i >= 0) return this.lines.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`peer ${this.pid}: no "${event}" within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(line: string): void {
    this.child.stdin!.write(line + '\n');
  }
}
