/**
 * Assembles the pipeline: migrations, the enrichment index (metadata + DNS names, read in
 * full), then one consumer group over the agent topics whose batches go to per-partition
 * workers (ingest -> match -> enrich -> insert -> commit), plus /metrics and /healthz.
 */
import { Partitioners, type Consumer, type Kafka, type Producer } from 'kafkajs';
import { pino, type Logger } from 'pino';
import { decodeFrame, type DnsRecord, type Metadata } from '@meshlens/schemas';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { SYNC_INSERT_SETTINGS, migrate } from '@meshlens/schemas/clickhouse';
import { startBroadcastReader, type BroadcastReader } from './broadcast.js';
import { decodeCommitState } from './commit-state.js';
import type { AnalyzerConfig } from './config.js';
import { DeadLetterQueue } from './dead-letter.js';
import { DnsNames } from './dns-names.js';
import { Enricher } from './enrich.js';
import { serveHealthAndMetrics } from '@meshlens/schemas/health-http';
import { kafkaClient } from './kafka.js';
import { MetadataIndex } from './metadata-index.js';
import { createMetrics, type Metrics } from './metrics.js';
import { PartitionWorker, RetiredError, type WorkerDeps } from './partition-worker.js';
import { FlowProcessor, dnsProcessor, eventProcessor, type PartitionProcessor } from './processors.js';
import { ClickHouseSink } from './sink.js';
import { ensureTopics } from './topics.js';

export interface Analyzer {
  metrics: Metrics;
  httpPort: number;
  /** This member's partitions since its last join to the group, by topic. */
  assigned(): Record<string, number[]>;
  stop(): Promise<void>;
}

/** Errors after which the worker's partition is someone else's (or ours again, from the committed offset). */
const REBALANCE = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'NOT_COORDINATOR']);

function isRebalance(err: unknown): boolean {
  return err instanceof RetiredError || REBALANCE.has((err as { type?: string }).type ?? '');
}

function applyFrames<T>(value: Buffer, type: 'metadata' | 'dns', log: Logger, each: (r: T) => void): void {
  try {
    const frame = decodeFrame(value);
    if (frame.header.type !== type) return;
    for (const r of frame.records) each(r as T);
    if (frame.invalid.length) log.warn({ invalid: frame.invalid.map((i) => i.reason) }, 'invalid records ignored by the enrichment index');
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'undecodable frame ignored by the enrichment index');
  }
}

