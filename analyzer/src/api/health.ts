/**
 * One aggregate shape for every TCP answer: the SQL that sums a group of rollup (or raw) rows,
 * and the numbers people read from it. Percentiles come from the summed sparse histograms
 * with the schemas' histogramQuantile, so any level of aggregation is exact to one bucket.
 */
import { z } from 'zod';
import { histogramCount, histogramQuantile, mergeHistograms, type SparseHistogram } from '@meshlens/schemas';

/** Sums over flows_by_*_1m rows. RTT only over path = 'network': a sidecar talking to its app is not the network. */
export const ROLLUP_AGGREGATES = `
  sum(flows) AS flows, sum(opened) AS opened, sum(bytes_c2s) AS bytes_c2s, sum(bytes_s2c) AS bytes_s2c,
  sum(segs_c2s + segs_s2c) AS segments, sum(client_retrans + server_retrans) AS retransmits, sum(resets) AS resets,
  sum(connect_failures) AS connect_failures, sum(syn_timeouts) AS syn_timeouts,
  sumMapIf(client_rtt, path = 'network') AS client_rtt, sumMapIf(server_rtt, path = 'network') AS server_rtt`;

/** The same sums over raw tcp_flows rows (pod pairs exist only there); connect failures are not per pod pair. */
export const RAW_AGGREGATES = `
  count() AS flows, countIf(opened) AS opened, sum(bytes_c2s) AS bytes_c2s, sum(bytes_s2c) AS bytes_s2c,
  sum(segs_c2s + segs_s2c) AS segments, sum(client_retrans + server_retrans) AS retransmits,
  sum(resets_by_client + resets_by_server) AS resets, toUInt64(0) AS connect_failures, toUInt64(0) AS syn_timeouts,
  sumMapIf((client_rtt_buckets, arrayMap(c -> toUInt64(c), client_rtt_counts)), path = 'network') AS client_rtt,
  sumMapIf((server_rtt_buckets, arrayMap(c -> toUInt64(c), server_rtt_counts)), path = 'network') AS server_rtt`;

export interface Agg {
  flows: number;
  opened: number;
  bytes_c2s: number;
  bytes_s2c: number;
  segments: number;
  retransmits: number;
  resets: number;
  connect_failures: number;
  syn_timeouts: number;
  client_rtt: SparseHistogram;
  server_rtt: SparseHistogram;
}

export type AggRow = Omit<Agg, 'client_rtt' | 'server_rtt'> & { client_rtt: [number[], number[]]; server_rtt: [number[], number[]] };

const COUNTERS = ['flows', 'opened', 'bytes_c2s', 'bytes_s2c', 'segments', 'retransmits', 'resets', 'connect_failures', 'syn_timeouts'] as const;

export function aggOf(row: AggRow): Agg {
  const out = { client_rtt: { idx: row.client_rtt[0], cnt: row.client_rtt[1] }, server_rtt: { idx: row.server_rtt[0], cnt: row.server_rtt[1] } } as Agg;
  for (const k of COUNTERS) out[k] = Number(row[k]);
  return out;
}

/** The sum of `aggs`, which are not modified; one agg is returned as is (a long series would otherwise copy every cell's histograms through a dense array). */
export function addAggs(aggs: Agg[]): Agg {
  if (aggs.length === 1) return aggs[0]!;
  const out = { client_rtt: mergeHistograms(...aggs.map((a) => a.client_rtt)), server_rtt: mergeHistograms(...aggs.map((a) => a.server_rtt)) } as Agg;
  for (const k of COUNTERS) out[k] = aggs.reduce((s, a) => s + a[k], 0);
  return out;
}

/** The client's view of RTT when it was instrumented, else the server's: adding both would count one connection twice. */
export function rttOf(a: Agg): SparseHistogram {
  return histogramCount(a.client_rtt) > 0 ? a.client_rtt : a.server_rtt;
}

const ms = (us: number | null) => (us === null ? null : us / 1000);
const ratio = (n: number, d: number) => (d > 0 ? n / d : null);

export function rttQuantileMs(a: Agg, q: number): number | null {
  return ms(histogramQuantile(rttOf(a), q));
}

/**
 * Connection attempts that failed or needed their SYN resent, over all attempts. A SYN
 * timeout is a connection that did open (late): it is among `opened`, not an attempt more.
 */
export function failureRate(a: Agg): number | null {
  return ratio(a.connect_failures + a.syn_timeouts, a.connect_failures + a.opened);
}

export function retransmitRate(a: Agg): number | null {
  return ratio(a.retransmits, a.segments);
}

const nullableNumber = z.number().nullable();
/** The health numbers of any group of TCP traffic; also the OpenAPI description of them. */
export const healthSchema = z.object({
  flows: z.number().describe('connection-slots seen'),
  bytes_sent: z.number().describe('client -> server bytes'),
  bytes_received: z.number().describe('server -> client bytes'),
  rtt_samples: z.number(),
  rtt_p10_ms: nullableNumber,
  rtt_p50_ms: nullableNumber,
  rtt_p99_ms: nullableNumber,
  retransmits: z.number(),
  retransmit_rate: nullableNumber.describe('retransmitted / all segments'),
  resets: z.number(),
  connections_opened: z.number(),
  connect_failures: z.number(),
  syn_timeouts: z.number(),
  failure_rate: nullableNumber.describe('(connect failures + SYN timeouts) / (connect failures + opened): attempts that failed or needed their SYN resent; a SYN timeout is a connection that opened late'),
});

export type Health = z.infer<typeof healthSchema>;

/** bytes_sent is client -> server of the pair as queried. */
export function healthOf(a: Agg): Health {
  return {
    flows: a.flows,
    bytes_sent: a.bytes_c2s,
    bytes_received: a.bytes_s2c,
    rtt_samples: histogramCount(rttOf(a)),
    rtt_p10_ms: rttQuantileMs(a, 0.1),
    rtt_p50_ms: rttQuantileMs(a, 0.5),
    rtt_p99_ms: rttQuantileMs(a, 0.99),
    retransmits: a.retransmits,
    retransmit_rate: retransmitRate(a),
    resets: a.resets,
    connections_opened: a.opened,
    connect_failures: a.connect_failures,
    syn_timeouts: a.syn_timeouts,
    failure_rate: failureRate(a),
  };
}
