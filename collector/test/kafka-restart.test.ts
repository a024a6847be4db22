// Kafka goes away while the collector runs (its own broker, stopped and started again by
// PID, so the shared one is never touched): changes made meanwhile reach ClickHouse at once
// and Kafka once the broker is back, and the compacted topic ends in the final state.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localInfraConfig, startKafka, stopProcess } from '@meshlens/deploy/local';
import type { Metadata } from '@meshlens/schemas';
import { keyOf, type Collector, type KubernetesSource } from '../src/index.js';
import { startKubeCollector } from './support/collector.js';
import { TestInfra } from './support/infra.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { node, pod, withLabels, type PodObject } from './support/objects.js';

const stateDir = mkdtempSync(join(tmpdir(), 'meshlens-collector-kafka-'));
const cfg = localInfraConfig({ ...process.env, MESHLENS_STATE_DIR: stateDir, MESHLENS_KAFKA_PORT: '25392', MESHLENS_KAFKA_CONTROLLER_PORT: '25393' });
const podKey = (p: { metadata: { uid: string } }): string => keyOf({ kind: 'pod', uid: p.metadata.uid });

describe('collector: Kafka goes away mid-run', () => {
  const infra = new TestInfra([`127.0.0.1:${cfg.kafkaPort}`]);
  const api = new KubeApiServer();
  let collector: Collector;
  let brokerPid = 0;
  const n1 = node('node-b1', '192.168.1.1', { 'topology.kubernetes.io/zone': 'zone-b' });
  const [a, b] = ['web-0', 'web-1'].map((name, i) => pod('shop', name, { node: 'node-b1', ip: `10.244.1.${i + 10}`, labels: { app: 'web', rev: 'v1' } }));

  before(async () => {
    brokerPid = (await startKafka(cfg)).pid;
    api.create('nodes', n1);
    for (const p of [a!, b!]) api.create('pods', p);
    collector = await startKubeCollector(infra, api);
  });

  after(async () => {
    await collector?.stop();
    await api.stop();
    if (!brokerPid) brokerPid = (await startKafka(cfg)).pid; // the topic lives there; cleanup deletes it
    await infra.cleanup();
    await stopProcess(brokerPid);
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('keeps the changes made while the broker was down and delivers the final state', async () => {
    assert.equal((await infra.latest()).size, 3, 'node and two pods published before the outage');

    await stopProcess(brokerPid);
    brokerPid = 0;
    const kafka = collector.delivery('kafka');
    const failed = once(kafka, 'failure');
    api.update('pods', a!.metadata.uid, (p: PodObject) => withLabels(p, { rev: 'v2' }));
    api.delete('pods', b!.metadata.uid);
    const c = pod('shop', 'web-2', { node: 'node-b1', ip: '10.244.1.12', labels: { app: 'web', rev: 'v2' } });
    api.create('pods', c);
    await (collector.source as KubernetesSource).reached(api.bookmark());
    await collector.delivery('clickhouse').whenIdle();
    await failed;
    assert.equal(kafka.idle, false, 'the changes wait for Kafka');

    brokerPid = (await startKafka(cfg)).pid;
    await collector.whenIdle();
    const latest = await infra.latest();
    const rev = (v: Metadata | null | undefined) => (v && v.kind === 'pod' ? v.labels.rev : v);
    assert.equal(rev(latest.get(podKey(a!))), 'v2');
    assert.equal(latest.get(podKey(b!)), null, 'the deletion ends in a tombstone');
    assert.equal(rev(latest.get(podKey(c))), 'v2');
    assert.equal(latest.get(keyOf({ kind: 'node', uid: n1.metadata.uid }))?.kind, 'node');
  });
});
