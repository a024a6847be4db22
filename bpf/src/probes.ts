/** openProbes(): load, attach and read the meshlens kernel programs. */
import { Decoders, type ProbeEvent, type SocketStats } from './decode.js';
import { cgroup2Mount, listNetns, monoNowUs } from './host.js';
import { loadNative, OBJECT_PATH, type IterReport, type NativeAttachment, type NativeProbes, type ProgramStats } from './native.js';

export interface ProbeOptions {
  objectPath?: string;
  /** cgroup v2 directory to attach sockops/cgroup_skb to; default: the root of the v2 mount. */
  cgroupPath?: string;
  /** Also send open/close events (the socket map carries both anyway). Default false. */
  lifecycleEvents?: boolean;
  /** Adopt sockets that were already open in every network namespace. Default true. */
  adoptExisting?: boolean;
  /**
   * Programs not to load at all (reported in `attachments` as left out), e.g. DNS_PROGRAMS.
   * A name the object does not have is an error.
   */
  without?: readonly string[];
}

/** The DNS capture: two cgroup_skb programs that every packet on the host passes through. */
export const DNS_PROGRAMS: readonly string[] = ['ml_dns_egress', 'ml_dns_ingress'];

export type Attachment = NativeAttachment;

export type AdoptReport = IterReport;

export interface ReadOptions {
  /** Remove the closed sockets read from the kernel map. Default false. */
  deleteClosed?: boolean;
  /**
   * Bring every open socket's counters up to date as it is read (ml_read, the iterator over
   * the socket map that is the read). Default true: the kernel refreshes them otherwise
   * only at state changes, so without this an open socket shows its counters as of its
   * last state change.
   */
  refresh?: boolean;
  /**
   * Only the sockets of these network namespaces (inode numbers) are returned; closed sockets
   * of any other are deleted from the map (nobody reads them). Default: every namespace.
   */
  netns?: readonly number[];
  /**
   * Only the open sockets that may have changed since an earlier read: updated (counters
   * moved or state changed) at or after `updatedUs`, or opened at or after `openedUs`
   * (CLOCK_MONOTONIC microseconds, as `SocketScan.readUs`). Closed sockets are always
   * returned. Default: every socket.
   */
  since?: { updatedUs: number; openedUs: number };
}

/**
 * One read of the socket map, decoded lazily, one socket per step: a sweep that handles
 * each socket before taking the next never holds the map as objects. Decode it before the
 * next read: that one reuses its buffer, and iterating this scan after it throws.
 */
export interface SocketScan extends Iterable<SocketStats> {
  /** Sockets returned. */
  readonly count: number;
  /** Sockets of the namespaces read, including those `since` left out. */
  readonly inScope: number;
  /** Every change made after this moment is in a later read with `since.updatedUs = readUs`. */
  readonly readUs: number;
}

/**
 * A hook takes its timestamp before it writes the entry: one that started just before a
 * read's moment may write after the read passed the entry, stamped earlier than that moment.
 */
const STAMP_LAG_US = 1000;

/** Kernel-side counters (drops and overflow included), summed over CPUs. */
export type Counters = Record<string, number>;

export interface Probes {
  readonly attachments: Attachment[];
  readonly adopted: AdoptReport[];
  /** Subscribe to decoded ring-buffer events; returns the unsubscribe function. */
  onEvent(cb: (e: ProbeEvent) => void): () => void;
  /** The same events as an async iterator; ends when the probes close. */
  events(): AsyncIterableIterator<ProbeEvent>;
  /** Every tracked socket (of `netns`), counters as of now unless `refresh: false`. */
  readSocketStats(opts?: ReadOptions): SocketStats[];
  /** The same read, decoded as it is iterated. */
  scanSocketStats(opts?: ReadOptions): SocketScan;
  /**
   * Forget sockets by cookie (e.g. after their final record was emitted), and their spilled
   * histograms if the last read saw one (a closed socket spills no more).
   */
  deleteSockets(cookies: number[]): number;
  /**
   * The kernel side's own counters (drops, map overflow), and `<program>_missed_runs` for
   * every loaded program: runs the kernel skipped because that program was already running on
   * the CPU. A tracepoint's program running in process context can be interrupted by a
   * softirq (with RPS, raised by another CPU) that hits the same tracepoint; that nested run
   * does not happen. sockops and cgroup_skb programs are not guarded so and never miss.
   */
  readCounters(): Counters;
  /**
   * Calls and kernel time per program: the probes' own overhead. The first call enables
   * the kernel's run-time accounting, so counting starts then.
   */
  programStats(): ProgramStats[];
  /** Adopt already-open sockets (again), e.g. for namespaces created since. */
  adoptExisting(): AdoptReport[];
  close(): void;
  readonly closed: boolean;
}

const CFG_LIFECYCLE = 0;

type RawRead = ReturnType<NativeProbes['readSockets']>;

/**
 * Cookies are u64 in the kernel and far below 2^53 (see schemas/records.ts): two u32 halves
 * give the same number as a BigInt would, without a BigInt per socket per sweep.
 */
const U32 = 0x1_0000_0000;
const readCookie = (b: Buffer, off: number) => b.readUInt32LE(off) + b.readUInt32LE(off + 4) * U32;

/**
 * The addon hands every read over in the same buffer, overwritten by the next read: a new
 * one per read was external memory that brought on V8's full collections (see the addon's
 * OutBuffer). A scan therefore decodes only while no later read has happened.
 */
interface ReadBuffer {
  view: Buffer | null;
  reads: number;
}

