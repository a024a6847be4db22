/**
 * Everything the analyzer counts, in one registry per instance so that two analyzers in one
 * test process never share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    records: new Counter({ name: 'meshlens_analyzer_records_total', help: 'valid records decoded', labelNames: ['topic'], registers: [registry] }),
    deadLettered: new Counter({
      name: 'meshlens_analyzer_dead_letters_total',
      help: 'frames and records sent to the dead-letter topic',
      labelNames: ['kind', 'reason'],
      registers: [registry],
    }),
    flows: new Counter({
      name: 'meshlens_analyzer_flows_total',
      help: 'flow rows emitted, by which ends were observed and whether late',
      labelNames: ['observed', 'late'],
      registers: [registry],
    }),
    unmatched: new Counter({
      name: 'meshlens_analyzer_unmatched_total',
      help: 'one-sided flow rows by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    rowsInserted: new Counter({ name: 'meshlens_analyzer_rows_inserted_total', help: 'rows acknowledged by ClickHouse', labelNames: ['table'], registers: [registry] }),
    insertSeconds: new Histogram({
      name: 'meshlens_analyzer_insert_seconds',
      help: 'ClickHouse insert latency (acknowledged inserts)',
      labelNames: ['table'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    insertFailures: new Counter({ name: 'meshlens_analyzer_insert_failures_total', help: 'failed insert attempts (retried)', labelNames: ['table'], registers: [registry] }),
    paused: new Gauge({ name: 'meshlens_analyzer_paused_partitions', help: 'partitions paused waiting for ClickHouse', registers: [registry] }),
    capFlushedRecords: new Counter({
      name: 'meshlens_analyzer_memory_cap_flushed_records_total',
      help: 'held records released before their grace period ended because a partition reached maxHeldRecords',
      registers: [registry],
    }),
    dnsNamesEvicted: new Counter({
      name: 'meshlens_analyzer_dns_names_evicted_total',
      help: 'IPs whose learnt DNS names were dropped, least recently used first, to stay within maxDnsNames',
      registers: [registry],
    }),
    held: new Gauge({ name: 'meshlens_analyzer_held_records', help: 'records waiting for their other side', labelNames: ['partition'], registers: [registry] }),
    lag: new Gauge({ name: 'meshlens_analyzer_lag_messages', help: 'high watermark minus last processed offset', labelNames: ['topic', 'partition'], registers: [registry] }),
    committed: new Counter({ name: 'meshlens_analyzer_commits_total', help: 'offset commits after acknowledged inserts', labelNames: ['topic'], registers: [registry] }),
    consumerCrashes: new Counter({ name: 'meshlens_analyzer_consumer_crashes_total', help: 'consumer group crashes (kafkajs restarts it when it can)', registers: [registry] }),
    metadataRecords: new Counter({ name: 'meshlens_analyzer_metadata_records_total', help: 'metadata and DNS-answer records applied to the enrichment index', labelNames: ['topic'], registers: [registry] }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
