/**
 * The collector's Prometheus metrics, on a registry of its own so that several collectors
 * in one process (tests) never share counters.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class CollectorMetrics {
  readonly registry = new Registry();
  readonly lists = new Counter({
    name: 'meshlens_collector_lists_total',
    help: 'Full LIST requests per resource; after the first, each one means a watch could not be resumed (410 Gone)',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });
  readonly watches = new Counter({
    name: 'meshlens_collector_watches_total',
    help: 'Watch requests opened per resource (resumes included)',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });
  readonly watchEvents = new Counter({
    name: 'meshlens_collector_watch_events_total',
    help: 'Watch events received, by resource and event type',
    labelNames: ['resource', 'type'] as const,
    registers: [this.registry],
  });
  readonly sourceErrors = new Counter({
    name: 'meshlens_collector_source_errors_total',
    help: 'Failed list/watch attempts against the Kubernetes API or failed inventory loads',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });
  readonly invalidRecords = new Counter({
    name: 'meshlens_collector_invalid_records_total',
    help: 'Metadata records dropped because they failed schema validation',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly published = new Counter({
    name: 'meshlens_collector_published_total',
    help: 'Entries acknowledged by a sink: records, and tombstones (Kafka only)',
    labelNames: ['sink', 'entry'] as const,
    registers: [this.registry],
  });
  readonly pending = new Gauge({
    name: 'meshlens_collector_pending',
    help: 'Entries waiting for a sink (coalesced per object)',
    labelNames: ['sink'] as const,
    registers: [this.registry],
  });
  readonly sinkErrors = new Counter({
    name: 'meshlens_collector_sink_errors_total',
    help: 'Failed deliveries per sink; each is retried with backoff',
    labelNames: ['sink'] as const,
    registers: [this.registry],
  });
  readonly objects = new Gauge({
    name: 'meshlens_collector_objects',
    help: 'Live objects per metadata kind as last published',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'meshlens_collector_' });
  }
}
