/**
 * Test scaffolding against the real embedded Kafka and ClickHouse: every environment gets
 * its own topics, database and consumer group (random names) and removes them afterwards.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { pino } from 'pino';
import type { ClickHouseClient } from '@clickhouse/client';
import { connectionsFor, localInfraConfig, repoRoot } from '@meshlens/deploy/local';
import {
  connectionPartition,
  encodeFrame,
  sampleTcpRecords,
  type DnsRecord,
  type Metadata,
  type TcpEvent,
  type TcpRecord,
} from '@meshlens/schemas';
import { clickhouseClient } from '@meshlens/schemas/clickhouse';
import { analyzerConfigSchema, startAnalyzer, type Analyzer, type AnalyzerConfig, type AnalyzerConfigInput } from '../src/index.js';

export const PARTITIONS = 3;
export const SLOT_MS = 10_000;
/** A wall-clock-aligned slot, far enough in the past that every TTL keeps it. */
export const T0 = Math.floor((Date.now() - 3_600_000) / SLOT_MS) * SLOT_MS;

export interface TestEnv {
  conn: ReturnType<typeof connectionsFor>;
  kafka: Kafka;
  admin: Admin;
  producer: Producer;
  ch: ClickHouseClient;
  topics: AnalyzerConfig['topics'];
  database: string;
  groupId: string;
  /** The analyzer config for this environment; `overrides` adjust it per test. */
  config(overrides?: Partial<AnalyzerConfigInput>): AnalyzerConfig;
  start(overrides?: Partial<AnalyzerConfigInput>): Promise<Analyzer>;
  cleanup(): Promise<void>;
}

export async function createEnv(): Promise<TestEnv> {
  const conn = connectionsFor(localInfraConfig());
  const id = randomUUID().replaceAll('-', '');
  const topics = {
    tcp: `meshlens.test.${id}.tcp`,
    tcpEvent: `meshlens.test.${id}.tcp_event`,
    dns: `meshlens.test.${id}.dns`,
    metadata: `meshlens.test.${id}.metadata`,
    deadLetter: `meshlens.test.${id}.deadletter`,
  };
  const database = `meshlens_test_${id}`;
  const groupId = `meshlens-test-${id}`;
  const kafka = new Kafka({ clientId: 'meshlens-analyzer-test', brokers: conn.kafkaBrokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      ...[topics.tcp, topics.tcpEvent, topics.dns, topics.deadLetter].map((topic) => ({ topic, numPartitions: PARTITIONS })),
      { topic: topics.metadata, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
    ],
  });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const ch = clickhouseClient({ url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database: 'default' });
  const running: Analyzer[] = [];
  const config = (overrides: Partial<AnalyzerConfigInput> = {}): AnalyzerConfig =>
    analyzerConfigSchema.parse({
      kafka: { brokers: conn.kafkaBrokers },
      clickhouse: { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database },
      topics,
      groupId,
      graceMs: SLOT_MS,
      idleFlushMs: 300,
      http: { port: 0 },
      retryMinMs: 50,
      retryMaxMs: 500,
      ...overrides,
    });
  return {
    conn,
    kafka,
    admin,
    producer,
    ch,
    topics,
    database,
    groupId,
    config,
    start: async (overrides) => {
      const a = await startAnalyzer(config(overrides), pino({ level: process.env.MESHLENS_TEST_LOG ?? 'silent' }));
      running.push(a);
      return {
        ...a,
        stop: async () => {
          running.splice(running.indexOf(a), 1);
          await a.stop();
        },
      };
    },
    // Every step runs even when an earlier one failed, so one stuck group cannot leak the topics and the database.
    cleanup: async () => {
      const errors: unknown[] = [];
      const step = (f: () => Promise<unknown>) => f().catch((err: unknown) => errors.push(err));
      for (const a of running.splice(0)) await step(() => a.stop());
      await step(() => producer.disconnect());
      await step(async () => deleteGroups(admin, (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(groupId))));
      await step(() => admin.deleteTopics({ topics: Object.values(topics) }));
      await step(() => admin.disconnect());
      await step(() => ch.command({ query: `DROP DATABASE IF EXISTS ${database}` }));
      await step(() => ch.close());
      if (errors.length > 0) throw new AggregateError(errors, `cleanup of ${database} failed`);
    },
  };
}

/** Groups of killed processes stay non-empty until their session times out; deletion is retried until then. */
async function deleteGroups(admin: Admin, groups: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  let left = groups;
  while (left.length > 0) {
    const results = await admin.deleteGroups(left).catch((err: { groups?: { groupId: string; errorCode: number }[] }) => err.groups ?? []);
    left = results.filter((r) => r.errorCode !== 0 && r.errorCode !== 69).map((r) => r.groupId);
    if (left.length > 0 && Date.now() > deadline) throw new Error(`could not delete consumer groups ${left.join(', ')}`);
    if (left.length > 0) await new Promise((r) => setTimeout(r, 1000));
  }
}

export async function query<T>(env: TestEnv, sql: string): Promise<T[]> {
  const rs = await env.ch.query({ query: sql, format: 'JSONEachRow', clickhouse_settings: { database: env.database } as Record<string, string> });
  return rs.json<T>();
}

