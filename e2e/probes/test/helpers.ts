/** Plumbing for the probe ground-truth tests: peers in lab namespaces, event recording, cgroups. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { cgroup2Mount, type Probes, type SocketStats } from '@meshlens/bpf';
import { cgroupIdOf, recorder, waitFor } from '@meshlens/bpf/testing';
import { Lines, type Host } from '@meshlens/e2e/netlab';

// Shared with bpf's own tests rather than copied.
export { cgroupIdOf, recorder, waitFor };

// bpf's own TCP peer (its fixtures sit next to @meshlens/bpf/testing), not a copy of it.
const fixture = fileURLToPath(new URL('./fixtures/peer.mjs', import.meta.resolve('@meshlens/bpf/testing')));

/** One JSON line of the fixture; `T` is what that event carries. */
export type PeerMsg<T = Record<string, unknown>> = { event: string } & T;

/** A bpf/test/fixtures/peer.mjs process in a lab host; the lab kills it by PID on destroy. */
export class Peer {
  private readonly lines: Lines;

  constructor(readonly child: ChildProcess) {
    this.lines = new Lines(child, child.stdout!);
  }

  /**
   * Starts the fixture in `host`'s namespace. With `cgroup`, the process runs in that cgroup
   * v2 directory; the lab did not start it, but destroy() kills it with the rest of the namespace.
   */
  static start(host: Host, args: string[], opts: { cgroup?: string } = {}): Peer {
    const argv = [fixture, ...args];
    const stdio: ['pipe', 'pipe', 'inherit'] = ['pipe', 'pipe', 'inherit'];
    if (!opts.cgroup) return new Peer(host.spawn(process.execPath, argv, { stdio }));
    // The shell joins the cgroup, then becomes `ip netns exec`, which becomes node: one PID
    // throughout, so every socket the peer makes is made from inside that cgroup. It starts
    // outside the namespace because `ip netns exec` mounts a fresh /sys without the cgroup tree.
    const script = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"';
    return new Peer(spawn('sh', ['-c', script, 'sh', opts.cgroup, 'ip', 'netns', 'exec', host.ns, process.execPath, ...argv], { stdio }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  async next<T = Record<string, unknown>>(event: string, timeoutMs = 15_000): Promise<PeerMsg<T>> {
    const line = await this.lines.next((l) => l.startsWith('{') && (JSON.parse(l) as PeerMsg).event === event, timeoutMs);
    return JSON.parse(line) as PeerMsg<T>;
  }

  send(line: string): void {
    this.child.stdin!.write(line + '\n');
  }

  /** Ends the peer by PID and waits for it to be gone. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    // ChildProcess.kill signals this PID, and ignores it having just exited on its own.
    this.child.kill('SIGTERM');
    await exited;
  }
}

/** Starts a fixture server in `host` on `ip` and resolves with it and its port. */
export async function startServer(host: Host, ip: string, replyBytes: number, abort = false): Promise<{ server: Peer; port: number }> {
  const server = Peer.start(host, ['server', ip, String(replyBytes), ...(abort ? ['abort'] : [])]);
  const { port } = await server.next<{ port: number }>('listening');
  return { server, port };
}

/** The probes' entry for the socket in `netns` with this local port, once it satisfies `ready`. */
export function socketAt(probes: Probes, netns: number, localPort: number, ready: (s: SocketStats) => boolean = () => true, timeoutMs?: number): Promise<SocketStats> {
  return waitFor(
    `socket ${netns}:${localPort}`,
    () => probes.readSocketStats().find((s) => s.owner.netns === netns && s.local.port === localPort && ready(s)),
    timeoutMs,
  );
}

/**
 * cgroups a test makes under the v2 root, named after the test and its PID. remove() needs
 * their processes gone: the peers in them live in the lab's namespaces, so lab.destroy() does it.
 */
export class TestCgroups {
  readonly root: string;

  constructor(tag: string) {
    const mount = cgroup2Mount();
    // A crashed run's directories, emptied when the next createLab swept its lab.
    for (const entry of readdirSync(mount)) {
      const pid = new RegExp(`^meshlens-e2e-${tag}-(\\d+)$`).exec(entry)?.[1];
      if (pid && !existsSync(`/proc/${pid}`)) removeCgroup(join(mount, entry));
    }
    this.root = join(mount, `meshlens-e2e-${tag}-${process.pid}`);
    mkdirSync(this.root);
  }

  make(name: string): string {
    const dir = join(this.root, name);
    mkdirSync(dir);
    return dir;
  }

  remove(): void {
    removeCgroup(this.root);
  }
}

/** A cgroup directory holds kernel files that rmdir ignores; only child cgroups must go first. */
function removeCgroup(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroup(join(dir, e.name));
  rmdirSync(dir);
}

export interface DigResult {
  /** NOERROR, NXDOMAIN, SERVFAIL, ... or TIMEOUT when no answer came. */
  status: string;
  /** The answer section's addresses, as dig printed them. */
  answers: string[];
}

/** Asks `server` once from `host` with the real dig, over UDP or TCP; waits at most 1 s. */
export async function dig(host: Host, server: string, name: string, type: 'A' | 'AAAA', transport: 'udp' | 'tcp' = 'udp'): Promise<DigResult> {
  const args = [`@${server}`, '+time=1', '+tries=1', ...(transport === 'tcp' ? ['+tcp'] : []), name, type];
  const r = await host.exec('dig', args, { allowFailure: true });
  // dig exits 9 when no server answered.
  if (r.code === 9) return { status: 'TIMEOUT', answers: [] };
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const status = /status: (\w+)/.exec(r.stdout)?.[1];
  assert.ok(status, r.stdout);
  const answers = [...r.stdout.matchAll(new RegExp(`^\\S+\\s+\\d+\\s+IN\\s+${type}\\s+(\\S+)$`, 'gm'))].map((m) => m[1]!);
  return { status, answers };
}
