// Kafka is not there when the collector starts: it keeps watching, ClickHouse gets every
// change, Kafka's entries are coalesced per object while they wait, and once the broker
// port answers the topic receives the final state (deletions as record + tombstone).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Metadata } from '@meshlens/schemas';
import { keyOf, type Collector, type KubernetesSource } from '../src/index.js';
import { TestInfra } from './support/infra.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { node, pod, withLabels, type PodObject } from './support/objects.js';
import { metric, testCollector } from './support/collector.js';
import { TcpProxy, freePort } from '@meshlens/e2e/tcp-proxy';

const podKey = (p: { metadata: { uid: string } }): string => keyOf({ kind: 'pod', uid: p.metadata.uid });

describe('collector: Kafka unavailable', () => {
  const infra = new TestInfra();
  const api = new KubeApiServer();
  let proxy: TcpProxy;
  let collector: Collector;

  const n1 = node('node-a1', '192.168.0.1', { 'topology.kubernetes.io/zone': 'zone-a' });
  const [a, b, c] = ['api-0', 'api-1', 'api-2'].map((name, i) => pod('shop', name, { node: 'node-a1', ip: `10.244.0.${i + 10}`, labels: { app: 'api', rev: 'v1' } }));

  before(async () => {
    const [host, port] = infra.conn.kafkaBrokers[0]!.split(':');
    proxy = new TcpProxy({ host: host!, port: Number(port) }, await freePort());
    await api.start();
    api.create('nodes', n1);
    for (const p of [a!, b!, c!]) api.create('pods', p);
    collector = testCollector(infra, { kind: 'kubernetes', kubeConfig: api.kubeConfig() }, { kafka: { brokers: [`127.0.0.1:${proxy.port}`], topic: infra.topic } });
  });

  after(async () => {
    await collector?.stop();
    await proxy.stop();
    await api.stop();
    await infra.cleanup();
  });

  it('keeps watching without Kafka and delivers the final state when the broker comes', async (t) => {
    await collector.start();
    const kafka = collector.delivery('kafka');
    await new Promise<void>((resolve) => {
      let failures = 0;
      kafka.on('failure', () => ++failures === 2 && resolve());
    });

    api.update('pods', a!.metadata.uid, (p: PodObject) => withLabels(p, { rev: 'v2' }));
    api.update('pods', a!.metadata.uid, (p: PodObject) => withLabels(p, { rev: 'v3' }));
    api.delete('pods', b!.metadata.uid);
    const d = pod('shop', 'api-3', { node: 'node-a1', ip: '10.244.0.13', labels: { app: 'api', rev: 'v3' } });
    api.create('pods', d);
    await (collector.source as KubernetesSource).reached(api.bookmark());
    await collector.delivery('clickhouse').whenIdle();

    assert.equal(kafka.idle, false, 'Kafka entries are still waiting');
    const health = await (await fetch(`${collector.httpUrl}/healthz`)).json();
    assert.deepEqual(health, { ok: true, source: 'kubernetes', synced: true, stopping: false, sinks: { kafka: { idle: false }, clickhouse: { idle: true } } });
    const inClickHouse = await infra.rows<{ name: string; rev: string; deleted: number }>(
      `SELECT name, labels['rev'] AS rev, deleted_at IS NOT NULL AS deleted FROM metadata_objects FINAL WHERE kind = 'pod' ORDER BY name`,
    );
    assert.deepEqual(inClickHouse.map((r) => [r.name, r.rev, Number(r.deleted)]), [
      ['api-0', 'v3', 0],
      ['api-1', 'v1', 1],
      ['api-2', 'v1', 0],
      ['api-3', 'v3', 0],
    ]);

    const brokerAt = performance.now();
    await proxy.start();
    await collector.whenIdle();
    t.diagnostic(`final state in Kafka ${(performance.now() - brokerAt).toFixed(0)} ms after the broker port opened`);
    const messages = await infra.messages();
    const kind = (v: Metadata | null) => (v === null ? 'tombstone' : v.deleted_ms !== null ? 'deleted' : 'record');
    assert.deepEqual(
      messages.map((m) => [m.key, kind(m.value)]),
      [
        [keyOf({ kind: 'node', uid: n1.metadata.uid }), 'record'],
        [podKey(a!), 'record'],
        [podKey(b!), 'deleted'],
        [podKey(b!), 'tombstone'],
        [podKey(c!), 'record'],
        [podKey(d), 'record'],
      ],
      'one entry per object (the two relabels coalesced), the deletion as record + tombstone',
    );
    assert.equal((messages[1]!.value as Extract<Metadata, { kind: 'pod' }>).labels.rev, 'v3');
    assert.equal(await metric(collector, 'meshlens_collector_published_total', { sink: 'kafka' }), messages.length);
  });
});