export async function startAnalyzer(cfg: AnalyzerConfig, log: Logger = pino({ level: cfg.logLevel })): Promise<Analyzer> {
  const metrics = createMetrics();
  const target = { url: cfg.clickhouse.url, username: cfg.clickhouse.username, password: cfg.clickhouse.password, database: cfg.clickhouse.database };
  const migrations = await migrate(target, undefined, { onLockWait: (holder) => log.info({ holder }, 'waiting for another migrator of the database') });
  log.info(migrations, 'migrations');
  // The client's own logger would print every failed attempt a second time; the sink logs
  // them through pino with the retry context, and every other failure reaches us as an error.
  const ch = createClient({ ...target, clickhouse_settings: SYNC_INSERT_SETTINGS, log: { level: ClickHouseLogLevel.OFF } });
  const kafka: Kafka = kafkaClient(cfg.kafka, log);
  const admin = kafka.admin();
  await admin.connect();
  const created = await ensureTopics(admin, cfg);
  if (created.length) log.info({ created }, 'created missing topics');
  const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();

  const index = new MetadataIndex();
  const names = new DnsNames(cfg.maxDnsNames, () => metrics.dnsNamesEvicted.inc());
  const enrich = new Enricher(index, names);
  const readers: BroadcastReader[] = [];
  readers.push(
    await startBroadcastReader(kafka, admin, { topic: cfg.topics.metadata, groupPrefix: cfg.groupId, log }, (m) => {
      if (m.value === null) {
        if (m.key) index.tombstone(m.key.toString(), Number(m.timestamp));
        return;
      }
      applyFrames<Metadata>(m.value, 'metadata', log, (r) => {
        index.apply(r);
        metrics.metadataRecords.inc({ topic: cfg.topics.metadata });
      });
    }),
  );
  readers.push(
    await startBroadcastReader(kafka, admin, { topic: cfg.topics.dns, groupPrefix: cfg.groupId, log }, (m) => {
      if (m.value) applyFrames<DnsRecord>(m.value, 'dns', log, (r) => metrics.metadataRecords.inc({ topic: cfg.topics.dns }, names.learn(r)));
    }),
  );
  await Promise.all(readers.map((r) => r.ready));

  const consumer: Consumer = kafka.consumer({
    groupId: cfg.groupId,
    sessionTimeout: cfg.sessionTimeoutMs,
    heartbeatInterval: Math.floor(cfg.sessionTimeoutMs / 10),
  });
  let crashed: string | null = null;
  consumer.on(consumer.events.CRASH, (e) => {
    metrics.consumerCrashes.inc();
    crashed = e.payload.restart ? null : e.payload.error.message;
    log.error({ err: e.payload.error, restart: e.payload.restart }, 'consumer crashed');
  });
  let halts = 0;
  const sink = new ClickHouseSink(ch, metrics, log, { minMs: cfg.retryMinMs, maxMs: cfg.retryMaxMs });
  // Read while ClickHouse is known to answer (migrations just ran): rows are encoded as they are built.
  await sink.load();
  const deps: WorkerDeps = {
    log,
    metrics,
    sink,
    deadLetters: new DeadLetterQueue(producer, cfg.topics.deadLetter, metrics),
    commit: async (topic, partition, offset, metadata) => {
      await consumer.commitOffsets([{ topic, partition, offset: String(offset), metadata }]);
      metrics.committed.inc({ topic });
    },
    pause: (topic, partition) => {
      consumer.pause([{ topic, partitions: [partition] }]);
      metrics.paused.inc();
    },
    resume: (topic, partition) => {
      consumer.resume([{ topic, partitions: [partition] }]);
      metrics.paused.dec();
    },
    afterInsert: async () => {
      if (cfg.haltBeforeCommitAfterInserts === null || ++halts < cfg.haltBeforeCommitAfterInserts) return;
      process.stderr.write('meshlens-analyzer: halted between insert and commit\n');
      await new Promise<never>(() => {});
    },
    idleFlushMs: cfg.idleFlushMs,
  };

  const processorFor = (topic: string, state: ReturnType<typeof decodeCommitState>): PartitionProcessor => {
    if (topic === cfg.topics.tcp) return new FlowProcessor(enrich, metrics, { graceMs: cfg.graceMs, maxHeld: cfg.maxHeldRecords }, { watermarkMs: state?.wm ?? 0, emittedThrough: state?.through ?? -1 });
    if (topic === cfg.topics.tcpEvent) return eventProcessor(enrich);
    return dnsProcessor(enrich);
  };

  // Replaced wholesale on every (re)join: kafkajs then restarts every partition from its
  // committed offset, and the workers' held state must restart from there with it.
  let workers = new Map<string, Promise<PartitionWorker>>();
  let assigned: Record<string, number[]> = {};
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    assigned = e.payload.memberAssignment;
    for (const w of workers.values()) void w.then((x) => x.retire(), () => undefined);
    workers = new Map();
  });
  const workerFor = (topic: string, partition: number): Promise<PartitionWorker> => {
    const id = `${topic}/${partition}`;
    let w = workers.get(id);
    if (!w) {
      w = admin.fetchOffsets({ groupId: cfg.groupId, topics: [topic] }).then((res) => {
        const p = res.flatMap((t) => t.partitions).find((x) => x.partition === partition);
        const offset = p && Number(p.offset) >= 0 ? Number(p.offset) : null;
        const state = decodeCommitState(p?.metadata ?? null);
        if (state?.next) log.info({ topic, partition, offset, state }, 'resuming an unfinished unit');
        return new PartitionWorker(deps, topic, partition, processorFor(topic, state), { offset, state });
      });
      workers.set(id, w);
    }
    return w;
  };

  await consumer.connect();
  await consumer.subscribe({ topics: [cfg.topics.tcp, cfg.topics.tcpEvent, cfg.topics.dns], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 4,
    eachBatch: async ({ batch, heartbeat, resolveOffset }) => {
      const worker = await workerFor(batch.topic, batch.partition);
      // A worker retired by a rebalance error stays in place until the group rejoins: only
      // then does kafkajs restart the partition from its committed offset, which is where a
      // fresh worker's state has to start.
      if (worker.isRetired) return;
      try {
        await worker.handleBatch(batch.messages, heartbeat);
      } catch (err) {
        if (!isRebalance(err)) throw err;
        worker.retire();
        log.info({ topic: batch.topic, partition: batch.partition }, 'partition reassigned mid-unit; the new owner replays it');
        return;
      }
      // Fetch position only: what is committed is decided by the worker.
      resolveOffset(batch.lastOffset());
      metrics.lag.set({ topic: batch.topic, partition: String(batch.partition) }, Number(batch.highWatermark) - 1 - Number(batch.lastOffset()));
    },
  });

  const http = await serveHealthAndMetrics(cfg.http.host, cfg.http.port, metrics.registry, () => ({
    ok: crashed === null,
    detail: { crashed, assigned, paused: consumer.paused() },
  }));
  log.info({ port: http.port, groupId: cfg.groupId }, 'analyzer running');

  return {
    metrics,
    httpPort: http.port,
    assigned: () => assigned,
    stop: async () => {
      for (const w of workers.values()) void w.then((x) => x.retire(), () => undefined);
      await consumer.disconnect();
      await Promise.all(readers.map((r) => r.stop()));
      await producer.disconnect();
      await admin.disconnect();
      await ch.close();
      await http.close();
    },
  };
}
