/**
 * The agent daemon: probes -> per-slot sweep -> records -> Kafka (or stdout).
 * One sweep per slot, aligned to the wall clock; rare events (connect failures, resets,
 * DNS) are turned into records as they arrive and leave with the next sweep.
 */
import { readFileSync, statSync } from 'node:fs';
import { Kafka, logLevel, type KafkaConfig, type SASLOptions } from 'kafkajs';
import type { Logger } from 'pino';
import { DNS_PROGRAMS, DnsMatcher, cgroup2Mount, monoNowUs, monoToEpochConverter, monoUsToEpochMs, openProbes, type ProbeEvent, type Probes, type ReadOptions, type SocketScan, type SocketStats } from '@meshlens/bpf';
import { Topics, type DnsRecord, type Endpoint, type Owner, type TcpEvent, type TcpRecord } from '@meshlens/schemas';
import { CgroupIndex } from './cgroup.js';
import type { AgentConfig } from './config.js';
import { dnsRecord, tcpEventRecord, type EventContext } from './event-records.js';
import { serveHealthAndMetrics } from '@meshlens/schemas/health-http';
import { JsonLines } from './json-lines.js';
import { agentMetrics, type AgentMetrics } from './metrics.js';
import { NatTable, type NatRecord } from './nat.js';
import { TcpFrames, framesByPartition } from './partition.js';
import { REQUEST_TIMEOUT_MS, Shipper } from './shipper.js';
import { slotStart, everySlot } from './slots.js';
import { Spool } from './spool.js';
import { TcpSweeper, type SweptSocket } from './tcp-records.js';

export interface AgentHandle {
  readonly probes: Probes;
  readonly metrics: AgentMetrics;
  /** Records handed to the output so far, by type (what a consumer must eventually see). */
  readonly produced: Record<keyof Batch, number>;
  /** Where /metrics and /healthz answer, if served. */
  readonly metricsUrl: string | null;
  /** Sweeps now (for the current, unfinished slot) and ships the result. */
  flushNow(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * How far before a slot's end a socket must have opened to count as read by that slot's
 * sweep: the two clocks are read once per sweep, a little apart.
 */
const OPENED_MARGIN_US = 1_000_000;
/**
 * Closed sockets are deleted from the kernel map in batches of this many as the sweep reads
 * them, not after it: in a fast churn the map fills up while a sweep runs.
 */
const DELETE_CHUNK = 1024;
/**
 * Every this many sweeps, one reads every socket rather than only those that changed, so
 * that the readings of sockets the kernel deleted unread (a failed connect whose event was
 * lost or came during the sweep that read it) are forgotten: ~200 B each, a slow leak.
 */
const FULL_READ_EVERY = 60;

interface Batch {
  tcp: TcpRecord[];
  tcp_event: TcpEvent[];
  dns: DnsRecord[];
}

/**
 * Where records go. tcp records are handed over one at a time as a sweep makes them and
 * kept only in their output form, so that none outlives its turn; the rest (few) at the
 * sweep's end, which also ships whatever the output still holds.
 */
interface Output {
  /** Takes `r`; a promise when something had to be shipped before going on. */
  tcp(r: TcpRecord): Promise<void> | undefined;
  end(b: Pick<Batch, 'tcp_event' | 'dns'>): Promise<void>;
}

/**
 * Of a read, the sockets a slot's sweep handles: not those that opened, or closed, after the
 * slot ended (`afterSlot`), which are left to the next sweep. Closed ones are handed to
 * `closed` as they pass; `seen`, if given, collects every cookie, the skipped ones too.
 * One generator function for every sweep, not one per sweep: V8 gives each generator
 * function its own map for the generators it makes, and with a new one per sweep
 * `TcpSweeper.sweep` was deoptimized ("wrong map") and compiled again at every sweep, 10-40
 * ms of V8's worker threads each time (bench/RESULTS.md, issue 4).
 */
function* slotSockets(
  scan: SocketScan,
  afterSlot: (us: number | null) => boolean,
  closed: (cookie: number) => void,
  seen: Set<number> | null,
): Generator<SocketStats> {
  for (const s of scan) {
    seen?.add(s.cookie);
    if (afterSlot(s.openedUs) || (s.closed && afterSlot(s.closedUs))) continue;
    if (s.closed) closed(s.cookie);
    yield s;
  }
}

function ephemeralRange(): (port: number) => boolean {
  const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  return (p) => p >= lo! && p <= hi!;
}

function netnsPath(n: string): string {
  return n.includes('/') ? n : `/run/netns/${n}`;
}

function kafkaClient(cfg: NonNullable<AgentConfig['kafka']>, log: Logger): Kafka {
  const k: KafkaConfig = {
    clientId: cfg.clientId,
    brokers: cfg.brokers,
    logLevel: logLevel.NOTHING,
    ssl: typeof cfg.ssl === 'boolean' ? cfg.ssl : { ...cfg.ssl },
    connectionTimeout: 3000,
    requestTimeout: REQUEST_TIMEOUT_MS,
  };
  if (cfg.sasl) k.sasl = { ...cfg.sasl } as SASLOptions;
  log.debug({ brokers: cfg.brokers }, 'kafka client');
  return new Kafka(k);
}

async function ensureTopics(kafka: Kafka, partitions: number): Promise<Map<string, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const wanted = [Topics.tcp, Topics.tcp_event, Topics.dns];
    const existing = new Set(await admin.listTopics());
    const missing = wanted.filter((t) => !existing.has(t));
    if (missing.length) await admin.createTopics({ topics: missing.map((topic) => ({ topic, numPartitions: partitions })), waitForLeaders: true });
    const meta = await admin.fetchTopicMetadata({ topics: wanted });
    return new Map(meta.topics.map((t) => [t.name, t.partitions.length]));
  } finally {
    await admin.disconnect();
  }
}

