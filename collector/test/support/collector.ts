import { pino } from 'pino';
import { Collector, type CollectorConfig, type KubernetesSource } from '../../src/index.js';
import type { KubeApiServer } from './kube-api-server.js';
import type { TestInfra } from './infra.js';

/** Quiet unless a test fails loudly; MESHLENS_TEST_LOG=debug shows everything. */
export const testLogger = pino({ level: process.env.MESHLENS_TEST_LOG ?? 'error' });

export function testCollector(infra: TestInfra, source: CollectorConfig['source'], extra: Partial<CollectorConfig> = {}): Collector {
  return new Collector({
    source,
    kafka: { brokers: infra.brokers, topic: infra.topic },
    clickhouse: { ...infra.clickhouse, database: infra.database },
    http: { host: '127.0.0.1', port: 0 },
    retry: { initialMs: 50, maxMs: 500 },
    // Small pages so every list is paginated with continue tokens.
    kube: { pageSize: 2 },
    logger: testLogger,
    ...extra,
  });
}

/**
 * Where the Kubernetes tests begin: `api` serving what the test created in it, and a
 * collector watching it, started and settled. The port is only known once `api` listens.
 */
export async function startKubeCollector(infra: TestInfra, api: KubeApiServer, extra: Partial<CollectorConfig> = {}): Promise<Collector> {
  await api.start();
  const collector = testCollector(infra, { kind: 'kubernetes', kubeConfig: api.kubeConfig() }, extra);
  await collector.start();
  await settle(api, collector);
  return collector;
}

/**
 * Readiness without sleeping: the server bookmarks its current resourceVersion on every
 * watch, again whenever a watch (re)connects, as a real apiserver's periodic bookmarks
 * would reach it. Once each watch has reached it, everything before it was handed to the
 * publisher, and whenIdle() then waits until Kafka and ClickHouse acknowledged it.
 */
export async function settle(server: KubeApiServer, collector: Collector): Promise<void> {
  const resend = (): void => void server.bookmark();
  server.on('watching', resend);
  try {
    await (collector.source as KubernetesSource).reached(server.bookmark());
  } finally {
    server.off('watching', resend);
  }
  await collector.whenIdle();
}

export async function metric(collector: Collector, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await collector.metrics.registry.getSingleMetric(name)?.get();
  return (m?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}
