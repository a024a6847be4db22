/**
 * The analyzer's row stage alone: flow rows built from matched pairs (FlowRows.build) and
 * encoded into a tcp_flows batch (RowBatch.add, RowBinary) in one process, no Kafka, no insert.
 * The records are the analyzer bench's (its generator, decoded by `ingest`), the column types
 * ClickHouse's own for a freshly migrated database (dropped after). Prints ns per row, median
 * of PASSES passes of ROUNDS x 2,000 rows, and a hash of one batch's bytes: a change meant
 * to encode the same rows must print the same hash as the code before it.
 *   node --import tsx bench/flow-rows.bench.ts [rounds=50] [passes=9]
 * Needs the embedded ClickHouse up (`pnpm meshlens infra up`).
 */
import { createHash, randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { encodeFrame, type TcpRecord } from '@meshlens/schemas';
import { clickhouseClient, migrate } from '@meshlens/schemas/clickhouse';
import { ClickHouseSink, createMetrics, DnsNames, Enricher, FlowRows, ingest, MetadataIndex, type FlowGroup, type HeldSide } from '@meshlens/analyzer';
import { connection } from '../analyzer/test/harness.js';

const [rounds = 50, passes = 9] = process.argv.slice(2).map(Number);
const PAIRS = 2000;
/** A fixed slot, so that the rows, and the hash, are the same in every run. */
const SLOT = Date.UTC(2026, 10, 20, 12);

const conn = connectionsFor(localInfraConfig());
const target = { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database: `meshlens_bench_${randomUUID().replaceAll('-', '')}` };
await migrate(target);
const ch = clickhouseClient(target);
try {
  const sink = new ClickHouseSink(ch, createMetrics(), pino({ level: 'silent' }), { minMs: 100, maxMs: 1000 });
  await sink.load();
  const records: TcpRecord[] = [];
  for (let n = 0; n < PAIRS; n++) {
    const c = connection(n, { ip: `10.1.${(n >> 8) & 255}.${n & 255}`, port: 30000 + n, node: `node-${n % 12}` }, { ip: `10.200.0.${n % 50}`, port: 8080, node: 'node-x' }, SLOT);
    records.push(c.client, c.server);
  }
  const held = ingest('tcp', encodeFrame('tcp', records)).records as HeldSide[];
  const groups: FlowGroup[] = [];
  for (let i = 0; i < held.length; i += 2) groups.push({ key: i, slotStartMs: SLOT, slotMs: 10_000, client: held[i]!, server: held[i + 1]!, late: false, capFlushed: false });
  const flows = new FlowRows(new Enricher(new MetadataIndex(), new DnsNames()));

  /** One pass: every group built and added `rounds` times, a batch per round; returns ns per row and the last batch's bytes. */
  const pass = (): { ns: number; bytes: Buffer } => {
    let bytes = Buffer.alloc(0);
    const t0 = performance.now();
    for (let k = 0; k < rounds; k++) {
      const batch = sink.batch('tcp_flows');
      for (const g of groups) {
        flows.build(g);
        batch.add(flows.row);
      }
      if (k === rounds - 1) bytes = Buffer.concat(batch.out.chunks());
      batch.out.release();
    }
    return { ns: ((performance.now() - t0) * 1e6) / (rounds * groups.length), bytes };
  };
  const runs = Array.from({ length: passes }, pass);
  const ns = runs.map((r) => r.ns).sort((a, b) => a - b);
  console.log(
    `flow rows built + encoded: median ${ns[Math.floor(ns.length / 2)]!.toFixed(0)} ns/row [${runs.map((r) => r.ns.toFixed(0)).join(' ')}], ` +
      `${(runs[0]!.bytes.length / groups.length).toFixed(0)} bytes/row, sha1 ${createHash('sha1').update(runs[0]!.bytes).digest('hex').slice(0, 12)}`,
  );
} finally {
  await ch.command({ query: `DROP DATABASE IF EXISTS ${target.database}` });
  await ch.close();
}