/** Polls a ClickHouse query until `done` holds (the analyzer's output is the readiness signal). */
export async function waitForRows<T>(env: TestEnv, sql: string, done: (rows: T[]) => boolean, timeoutMs = 30_000): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await query<T>(env, sql).catch(() => [] as T[]);
    if (done(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${sql}\nlast result: ${JSON.stringify(rows).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls an in-process condition (a metric, an assignment) that has no event to wait on. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends records the way agents do: grouped by the partition of their connection key, one frame per partition. */
export async function produceTcp(env: TestEnv, records: TcpRecord[]): Promise<void> {
  const byPartition = new Map<number, TcpRecord[]>();
  for (const r of records) {
    const p = connectionPartition(r.local, r.remote, PARTITIONS);
    byPartition.set(p, [...(byPartition.get(p) ?? []), r]);
  }
  await env.producer.send({ topic: env.topics.tcp, messages: [...byPartition].map(([partition, rs]) => ({ partition, value: encodeFrame('tcp', rs) })) });
}

export async function produceDns(env: TestEnv, records: DnsRecord[]): Promise<void> {
  await env.producer.send({ topic: env.topics.dns, messages: [{ partition: 0, value: encodeFrame('dns', records) }] });
}

export async function produceEvents(env: TestEnv, records: TcpEvent[]): Promise<void> {
  await env.producer.send({ topic: env.topics.tcpEvent, messages: [{ partition: 0, value: encodeFrame('tcp_event', records) }] });
}

export async function produceMetadata(env: TestEnv, objects: Metadata[]): Promise<void> {
  await env.producer.send({ topic: env.topics.metadata, messages: objects.map((m) => ({ key: m.uid, value: encodeFrame('metadata', [m]) })) });
}

export interface Peer {
  ip: string;
  port: number;
  node: string;
  netns?: number;
  podUid?: string | null;
  comm?: string;
}

/** A template record from the seeded generator, re-pointed at two peers: the client's view and the server's view of one connection. */
export function connection(
  seed: number,
  client: Peer,
  server: Peer,
  slotStartMs: number,
  opts: { serviceIp?: string } = {},
): { client: TcpRecord; server: TcpRecord } {
  const t = sampleTcpRecords(1, seed, slotStartMs)[0]!;
  const owner = (p: Peer) => ({
    ...t.owner,
    node: p.node,
    netns: p.netns ?? 4026532000 + (p.port % 1000),
    pod_uid: p.podUid === undefined ? null : p.podUid,
    comm: p.comm ?? t.owner.comm,
  });
  const c: TcpRecord = {
    ...t,
    role: 'client',
    owner: owner(client),
    local: { ip: client.ip, port: client.port },
    remote: { ip: server.ip, port: server.port },
    remote_orig: opts.serviceIp ? { ip: opts.serviceIp, port: server.port } : null,
  };
  const s: TcpRecord = {
    ...t,
    role: 'server',
    sock_cookie: t.sock_cookie + 1,
    owner: owner(server),
    local: { ip: server.ip, port: server.port },
    remote: { ip: client.ip, port: client.port },
    remote_orig: null,
    bytes_sent: t.bytes_received,
    bytes_received: t.bytes_sent,
    segs_sent: t.segs_received,
    segs_received: t.segs_sent,
    retrans_segs: Math.floor(t.retrans_segs / 2),
    srtt_us: t.srtt_us + 17,
    rtt_hist: sampleTcpRecords(1, seed + 1000, slotStartMs)[0]!.rtt_hist,
  };
  return { client: c, server: s };
}

export function pod(
  uid: string,
  name: string,
  opts: { namespace?: string; node: string; workload?: string; ip: string; fromMs: number; toMs?: number | null; deletedMs?: number | null },
): Metadata {
  return {
    kind: 'pod',
    uid,
    version: '1',
    observed_ms: opts.fromMs,
    deleted_ms: opts.deletedMs ?? null,
    namespace: opts.namespace ?? 'shop',
    name,
    node: opts.node,
    host_network: false,
    workload_kind: 'Deployment',
    workload_name: opts.workload ?? name.replace(/-[^-]+$/, ''),
    ips: [{ ip: opts.ip, from_ms: opts.fromMs, to_ms: opts.toMs ?? null }],
    labels: {},
  };
}

export function node(name: string, zone: string, ip: string): Metadata {
  return { kind: 'node', uid: `node-${name}`, version: '1', observed_ms: 0, deleted_ms: null, name, zone, region: 'r1', ips: [{ ip, from_ms: 0, to_ms: null }], labels: {} };
}

export interface ChildAnalyzer {
  pid: number;
  /** Resolves when the child announces it stopped between an insert and its offset commit. */
  halted: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `pnpm meshlens analyzer` as a separate process, configured for this environment through its environment. */
export function spawnAnalyzer(env: TestEnv, extra: Record<string, string> = {}): ChildAnalyzer {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'analyzer'], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      MESHLENS_KAFKA_BROKERS: env.conn.kafkaBrokers.join(','),
      MESHLENS_CLICKHOUSE_URL: env.conn.clickhouseUrl,
      MESHLENS_CLICKHOUSE_DATABASE: env.database,
      MESHLENS_ANALYZER_GROUP: env.groupId,
      MESHLENS_ANALYZER_TOPICS: JSON.stringify(env.topics),
      MESHLENS_ANALYZER_HTTP_PORT: '0',
      MESHLENS_ANALYZER_IDLE_FLUSH_MS: '1000',
      MESHLENS_ANALYZER_SESSION_TIMEOUT_MS: '6000',
      MESHLENS_LOG_LEVEL: 'warn',
      ...extra,
    },
  });
  let stderr = '';
  const halted = new Promise<void>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('halted between insert and commit')) resolve();
    });
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      if (code !== 0 && signal === null) process.stderr.write(`analyzer child failed:\n${stderr}\n`);
      resolve({ code, signal });
    }),
  );
  return { pid: child.pid!, halted, exited };
}
