/**
 * ClusterIP -> backend translation from the kernel's conntrack table, so that the client's
 * record of a connection to a service IP names the pod the server's record names, and both
 * ends meet under one connection key. The table is dumped at start and then followed
 * through conntrack's NEW events (the `conntrack` tool speaks ctnetlink for us), both
 * limited to DNAT'd entries. The event stream is subscribed before the dump, so an entry
 * is in one or the other. Events reach us later than the probes' ring buffer does (a refused
 * connect is over before its NEW event is read) and the kernel drops them when the netlink
 * buffer overflows on a busy node, so a miss for an address known to be a service is asked
 * of the table itself (`lookup`).
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import type { Endpoint, Role } from '@meshlens/schemas';

interface Translation {
  backend: Endpoint;
  seenMs: number;
}

const key = (src: Endpoint, dst: Endpoint) => `${src.ip}|${src.port}|${dst.ip}|${dst.port}`;
const addr = (e: Endpoint) => `${e.ip}|${e.port}`;

/**
 * Parses one line of `conntrack -o extended` output (listing or event): the first
 * src/dst/sport/dport are the original direction, the second the reply direction.
 * Returns the translation when the reply comes from somewhere else than the original
 * destination, i.e. when DNAT happened.
 */
export function parseConntrackLine(line: string): { client: Endpoint; dialled: Endpoint; backend: Endpoint } | null {
  const src = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1]!);
  const dst = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1]!);
  const sport = [...line.matchAll(/\bsport=(\d+)/g)].map((m) => Number(m[1]));
  const dport = [...line.matchAll(/\bdport=(\d+)/g)].map((m) => Number(m[1]));
  if (src.length < 2 || dst.length < 2 || sport.length < 2 || dport.length < 2) return null;
  const dialled = { ip: dst[0]!, port: dport[0]! };
  const backend = { ip: src[1]!, port: sport[1]! };
  if (dialled.ip === backend.ip && dialled.port === backend.port) return null;
  return { client: { ip: src[0]!, port: sport[0]! }, dialled, backend };
}

/** What of a tcp or tcp_event record translation reads and rewrites. */
export interface NatRecord {
  role: Role;
  local: Endpoint;
  remote: Endpoint;
  remote_orig: Endpoint | null;
}

export interface NatTableOptions {
  /** Run conntrack inside this network namespace (a path such as /run/netns/x); host's own if null. */
  netnsPath: string | null;
  /** Entries are forgotten this long after they were last seen; connections outlive no slot by more. */
  retainMs?: number;
  maxEntries?: number;
  /** Lookups of single entries running at once; past it a miss stays untranslated. */
  maxLookups?: number;
}

/** Emits 'translation' (client, dialled, backend) for every entry learnt, 'followerExit' (why) as `start` says. */
export class NatTable extends EventEmitter {
  private readonly entries = new Map<string, Translation>();
  /** Service addresses (ip|port) seen translated: only misses for these are worth a lookup. */
  private readonly services = new Map<string, number>();
  private follower: ChildProcess | null = null;
  private restart: NodeJS.Timeout | null = null;
  private readonly retainMs: number;
  private readonly maxEntries: number;
  private readonly maxLookups: number;
  private lookups = 0;
  /** Lines conntrack printed that were not entries we understand (counted, for /metrics). */
  unparsed = 0;

  constructor(private readonly opts: NatTableOptions) {
    super();
    this.retainMs = opts.retainMs ?? 10 * 60_000;
    this.maxEntries = opts.maxEntries ?? 200_000;
    this.maxLookups = opts.maxLookups ?? 16;
  }

  private command(args: string[]): [string, string[]] {
    return this.opts.netnsPath ? ['nsenter', [`--net=${this.opts.netnsPath}`, 'conntrack', ...args]] : ['conntrack', args];
  }

  private ingest(line: string): void {
    const t = parseConntrackLine(line);
    if (!t) {
      if (/\bsrc=/.test(line)) return; // an entry without translation: nothing to learn
      if (line.trim() !== '' && !/flow entries have been shown/.test(line)) this.unparsed += 1;
      return;
    }
    const now = Date.now();
    this.entries.delete(key(t.client, t.dialled));
    this.entries.set(key(t.client, t.dialled), { backend: t.backend, seenMs: now });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.services.delete(addr(t.dialled));
    this.services.set(addr(t.dialled), now);
    if (this.services.size > this.maxEntries) this.services.delete(this.services.keys().next().value!);
    this.emit('translation', t.client, t.dialled, t.backend);
  }

