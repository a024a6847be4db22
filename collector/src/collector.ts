/**
 * One collector: a source (Kubernetes or inventory), the publisher that drops no-op
 * versions, and one delivery per sink (Kafka, ClickHouse), plus the HTTP endpoint.
 * Sinks start before the source so nothing waits on a sink to be reachable.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { Topics, type KafkaSecurity, type Metadata } from '@meshlens/schemas';
import type { ClickHouseTarget } from '@meshlens/schemas/clickhouse';
import { pino, type Logger } from 'pino';
import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import type { MetadataSource } from './change.js';
import { Delivery } from './delivery.js';
import { serveHealthAndMetrics, type Health, type HttpEndpoint } from '@meshlens/schemas/health-http';
import { InventorySource } from './inventory/source.js';
import { KubernetesSource } from './kube/source.js';
import { CollectorMetrics } from './metrics.js';
import { Publisher } from './publisher.js';
import { ClickHouseSink } from './sinks/clickhouse.js';
import { KafkaSink } from './sinks/kafka.js';

export type SourceConfig = { kind: 'kubernetes'; kubeConfig: KubeConfig } | { kind: 'inventory'; file: string };

export interface CollectorConfig {
  source: SourceConfig;
  kafka: { brokers: string[]; topic?: string; partitions?: number; clientId?: string; security?: KafkaSecurity };
  /** database defaults to 'meshlens'. */
  clickhouse: Omit<ClickHouseTarget, 'database'> & { database?: string };
  /** Where /metrics and /healthz listen; null for none. */
  http?: { host: string; port: number } | null;
  retry?: BackoffOptions;
  kube?: { pageSize?: number; watchTimeoutSeconds?: number };
  /** How long stop() waits for pending entries to reach the sinks. */
  shutdownGraceMs?: number;
  logger?: Logger;
  clock?: () => number;
  /** How long start() may spend reading the metadata topic to retire stale objects. */
  reconcileTimeoutMs?: number;
}

export const DEFAULT_DATABASE = 'meshlens';
export const DEFAULT_TOPIC = Topics.metadata;

export class Collector {
  readonly metrics = new CollectorMetrics();
  readonly source: MetadataSource;
  private readonly deliveries: Delivery[];
  private readonly publisher: Publisher;
  private readonly log: Logger;
  private http: HttpEndpoint | undefined;
  private stopping = false;
  private readonly kafka: KafkaSink;
  private readonly clock: () => number;

  constructor(private readonly config: CollectorConfig) {
    this.log = config.logger ?? pino({ name: 'meshlens-collector' });
    const retry = config.retry ?? DEFAULT_BACKOFF;
    const clock = (this.clock = config.clock ?? Date.now);
    const kafka = (this.kafka = new KafkaSink(
      {
        brokers: config.kafka.brokers,
        topic: config.kafka.topic ?? DEFAULT_TOPIC,
        partitions: config.kafka.partitions ?? 1,
        clientId: config.kafka.clientId ?? 'meshlens-collector',
        security: config.kafka.security,
      },
      this.log.child({ sink: 'kafka' }),
    ));
    const clickhouse = new ClickHouseSink({ ...config.clickhouse, database: config.clickhouse.database ?? DEFAULT_DATABASE }, this.log.child({ sink: 'clickhouse' }));
    this.deliveries = [kafka, clickhouse].map((s) => new Delivery(s, retry, this.metrics, this.log.child({ sink: s.name })));
    this.publisher = new Publisher(this.deliveries, this.metrics, this.log);
    const src = config.source;
    this.source =
      src.kind === 'kubernetes'
        ? new KubernetesSource(
            {
              kubeConfig: src.kubeConfig,
              clock,
              pageSize: config.kube?.pageSize ?? 500,
              watchTimeoutSeconds: config.kube?.watchTimeoutSeconds ?? 300,
              backoff: retry,
            },
            this.metrics,
            this.log,
          )
        : new InventorySource(src.file, clock, this.metrics, this.log.child({ source: 'inventory' }));
  }

  /** Resolves once the source delivered its first complete picture (not when the sinks got it). */
  async start(): Promise<void> {
    for (const d of this.deliveries) d.start();
    if (this.config.http) this.http = await serveHealthAndMetrics(this.config.http.host, this.config.http.port, this.metrics.registry, () => this.health());
    const previous = await this.previouslyPublished();
    await this.source.start(this.publisher.apply);
    const retired = previous ? this.publisher.retire(previous, this.clock()) : 0;
    this.log.info({ source: this.config.source.kind, http: this.http?.url, retired, reconciled: previous !== null }, 'collector synced');
  }

  /**
   * The metadata topic's live objects before this run, or null when Kafka cannot tell within
   * the start-up budget: then nothing is retired (a stale object is better than a live one
   * wrongly deleted), and the next start tries again.
   */
  private async previouslyPublished(): Promise<Map<string, Metadata> | null> {
    const budgetMs = this.config.reconcileTimeoutMs ?? 15_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.kafka.published(),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${budgetMs} ms`)), budgetMs))),
      ]);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not read the metadata topic; objects deleted while no collector ran stay until the next start');
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  get httpUrl(): string | undefined {
    return this.http?.url;
  }

  /** The delivery into one sink ('kafka' or 'clickhouse'), to watch its progress. */
  delivery(sink: 'kafka' | 'clickhouse'): Delivery {
    const d = this.deliveries.find((x) => x.sink.name === sink);
    if (d === undefined) throw new Error(`no sink ${sink}`);
    return d;
  }

  /** Resolves when every sink has acknowledged everything published so far. */
  async whenIdle(): Promise<void> {
    while (!this.deliveries.every((d) => d.idle)) await Promise.all(this.deliveries.map((d) => d.whenIdle()));
  }

  /**
   * Liveness, not "everything upstream answers": the collector rides out Kafka, ClickHouse and
   * API outages, so it is unhealthy only until its source produced a complete picture once,
   * and while shutting down; the body says what is pending where.
   */
  health(): Health {
    return {
      ok: this.source.synced && !this.stopping,
      source: this.config.source.kind,
      synced: this.source.synced,
      stopping: this.stopping,
      sinks: Object.fromEntries(this.deliveries.map((d) => [d.sink.name, { idle: d.idle }])),
    };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.source.stop();
    const grace = this.config.shutdownGraceMs ?? 10_000;
    await Promise.all(this.deliveries.map((d) => d.stop(grace)));
    await this.http?.close();
    this.log.info('collector stopped');
  }
}

/** --kubeconfig <file>, or the usual default chain: $KUBECONFIG, ~/.kube/config, in-cluster. */
export function kubeConfigFrom(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}
