/**
 * Analyzer throughput, Kafka -> decode -> match -> enrich -> ClickHouse, against a
 * pass-through pipeline built from the same modules (decode -> enrich -> insert, one row per
 * record, no matching) in the same process run, interleaved, median of RUNS runs each.
 * Reports records/s (wall clock from the first decoded record to the last acknowledged row),
 * records per CPU-second of this process (ClickHouse and Kafka run in their own processes),
 * and bytes per stored flow row on disk, as the pipeline left the table and merged to one part
 * (the first depends on how the inserts fell into parts, the second only on the rows), and
 * per run a checksum of the stored rows: a change meant to store the same rows must print
 * the same checksums as the code before it. PROFILE=<file> writes CPU profiles of the
 * analyzer's measured phase (runs 2..RUNS).
 *   pnpm --filter @meshlens/bench analyzer   (or: node --import tsx bench/analyzer.bench.ts)
 * Needs the embedded infrastructure up (`pnpm meshlens infra up`).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { cpus, totalmem } from 'node:os';
import { pino } from 'pino';
import { DnsNames, Enricher, MetadataIndex, ClickHouseSink, createMetrics, FlowRows, ingest } from '@meshlens/analyzer';
import { encodeFrame, type TcpRecord } from '@meshlens/schemas';
import { SLOT_MS, T0, PARTITIONS, connection, createEnv, query, waitForRows, type TestEnv } from '../analyzer/test/harness.js';

const RUNS = Number(process.env.RUNS ?? 3);
/**
 * 200k connections, 400k records, ~1.5 CPU-seconds a run: a sustained rate. At the earlier
 * default of 50k a run was ~0.5 CPU-seconds, in which its fixed costs (the consumer group's
 * join and first fetches, the idle flush, polling for the last row) and any one-off pause
 * weighed enough to move the same code's figure by up to 2x between runs (bench/RESULTS.md).
 */
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 200_000);
const SLOTS = 4;
const FRAME_RECORDS = 2000;

interface Result {
  recordsPerSec: number;
  recordsPerCpuSec: number;
  /** As the pipeline left the table: how many parts that is depends on how inserts fell. */
  bytesPerRow: number;
  parts: number;
  /** After OPTIMIZE FINAL: one part, the same for the same rows however they were inserted. */
  mergedBytesPerRow: number;
  /** Order-independent hash of every stored row, slot times relative to T0: equal for equal rows across runs and code versions (of one schema). */
  checksum: string;
}

/** Both ends of CONNECTIONS connections over SLOTS slots, framed per partition as agents send them. */
async function produce(env: TestEnv): Promise<number> {
  const perSlot = Math.ceil(CONNECTIONS / SLOTS);
  let records = 0;
  for (let s = 0; s < SLOTS; s++) {
    const byPartition = new Map<number, TcpRecord[]>();
    for (let i = 0; i < perSlot; i++) {
      const n = s * perSlot + i;
      const c = connection(n, { ip: `10.${1 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`, port: 30000 + (n % 30000), node: `node-${n % 12}` }, { ip: `10.200.0.${n % 50}`, port: 8080, node: 'node-x' }, T0 + s * SLOT_MS);
      const p = n % PARTITIONS;
      const list = byPartition.get(p) ?? [];
      list.push(c.client, c.server);
      byPartition.set(p, list);
      records += 2;
    }
    const messages = [...byPartition].flatMap(([partition, rs]) => {
      const out = [];
      for (let i = 0; i < rs.length; i += FRAME_RECORDS) out.push({ partition, value: encodeFrame('tcp', rs.slice(i, i + FRAME_RECORDS)) });
      return out;
    });
    // A request per 10 frames keeps each partition's batch under the broker's 1 MB limit at any CONNECTIONS.
    for (let i = 0; i < messages.length; i += 10) await env.producer.send({ topic: env.topics.tcp, messages: messages.slice(i, i + 10) });
  }
  return records;
}

async function storage(env: TestEnv): Promise<{ bytesPerRow: number; parts: number }> {
  const [r] = await query<{ b: number; n: number; p: number }>(env, `SELECT sum(bytes_on_disk) AS b, sum(rows) AS n, count() AS p FROM system.parts WHERE database = '${env.database}' AND table = 'tcp_flows' AND active`);
  return { bytesPerRow: Number(r!.b) / Number(r!.n), parts: Number(r!.p) };
}

async function checksum(env: TestEnv): Promise<string> {
  const [r] = await query<{ h: string }>(
    env,
    `SELECT toString(sum(cityHash64(toUnixTimestamp64Milli(slot_start) - ${T0}, tuple(* EXCEPT (slot_start))))) AS h FROM tcp_flows`,
  );
  return r!.h;
}

async function merged(env: TestEnv): Promise<number> {
  await env.ch.command({ query: `OPTIMIZE TABLE ${env.database}.tcp_flows FINAL` });
  return (await storage(env)).bytesPerRow;
}

async function measure(env: TestEnv, expectedRows: number, records: number, firstRecord: () => number | null): Promise<Result> {
  const cpu0 = process.cpuUsage();
  await waitForRows<{ n: string }>(env, 'SELECT toString(count()) AS n FROM tcp_flows', (r) => Number(r[0]?.n ?? 0) >= expectedRows, 600_000);
  const done = performance.now();
  const cpu = process.cpuUsage(cpu0);
  const seconds = (done - firstRecord()!) / 1000;
  const asInserted = await storage(env);
  return { recordsPerSec: records / seconds, recordsPerCpuSec: records / ((cpu.user + cpu.system) / 1e6), ...asInserted, mergedBytesPerRow: await merged(env), checksum: await checksum(env) };
}