  /**
   * Subscribes to new entries, then dumps the existing ones. Throws if conntrack cannot run.
   * Emits 'followerExit' (why) when the event follower ends on its own: it is started again,
   * dump included, a second later, since without it every new connection to a service would
   * need a lookup.
   */
  start(): void {
    this.follow();
    try {
      for (const family of ['ipv4', 'ipv6']) {
        const [c, a] = this.command(['-L', '-f', family, '-p', 'tcp', '--dst-nat', '-o', 'extended']);
        const r = spawnSync(c, a, { encoding: 'utf8', timeout: 10_000 });
        if (r.error) throw new Error(`conntrack: ${r.error.message}`);
        if (r.status !== 0) throw new Error(`conntrack -L failed: ${r.stderr.trim()}`);
        for (const line of r.stdout.split('\n')) this.ingest(line);
      }
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  private follow(): void {
    // --dst-nat: conntrack itself drops the untranslated majority, which on a busy node is
    // nearly every new connection, so this process never reads or parses them.
    const [cmd, args] = this.command(['-E', '-e', 'NEW', '-p', 'tcp', '--dst-nat', '-o', 'extended']);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    this.follower = child;
    createInterface({ input: child.stdout! }).on('line', (l) => this.ingest(l));
    const ended = (why: string) => {
      if (this.follower !== child) return; // stopped, or already handled
      this.follower = null;
      this.startAgain(why);
    };
    child.once('error', (err) => ended(err.message));
    child.once('exit', (code, signal) => ended(`exited (${code ?? signal})`));
  }

  private startAgain(why: string): void {
    this.emit('followerExit', why);
    this.restart = setTimeout(() => {
      this.restart = null;
      try {
        this.start();
      } catch (err) {
        this.startAgain((err as Error).message);
      }
    }, 1000).unref();
  }

  /** The backend a client socket (local -> remote) really talks to, or null if not translated. */
  translate(local: Endpoint, remote: Endpoint): Endpoint | null {
    // Asked for every client socket of every sweep; on a host without DNAT, no key to build.
    if (this.entries.size === 0) return null;
    return this.entries.get(key(local, remote))?.backend ?? null;
  }

  /** Whether `remote` has been seen as a DNAT'd destination (a service address). */
  isService(remote: Endpoint): boolean {
    return this.services.has(addr(remote));
  }

  /**
   * `translate`, and on a miss for a service address the kernel's own entry for exactly this
   * tuple (`conntrack -G`), which exists for a while after the connection failed or closed.
   * Never rejects: what cannot be resolved is null.
   */
  async lookup(local: Endpoint, remote: Endpoint): Promise<Endpoint | null> {
    const known = this.translate(local, remote);
    if (known || !this.isService(remote)) return known;
    if (this.lookups >= this.maxLookups) return null;
    this.lookups += 1;
    // The family follows from the addresses (-G refuses -f).
    const [cmd, args] = this.command([
      '-G', '-p', 'tcp', '-s', local.ip, '-d', remote.ip, '--sport', String(local.port), '--dport', String(remote.port), '-o', 'extended',
    ]);
    const out = await new Promise<string>((resolve) => execFile(cmd, args, { timeout: 2_000 }, (err, stdout) => resolve(err ? '' : stdout)));
    this.lookups -= 1;
    for (const line of out.split('\n')) this.ingest(line);
    return this.translate(local, remote);
  }

  /**
   * Whether a client's record names a service address untranslated: the entry for it was
   * not read in time (its event came late or was dropped), so `resolve` should ask the kernel.
   */
  missed(r: NatRecord): boolean {
    return this.services.size > 0 && r.role === 'client' && r.remote_orig === null && this.isService(r.remote);
  }

  /** `r` with the backend its connection really reached, as `lookup` finds it; else `r` itself. */
  async resolve<R extends NatRecord>(r: R): Promise<R> {
    const backend = await this.lookup(r.local, r.remote);
    return backend ? { ...r, remote: backend, remote_orig: r.remote } : r;
  }

  /** Forgets entries older than the retention; call once per slot. */
  prune(now = Date.now()): void {
    for (const [k, v] of this.entries) {
      if (now - v.seenMs <= this.retainMs) break; // insertion order is age order
      this.entries.delete(k);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  stop(): void {
    if (this.restart) clearTimeout(this.restart);
    this.restart = null;
    const f = this.follower;
    this.follower = null;
    if (f?.pid !== undefined && f.exitCode === null) f.kill('SIGTERM');
  }
}