/**
 * The sockets of a read, decoded one per step. One generator function for every read, not
 * one per read: V8 gives each generator function its own map for the generators it makes,
 * so with a new one per read whatever iterated them was deoptimized ("wrong map") and
 * compiled again at every agent sweep (bench/RESULTS.md, issue 4).
 */
function* decodeSockets(raw: RawRead, view: Buffer, decoders: Decoders, reads: ReadBuffer, read: number): Generator<SocketStats> {
  const spills = new Map<number, number>();
  const spillItem = 8 + raw.spillValueSize;
  for (let i = 0; i < raw.spillCount; i++) spills.set(readCookie(view, raw.spillsAt + i * spillItem), raw.spillsAt + i * spillItem + 8);
  const item = 8 + raw.valueSize;
  for (let i = 0; i < raw.count; i++) {
    if (reads.reads !== read) throw new Error('socket scan overtaken: a later read of the socket map reused its buffer');
    const cookie = readCookie(view, i * item);
    const at = spills.get(cookie);
    yield decoders.socket(view, i * item + 8, cookie, at === undefined ? undefined : { buf: view, base: at });
  }
}

class ProbesImpl implements Probes {
  readonly attachments: Attachment[];
  adopted: AdoptReport[] = [];
  closed = false;
  private readonly decoders: Decoders;
  private readonly listeners = new Set<(e: ProbeEvent) => void>();
  private readonly onClose = new Set<() => void>();
  private readonly readBuffer: ReadBuffer = { view: null, reads: 0 };

  constructor(
    private readonly native: NativeProbes,
    opts: ProbeOptions,
  ) {
    this.attachments = native.attachments();
    this.decoders = new Decoders(native);
    if (opts.lifecycleEvents) native.setConfig(CFG_LIFECYCLE, 1);
    native.startEvents((records) => this.deliver(records));
    if (opts.adoptExisting ?? true) this.adoptExisting();
  }

  private deliver(records: Buffer[]): void {
    for (const r of records) {
      const e = this.decoders.event(r);
      if (!e) continue;
      for (const l of this.listeners) l(e);
    }
  }

  onEvent(cb: (e: ProbeEvent) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  events(): AsyncIterableIterator<ProbeEvent> {
    const queue: ProbeEvent[] = [];
    let wake: (() => void) | null = null;
    let done = this.closed;
    const off = this.onEvent((e) => {
      queue.push(e);
      wake?.();
    });
    const finish = () => {
      done = true;
      off();
      this.onClose.delete(finish);
      wake?.();
    };
    this.onClose.add(finish);
    const it: AsyncIterableIterator<ProbeEvent> = {
      next: async () => {
        while (queue.length === 0 && !done) await new Promise<void>((r) => (wake = r));
        wake = null;
        const value = queue.shift();
        return value ? { value, done: false } : { value: undefined, done: true };
      },
      return: async () => {
        // The consumer is done: events still queued are not its any more (on close they
        // are, so finish() alone keeps them).
        queue.length = 0;
        finish();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  readSocketStats(opts: ReadOptions = {}): SocketStats[] {
    return [...this.scanSocketStats(opts)];
  }

  scanSocketStats(opts: ReadOptions = {}): SocketScan {
    // Before the pass: a socket it refreshes is stamped later than this, and one it passed
    // before a change is read again next time.
    const readUs = monoNowUs() - STAMP_LAG_US;
    const raw = this.native.readSockets(opts.deleteClosed ?? false, opts.netns ?? null, opts.since ?? null, opts.refresh ?? true);
    const rb = this.readBuffer;
    const read = ++rb.reads;
    if (rb.view?.buffer !== raw.buf) rb.view = Buffer.from(raw.buf);
    const view = rb.view;
    const decoders = this.decoders;
    return { count: raw.count, inScope: raw.inScope, readUs, [Symbol.iterator]: () => decodeSockets(raw, view, decoders, rb, read) };
  }

  deleteSockets(cookies: number[]): number {
    const keys = Buffer.alloc(cookies.length * 8);
    cookies.forEach((c, i) => {
      keys.writeUInt32LE(c % U32, i * 8);
      keys.writeUInt32LE(Math.floor(c / U32), i * 8 + 4);
    });
    return this.native.deleteSockets(keys);
  }

  readCounters(): Counters {
    const raw = this.native.readCounters();
    const out: Counters = {};
    for (const [i, name] of this.decoders.counterNames) if (name !== 'max') out[name] = raw[i] ?? 0;
    for (const p of this.native.programStats(false)) out[`${p.program}_missed_runs`] = p.missedRuns;
    return out;
  }

  programStats(): ProgramStats[] {
    return this.native.programStats();
  }

  adoptExisting(): AdoptReport[] {
    if (!this.attachments.some((a) => a.program === 'ml_adopt' && a.attached)) return [];
    this.adopted = this.native.adopt(listNetns().map((n) => n.path));
    return this.adopted;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
    for (const f of [...this.onClose]) f();
    this.listeners.clear();
  }
}

/**
 * Loads the object, attaches every program this kernel accepts (see `attachments` for
 * what did not), starts event delivery on the event loop and adopts open sockets.
 */
export function openProbes(opts: ProbeOptions = {}): Probes {
  const native = new (loadNative().Probes)(opts.objectPath ?? OBJECT_PATH, opts.cgroupPath ?? cgroup2Mount(), [...(opts.without ?? [])]);
  try {
    return new ProbesImpl(native, opts);
  } catch (e) {
    native.close();
    throw e;
  }
}
