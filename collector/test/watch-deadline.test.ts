// A watch whose connection dies silently (no FIN, no more bytes, the server's timeout never
// arrives) is given up after twice its timeoutSeconds and resumed from its resourceVersion,
// so the change made meanwhile still arrives, without a LIST.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { keyOf, type Collector } from '../src/index.js';
import { TestInfra } from './support/infra.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { node, pod, withLabels, type PodObject } from './support/objects.js';
import { metric, settle, startKubeCollector } from './support/collector.js';

describe('collector: silently dead watch connections', () => {
  const infra = new TestInfra();
  const api = new KubeApiServer();
  let collector: Collector;
  const web = pod('shop', 'web-0', { node: 'node-a1', ip: '10.244.0.10', labels: { app: 'web', rev: 'v1' } });

  before(async () => {
    api.create('nodes', node('node-a1', '192.168.0.1'));
    api.create('pods', web);
    collector = await startKubeCollector(infra, api, { kube: { pageSize: 2, watchTimeoutSeconds: 1 } });
  });

  after(async () => {
    await collector?.stop();
    await api.stop();
    await infra.cleanup();
  });

  it('replaces a watch that went silent and picks up what it missed', async () => {
    const lists = api.requests.filter((r) => !r.watch).length;
    const errors = await metric(collector, 'meshlens_collector_source_errors_total');
    api.freezeWatches();
    const frozenAt = Date.now();
    api.update('pods', web.metadata.uid, (p: PodObject) => withLabels(p, { rev: 'v2' }));
    const rewatched = new Promise<void>((resolve) => api.once('request', () => resolve()));
    await rewatched;
    const waited = Date.now() - frozenAt;
    await settle(api, collector);

    // Twice the 1 s timeout from when the watch opened, plus at most one 500 ms backoff.
    assert.ok(waited <= 2_500, `a silent watch was replaced after ${waited} ms`);
    assert.ok((await metric(collector, 'meshlens_collector_source_errors_total')) > errors, 'it was given up as dead, not ended by the server');
    assert.equal(api.requests.filter((r) => !r.watch).length, lists, 'resumed, not relisted');
    const latest = await infra.latest();
    const record = latest.get(keyOf({ kind: 'pod', uid: web.metadata.uid }));
    assert.equal(record?.kind === 'pod' && record.labels.rev, 'v2');
  });
});