export async function startAgent(cfg: AgentConfig, log: Logger, stdout: NodeJS.WritableStream = process.stdout): Promise<AgentHandle> {
  const metrics = agentMetrics();
  const scope = new Map(cfg.netns.map((n) => [statSync(netnsPath(n)).ino, netnsPath(n)]));
  const inScope = (netns: number) => scope.size === 0 || scope.has(netns);
  // Scoped, the probes hand over and decode only these namespaces' sockets.
  const readScope = scope.size ? { netns: [...scope.keys()] } : {};

  // Kafka first: if it is configured but unreachable we still start (and spool), but the
  // partition counts must be known, so a first contact is attempted here.
  let output: Output;
  let shipper: Shipper | null = null;
  let spool: Spool | null = null;
  if (cfg.output === 'kafka') {
    const kafka = kafkaClient(cfg.kafka!, log);
    const partitions = await ensureTopics(kafka, cfg.kafka!.createPartitions);
    spool = new Spool({ dir: cfg.spool.dir, maxBytes: cfg.spool.maxBytes });
    shipper = new Shipper({ kafka, spool, log });
    const s = shipper;
    const tcp = new TcpFrames(partitions.get(Topics.tcp)!);
    output = {
      tcp: (r) => {
        const full = tcp.add(r);
        return full ? s.send(full) : undefined;
      },
      end: (b) =>
        s.send([...tcp.take(), ...framesByPartition('tcp_event', b.tcp_event, partitions.get(Topics.tcp_event)!), ...framesByPartition('dns', b.dns, partitions.get(Topics.dns)!)]),
    };
  } else {
    const lines = new JsonLines((chunk) => stdout.write(chunk));
    output = {
      tcp: (r) => {
        lines.tcp(r);
        return undefined;
      },
      end: async (b) => {
        for (const r of b.tcp_event) lines.line('tcp_event', r);
        for (const r of b.dns) lines.line('dns', r);
        lines.flush();
      },
    };
  }

  const cgroupRoot = cfg.cgroupPath ?? cgroup2Mount();
  const probes = openProbes({ cgroupPath: cgroupRoot, without: cfg.dns ? [] : DNS_PROGRAMS });
  for (const a of probes.attachments) {
    // Not a program this kernel refused: no series that an alert on 0 would take for one.
    if (a.leftOut) {
      log.info({ program: a.program }, 'left out by configuration');
      continue;
    }
    metrics.attached.set({ program: a.program }, a.attached ? 1 : 0);
    if (a.attached) log.info({ program: a.program }, 'attached');
    else log.warn({ program: a.program, error: a.error }, 'not attached; running without it');
  }

  const nat = new Map<number | null, NatTable>();
  for (const [inode, path] of scope.size ? scope : new Map<number | null, string | null>([[null, null]])) {
    const t = new NatTable({ netnsPath: path });
    t.on('followerExit', (why: string) => {
      metrics.natFollowerExits.inc();
      log.warn({ netns: path, why }, 'conntrack event follower ended; starting it again in 1 s');
    });
    try {
      t.start();
      nat.set(inode, t);
    } catch (err) {
      log.warn({ netns: path, err: (err as Error).message }, 'no NAT translation (conntrack unavailable)');
    }
  }
  const natFor = (netns: number) => nat.get(netns) ?? nat.get(null) ?? null;
  const resolveNat = async <R extends NatRecord>(table: NatTable, r: R): Promise<R> => {
    const x = await table.resolve(r);
    metrics.natLookups.inc({ result: x.remote_orig ? 'resolved' : 'unresolved' });
    return x;
  };

  const cgroups = new CgroupIndex(cgroupRoot);
  const comms = new Map<number, string>();
  const commOf = (pid: number): string => {
    if (pid === 0) return '';
    let c = comms.get(pid);
    if (c === undefined) {
      try {
        c = readFileSync(`/proc/${pid}/comm`, 'utf8').trim().slice(0, 16);
      } catch {
        c = '';
      }
      comms.set(pid, c);
    }
    return c;
  };
  const ownerOf = (o: { netns: number; cgroupId: number; pid: number; comm: string }): Owner => {
    const c = cgroups.containerOf(o.cgroupId);
    return { node: cfg.node, netns: o.netns, cgroup_id: o.cgroupId, pid: o.pid, comm: (o.comm || commOf(o.pid)).slice(0, 16), container_id: c.containerId, pod_uid: c.podUid };
  };
  const eventCtx: EventContext = {
    ownerOf,
    translate: () => null,
    toEpochMs: monoUsToEpochMs,
  };

  // Without the DNS capture (--no-dns) no DNS packet ever comes: nothing to match or expire.
  const dns = cfg.dns ? new DnsMatcher({ timeoutUs: cfg.dnsTimeoutMs * 1000 }) : null;
  const pending: Batch = { tcp: [], tcp_event: [], dns: [] };
  const sweeper = new TcpSweeper(ephemeralRange());
  const unsubscribe = probes.onEvent((e: ProbeEvent) => {
    metrics.events.inc({ type: e.type === 'tcp' ? e.kind : 'dns' });
    if (e.type === 'tcp') {
      // The kernel deletes a failed connect's entry itself: no sweep will read it closed.
      if (e.kind === 'connect_failed') sweeper.forget(e.cookie);
      if (!inScope(e.owner.netns)) return;
      const table = natFor(e.owner.netns);
      const r = tcpEventRecord(e, { ...eventCtx, translate: (l: Endpoint, r: Endpoint) => table?.translate(l, r) ?? null });
      if (!r) return;
      // A failed connect to a service address is often over before conntrack's event for it
      // is read: ask the table, then record it translated like the connection's other events.
      if (table?.missed(r)) void resolveNat(table, r).then((x) => pending.tcp_event.push(x));
      else pending.tcp_event.push(r);
    } else if (dns && inScope(e.netns)) {
      const x = dns.add(e);
      if (x) pending.dns.push(dnsRecord(x, eventCtx));
    }
  });

  const produced = { tcp: 0, tcp_event: 0, dns: 0 };
  const count = (type: keyof Batch, n: number) => {
    metrics.records.inc({ type }, n);
    produced[type] += n;
  };
  // After the first sweep, only sockets that may have changed since the previous one are
  // read: an idle open socket costs user space nothing (and emits nothing anyway).
  let since: ReadOptions['since'];
  let sweeps = 0;
  let lastSweepMs = Date.now();
  let chain = Promise.resolve();
  // Created once, not per sweep: TurboFan compiled a new closure of this body again at
  // every sweep (5-34 ms of a V8 worker thread each time, bench/RESULTS.md, issue 4).
  const sweepSlot = async (slot: number): Promise<void> => {
    // Reading the map is not a snapshot, and it happens after the slot ended: of the two
    // ends of a connection opened or closed meanwhile, one may be read before that and the
    // other after, and their records would land a slot apart. A socket that opened or
    // closed after the slot ended is therefore left, entry and all, to the next sweep,
    // which sees both ends done (closed ones are always read; opened ones through
    // `since.openedUs`). Where the peer's agent read its end before the close, the analyzer
    // joins the two slots' records (analyzer/src/matcher.ts).
    const slotEndMs = slot + cfg.slotMs;
    const toEpochMs = monoToEpochConverter();
    const afterSlot = (us: number | null) => us !== null && toEpochMs(us) >= slotEndMs;
    const slotEndMonoUs = monoNowUs() - (Date.now() - slotEndMs) * 1000;
    const full = sweeps++ % FULL_READ_EVERY === 0;
    const scan = probes.scanSocketStats({ ...readScope, since: full ? undefined : since });
    // Of a full read, every socket counts as seen, those left to the next sweep included.
    const seen = full ? new Set<number>() : null;
    for (const t of nat.values()) t.prune();
    const done: number[] = [];
    const closed = (cookie: number) => {
      if (done.push(cookie) === DELETE_CHUNK) probes.deleteSockets(done.splice(0));
    };
    const owners = new Map<string, Owner>();
    // The probes share one owner object per thread: looked up by it first, the key (which
    // merges a process's threads) made only once per thread.
    const ownersOfThreads = new Map<SocketStats['owner'], Owner>();
    // Decoded, recorded and shipped one socket at a time: nothing of a socket but its
    // record (and its reading, while open) outlives its turn.
    const swept = sweeper.sweep(slotSockets(scan, afterSlot, closed, seen), {
      slotStartMs: slot,
      slotMs: cfg.slotMs,
      // Most sockets of a sweep share a handful of owners: one object each, not one per record.
      ownerOf: ({ owner: o }: SocketStats) => {
        let owner = ownersOfThreads.get(o);
        if (owner) return owner;
        const k = `${o.netns}/${o.cgroupId}/${o.pid}/${o.comm}`;
        owner = owners.get(k);
        if (!owner) owners.set(k, (owner = ownerOf(o)));
        ownersOfThreads.set(o, owner);
        return owner;
      },
      translate: (s: SocketStats) => natFor(s.owner.netns)?.translate(s.local, s.remote) ?? null,
      toEpochMs: monoUsToEpochMs,
    });
    const synTimeouts: TcpEvent[] = [];
    let tcp = 0;
    // Not async, nor awaited unless something is being shipped: a promise per record was a
    // sixth of what a sweep allocated (bench/RESULTS.md, issue 4).
    const ship = ({ record, synTimeout }: SweptSocket): Promise<void> | undefined => {
      tcp++;
      if (synTimeout) synTimeouts.push({ ...synTimeout, remote: record.remote, remote_orig: record.remote_orig });
      return output.tcp(record);
    };
    // A connection to a service address opened just before the slot ended may have been read
    // before its conntrack event (the event loop runs this sweep's timer before it reads
    // the pipe): its translation is asked of the kernel, and the record shipped after.
    const resolving: Promise<SweptSocket>[] = [];
    try {
      for (const socket of swept) {
        const table = natFor(socket.record.owner.netns);
        if (table?.missed(socket.record)) resolving.push(resolveNat(table, socket.record).then((record) => ({ ...socket, record })));
        else {
          const shipping = ship(socket);
          if (shipping) await shipping;
        }
      }
      for (const socket of await Promise.all(resolving)) await ship(socket);
      since = { updatedUs: scan.readUs, openedUs: slotEndMonoUs - OPENED_MARGIN_US };
      if (seen) sweeper.retainOnly(seen);
    } finally {
      // Closed sockets read so far are done; the rest stay for the next sweep.
      probes.deleteSockets(done);
      count('tcp', tcp);
    }
    for (const x of dns?.expire(monoNowUs()) ?? []) pending.dns.push(dnsRecord(x, eventCtx));
    const events = { tcp_event: [...pending.tcp_event.splice(0), ...synTimeouts], dns: pending.dns.splice(0) };
    count('tcp_event', events.tcp_event.length);
    count('dns', events.dns.length);
    await output.end(events);
    comms.clear();
    metrics.sweeps.inc();
    metrics.sockets.set(scan.inScope);
    metrics.readings.set(sweeper.tracked);
    for (const [k, v] of Object.entries(probes.readCounters())) metrics.kernel.set({ counter: k }, v);
    metrics.dnsPending.set(dns?.outstanding ?? 0);
    metrics.natEntries.set([...nat.values()].reduce((n, t) => n + t.size, 0));
    if (spool && shipper) {
      metrics.spoolBytes.set(spool.stats.bytes);
      metrics.dropped.set(spool.stats.droppedRecords);
      metrics.kafkaErrors.set(shipper.stats.sendErrors);
    }
    lastSweepMs = Date.now();
  };
  const sweep = (slot: number): Promise<void> => {
    const run = chain.then(() => sweepSlot(slot));
    // The next sweep waits for this one, not for its success: a sweep that failed (logged by
    // its caller) must not stop every later one.
    chain = run.catch(() => {});
    return run;
  };

  const stopSlots = everySlot(cfg.slotMs, (ended) => {
    sweep(ended).catch((err: Error) => log.error({ err: err.message }, 'sweep failed'));
  });

  // Healthy while the probes are attached and sweeps keep coming.
  const http =
    cfg.metricsPort > 0
      ? await serveHealthAndMetrics(cfg.metricsHost, cfg.metricsPort, metrics.registry, () => ({
          ok: !probes.closed && Date.now() - lastSweepMs < 3 * cfg.slotMs,
          lastSweepMs,
        }))
      : null;
  const metricsUrl = http?.url ?? null;
  log.info({ node: cfg.node, slotMs: cfg.slotMs, output: cfg.output, netns: cfg.netns, metricsUrl }, 'agent running');

  return {
    probes,
    metrics,
    produced,
    metricsUrl,
    flushNow: () => sweep(slotStart(Date.now(), cfg.slotMs)),
    async stop() {
      stopSlots();
      // The unfinished slot is swept too: stopping must not lose its data.
      await sweep(slotStart(Date.now(), cfg.slotMs));
      unsubscribe();
      probes.close();
      for (const t of nat.values()) t.stop();
      if (shipper) {
        const drained = await shipper.flush(3000);
        if (!drained) log.warn({ bytes: spool!.stats.bytes }, 'Kafka unreachable at shutdown; records stay in the spool for the next start');
        await shipper.close();
      }
      await http?.close();
    },
  };
}