/** PROFILE=<file>.cpuprofile: a CPU profile of the analyzer's measured phase, in the runs after the first (cold JIT). */
async function profiled<T>(run: number, f: () => Promise<T>): Promise<T> {
  const file = process.env.PROFILE;
  if (!file || run === 0) return f();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await f();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file.replace(/(\.cpuprofile)?$/, `.${run}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

async function runAnalyzer(run: number): Promise<Result> {
  const env = await createEnv();
  try {
    const records = await produce(env);
    const analyzer = await env.start({ idleFlushMs: 200, logLevel: 'silent' });
    let first: number | null = null;
    const probe = setInterval(() => {
      void analyzer.metrics.records.get().then((m) => {
        if (first === null && m.values.some((v) => v.value > 0)) first = performance.now();
      });
    }, 5);
    try {
      return await profiled(run, () => measure(env, CONNECTIONS, records, () => first));
    } finally {
      clearInterval(probe);
    }
  } finally {
    await env.cleanup();
  }
}

/** decode -> enrich -> insert, one row per record; offsets committed after the insert, as in the analyzer. */
async function runPassThrough(): Promise<Result> {
  const env = await createEnv();
  try {
    const records = await produce(env);
    const { migrate, clickhouseClient } = await import('@meshlens/schemas/clickhouse');
    const target = { url: env.conn.clickhouseUrl, username: env.conn.clickhouseUser, password: env.conn.clickhousePassword, database: env.database };
    await migrate(target);
    const ch = clickhouseClient(target);
    const sink = new ClickHouseSink(ch, createMetrics(), pino({ level: 'silent' }), { minMs: 100, maxMs: 1000 });
    await sink.load();
    const flows = new FlowRows(new Enricher(new MetadataIndex(), new DnsNames()));
    const consumer = env.kafka.consumer({ groupId: `${env.groupId}.passthrough` });
    let first: number | null = null;
    await consumer.connect();
    await consumer.subscribe({ topic: env.topics.tcp, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 4,
      eachBatch: async ({ batch, heartbeat }) => {
        first ??= performance.now();
        const rows = sink.batch('tcp_flows');
        for (const m of batch.messages) {
          // ingest gives each tcp record as the matcher would hold it: the pass-through uses it as is.
          for (const r of ingest('tcp', m.value).records) {
            flows.build({ key: '', slotStartMs: r.slot_start_ms, slotMs: r.slot_ms, client: r.role === 'client' ? r : null, server: r.role === 'server' ? r : null, late: false, capFlushed: false });
            rows.add(flows.row);
          }
        }
        await sink.insert(rows, `${batch.topic}/${batch.partition}/${batch.firstOffset()}-${batch.lastOffset()}`, { beforeRetry: heartbeat, onStall: () => {} });
        await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(Number(batch.lastOffset()) + 1) }]);
      },
    });
    try {
      return await measure(env, records, records, () => first);
    } finally {
      await consumer.disconnect();
      await ch.close();
    }
  } finally {
    await env.cleanup();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const results = { analyzer: [] as Result[], passThrough: [] as Result[] };
for (let run = 0; run < RUNS; run++) {
  results.analyzer.push(await runAnalyzer(run));
  results.passThrough.push(await runPassThrough());
  process.stderr.write(`run ${run + 1}/${RUNS}: ${JSON.stringify({ analyzer: results.analyzer.at(-1), passThrough: results.passThrough.at(-1) })}\n`);
}
const summary = (rs: Result[]) => ({
  recordsPerSec: Math.round(median(rs.map((r) => r.recordsPerSec))),
  recordsPerCpuSec: Math.round(median(rs.map((r) => r.recordsPerCpuSec))),
  bytesPerRow: Number(median(rs.map((r) => r.bytesPerRow)).toFixed(1)),
  mergedBytesPerRow: Number(median(rs.map((r) => r.mergedBytesPerRow)).toFixed(1)),
});
const a = summary(results.analyzer);
const p = summary(results.passThrough);
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
console.log(`${CONNECTIONS} connections x 2 ends (${CONNECTIONS * 2} records), ${SLOTS} slots, frames of ${FRAME_RECORDS}, ${PARTITIONS} partitions, median of ${RUNS}`);
console.log('| pipeline | records/s (wall) | records per CPU-second | bytes per stored flow row | merged to one part |');
console.log('|---|---:|---:|---:|---:|');
console.log(`| analyzer: decode+match+enrich+insert | ${a.recordsPerSec} | ${a.recordsPerCpuSec} | ${a.bytesPerRow} | ${a.mergedBytesPerRow} |`);
console.log(`| pass-through: decode+enrich+insert | ${p.recordsPerSec} | ${p.recordsPerCpuSec} | ${p.bytesPerRow} | ${p.mergedBytesPerRow} |`);
console.log(`analyzer / pass-through (per CPU-second): ${(a.recordsPerCpuSec / p.recordsPerCpuSec).toFixed(2)}`);
