// The collector against a Kubernetes API test server that speaks the real list/watch
// protocol, with real Kafka and ClickHouse: the initial picture, then pods relabelled,
// moved, deleted, finished and an IP handed to another pod; an API outage resumed from
// the last resourceVersion; and a 410 Gone that forces a relist without a duplicate flood.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Metadata } from '@meshlens/schemas';
import { ipOwnerAt, keyOf, type Collector } from '../src/index.js';
import { TestInfra } from './support/infra.js';
import { KubeApiServer, type RequestRecord } from './support/kube-api-server.js';
import { endpointSlice, job, node, pod, refTo, replicaSet, service, withLabels } from './support/objects.js';
import { metric, settle, startKubeCollector } from './support/collector.js';

/** The issue asks for 30 s; MESHLENS_TEST_APISERVER_OUTAGE_MS shortens it for quick local runs. */
const OUTAGE_MS = Number(process.env.MESHLENS_TEST_APISERVER_OUTAGE_MS ?? 30_000);

type Pod = Extract<Metadata, { kind: 'pod' }>;
const podKey = (p: { metadata: { uid: string } }): string => keyOf({ kind: 'pod', uid: p.metadata.uid });
const nodeKey = (n: { metadata: { uid: string } }): string => keyOf({ kind: 'node', uid: n.metadata.uid });

describe('collector: Kubernetes list/watch -> compacted topic + dimension tables', { timeout: OUTAGE_MS * 2 + 180_000 }, () => {
  const infra = new TestInfra();
  const api = new KubeApiServer();
  let collector: Collector;

  const nodeA = node('node-a1', '192.168.0.1', { 'topology.kubernetes.io/zone': 'zone-a', 'topology.kubernetes.io/region': 'region-1' });
  const nodeB = node('node-b1', '192.168.0.2', {
    'failure-domain.beta.kubernetes.io/zone': 'zone-b',
    'failure-domain.beta.kubernetes.io/region': 'region-1',
  });
  const nodeX = node('node-x1', '192.168.0.3');
  const rs = replicaSet('shop', 'web-5d8f7', 'web');
  const backupJob = job('ops', 'backup-28890', 'backup');
  const statefulSet = { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: randomUUID() };
  const web = (name: string, nodeName: string, ip: string, startMs?: number) =>
    pod('shop', name, { node: nodeName, ip, labels: { app: 'web', version: 'v1' }, owner: refTo(rs, 'apps/v1', 'ReplicaSet'), startMs });
  const web1 = web('web-5d8f7-abcde', 'node-a1', '10.244.1.5');
  const web2 = web('web-5d8f7-fghij', 'node-b1', '10.244.1.6');
  const db0 = pod('shop', 'db-0', { node: 'node-a1', ip: '10.244.1.7', labels: { app: 'db' }, owner: statefulSet });
  const agent = pod('kube-system', 'agent-q2x9z', {
    node: 'node-x1',
    ip: '192.168.0.3',
    hostNetwork: true,
    owner: { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: randomUUID() },
  });
  const backup = pod('ops', 'backup-28890-k4m2n', { node: 'node-b1', ip: '10.244.1.8', owner: refTo(backupJob, 'batch/v1', 'Job') });
  const svc = service('shop', 'web', '10.96.0.10', { app: 'web' });
  const member = (p: typeof web1) => ({ ip: p.status.podIP, podUid: p.metadata.uid, podName: p.metadata.name, node: p.spec.nodeName });
  const slice = endpointSlice('shop', 'web', [member(web1), member(web2)]);

  before(async () => {
    for (const n of [nodeA, nodeB, nodeX]) api.create('nodes', n);
    api.create('replicasets', rs);
    api.create('jobs', backupJob);
    for (const p of [web1, web2, db0, agent, backup]) api.create('pods', p);
    api.create('services', svc);
    api.create('endpointslices', slice);
    collector = await startKubeCollector(infra, api);
  });

  after(async () => {
    await collector?.stop();
    await api.stop();
    await infra.cleanup();
  });

  it('publishes every object once, with zones, owner chains and host networking resolved', async () => {
    const messages = await infra.messages();
    const latest = new Map(messages.map((m) => [m.key, m.value]));
    assert.equal(messages.length, 10, 'three nodes, five pods, a service and an endpoint slice, each once');
    assert.equal(latest.size, 10);
    assert.equal(await infra.topicConfig('cleanup.policy'), 'compact');

    const zoneOf = (n: typeof nodeA) => {
      const r = latest.get(nodeKey(n)) as Extract<Metadata, { kind: 'node' }>;
      return [r.zone, r.region];
    };
    assert.deepEqual(zoneOf(nodeA), ['zone-a', 'region-1']);
    assert.deepEqual(zoneOf(nodeB), ['zone-b', 'region-1'], 'legacy failure-domain labels');
    assert.deepEqual(zoneOf(nodeX), [null, null], 'a node without zone labels');

    const workload = (p: typeof web1) => {
      const r = latest.get(podKey(p)) as Pod;
      return `${r.workload_kind}/${r.workload_name}`;
    };
    assert.equal(workload(web1), 'Deployment/web');
    assert.equal(workload(db0), 'StatefulSet/db');
    assert.equal(workload(agent), 'DaemonSet/agent');
    assert.equal(workload(backup), 'CronJob/backup');
    assert.equal((latest.get(podKey(agent)) as Pod).host_network, true);

    const ep = latest.get(keyOf({ kind: 'endpoint', uid: slice.metadata.uid })) as Extract<Metadata, { kind: 'endpoint' }>;
    assert.equal(ep.service, 'web');
    assert.deepEqual(ep.addresses.map((a) => [a.ip, a.pod_uid]), [
      ['10.244.1.5', web1.metadata.uid],
      ['10.244.1.6', web2.metadata.uid],
    ]);

    const lists = api.requests.filter((r) => !r.watch);
    assert.ok(lists.some((r) => r.resource === 'pods' && r.continued), 'the pod list was paginated');
    const watches = api.requests.filter((r) => r.watch);
    assert.equal(new Set(watches.map((r) => r.resource)).size, 6);
    assert.ok(watches.every((r) => r.allowWatchBookmarks && r.resourceVersion !== null));

    const health = await fetch(`${collector.httpUrl}/healthz`);
    assert.equal(health.status, 200);
    const metrics = await (await fetch(`${collector.httpUrl}/metrics`)).text();
    assert.match(metrics, /meshlens_collector_published_total\{sink="kafka",entry="record"\} 10/);
  });

  let hadIp6: number;
  let noOwnerIp6: number;

  it('follows relabels, moves, deletions, finished pods and an IP reused by another pod', async () => {
    hadIp6 = Date.now();
    api.update('pods', web1.metadata.uid, (p: typeof web1) => withLabels(p, { version: 'v2' }));
    // A status-only change (probe time) alters nothing the collector publishes.
    api.update('pods', web1.metadata.uid, (p: typeof web1) => ({ ...p, status: { ...p.status, conditions: [{ type: 'Ready', status: 'True', lastProbeTime: new Date().toISOString() }] } }));
    // A StatefulSet pod "moves": deleted on one node, recreated under the same name (new UID) on another.
    api.delete('pods', db0.metadata.uid);
    const db0moved = pod('shop', 'db-0', { node: 'node-b1', ip: '10.244.2.7', labels: { app: 'db' }, owner: statefulSet });
    api.create('pods', db0moved);
    api.update('pods', backup.metadata.uid, (p: typeof backup) => ({ ...p, status: { ...p.status, phase: 'Succeeded' } }));
    api.delete('pods', web2.metadata.uid);
    await settle(api, collector);
    noOwnerIp6 = Date.now();
    // A watched pod's IP is bound from the millisecond the collector sees it: on a fast machine
    // that can be this very millisecond, so the new pod comes once the clock has moved on.
    while (Date.now() <= noOwnerIp6) await new Promise((r) => setTimeout(r, 1));
    // The IP of the deleted pod goes to a new pod, as the CNI's IPAM does.
    const web3 = web('web-5d8f7-klmno', 'node-a1', '10.244.1.6', noOwnerIp6 + 1);
    api.create('pods', web3);
    api.update('endpointslices', slice.metadata.uid, () => endpointSlice('shop', 'web', [member(web1), member(web3)]));
    await settle(api, collector);

    const messages = await infra.messages();
    const latest = new Map(messages.map((m) => [m.key, m.value]));
    assert.equal(messages.filter((m) => m.key === podKey(web1)).length, 2, 'initial + relabel; the status-only change published nothing');
    assert.equal((latest.get(podKey(web1)) as Pod).labels.version, 'v2');

    for (const gone of [db0, web2]) {
      assert.equal(latest.get(podKey(gone)), null, 'a deleted pod ends in a tombstone');
      const [finalRecord, tombstone] = messages.filter((m) => m.key === podKey(gone)).slice(-2);
      const last = finalRecord!.value as Pod;
      assert.equal(tombstone!.value, null);
      assert.ok(last.deleted_ms !== null && last.ips.every((b) => b.to_ms === last.deleted_ms), 'the final record closes its IP');
    }
    const moved = latest.get(podKey(db0moved)) as Pod;
    assert.equal(moved.node, 'node-b1');
    assert.equal(moved.workload_name, 'db');
    const finished = latest.get(podKey(backup)) as Pod;
    assert.ok(finished.ips[0]!.to_ms !== null, 'a finished pod no longer holds its IP');
    assert.equal(latest.get(podKey(web3)) === null, false);

    const objects = await infra.rows<{ name: string; uid: string; zone: string; deleted: number }>(
      `SELECT name, uid, zone, deleted_at IS NOT NULL AS deleted FROM metadata_objects FINAL WHERE kind = 'pod' ORDER BY name, deleted`,
    );
    assert.deepEqual(
      objects.map((o) => [o.name, o.zone, Number(o.deleted)]),
      [
        ['agent-q2x9z', '', 0],
        ['backup-28890-k4m2n', 'zone-b', 0],
        ['db-0', 'zone-b', 0],
        ['db-0', 'zone-a', 1],
        ['web-5d8f7-abcde', 'zone-a', 0],
        ['web-5d8f7-fghij', 'zone-b', 1],
        ['web-5d8f7-klmno', 'zone-a', 0],
      ],
    );
    const agentBindings = await infra.rows(`SELECT ip FROM ip_bindings FINAL WHERE uid = '${agent.metadata.uid}'`);
    assert.deepEqual(agentBindings, [], 'a host-network pod leaves its IP to the node');

    const owner = async (ip: string, at: number, kinds?: string[]) => (await ipOwnerAt(infra.ch, ip, at, kinds))?.uid ?? null;
    assert.equal(await owner('10.244.1.6', hadIp6), web2.metadata.uid, 'in the past the IP was the deleted pod');
    assert.equal(await owner('10.244.1.6', noOwnerIp6), null, 'between the two pods nobody had it');
    assert.equal(await owner('10.244.1.6', Date.now()), web3.metadata.uid, 'now it is the new pod');
    assert.equal(await owner('10.244.1.7', hadIp6), db0.metadata.uid);
    assert.equal(await owner('10.244.1.8', hadIp6), backup.metadata.uid);
    assert.equal(await owner('10.244.1.8', Date.now()), null);
    assert.equal(await owner('192.168.0.3', Date.now(), ['node']), nodeX.metadata.uid);
  });

  it(`rides out an API server outage of ${OUTAGE_MS} ms and resumes from its resourceVersion, publishing only what changed`, async (t) => {
    const before = await infra.messages();
    const resumeFrom = api.resourceVersion;
    const failuresBefore = await metric(collector, 'meshlens_collector_source_errors_total');
    await api.stop();
    // Changes while the collector cannot see them: one relabel, one deletion, one new pod.
    api.update('pods', web1.metadata.uid, (p: typeof web1) => withLabels(p, { version: 'v3' }));
    api.delete('pods', backup.metadata.uid);
    const late = pod('shop', 'late-1', { node: 'node-x1', ip: '10.244.3.3', labels: { app: 'late' } });
    api.create('pods', late);
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
    const attempts = (await metric(collector, 'meshlens_collector_source_errors_total')) - failuresBefore;
    assert.ok(attempts >= 6, 'it kept trying every watch');

    const seen = api.requests.length;
    const resumed = new Promise<RequestRecord[]>((resolve) => {
      const watches = new Map<string, RequestRecord>();
      const onRequest = (r: RequestRecord) => {
        if (r.watch) watches.set(r.resource, r);
        if (watches.size < 6) return;
        api.off('request', onRequest);
        resolve([...watches.values()]);
      };
      api.on('request', onRequest);
    });
    const restartedAt = performance.now();
    await api.start();
    const watches = await resumed;
    const resumedMs = performance.now() - restartedAt;
    await settle(api, collector);
    t.diagnostic(`${attempts} failed watch attempts in ${OUTAGE_MS} ms; all 6 watches resumed ${resumedMs.toFixed(0)} ms after the server returned`);

    // The bookmark before the outage moved every watch to the same resourceVersion, even
    // those (jobs, replicasets) whose own last event is far older.
    assert.deepEqual(watches.map((w) => w.resourceVersion), Array(6).fill(resumeFrom));
    assert.deepEqual(api.requests.slice(seen).filter((r) => !r.watch), [], 'no LIST after the outage');
    const all = await infra.messages();
    const republished = all.slice(before.length);
    const live = [...new Map(all.map((m) => [m.key, m.value])).values()].filter((v) => v !== null).length;
    t.diagnostic(`${republished.length} messages after the outage; the topic describes ${live} live objects`);
    assert.deepEqual(
      republished.map((m) => [m.key, m.value === null ? 'tombstone' : 'record']),
      [
        [podKey(web1), 'record'],
        [podKey(backup), 'record'],
        [podKey(backup), 'tombstone'],
        [podKey(late), 'record'],
      ],
    );
  });

  it('relists after 410 Gone, finds the deletion it missed, and republishes nothing else', async () => {
    const before = await infra.messages();
    const lists = api.requests.filter((r) => !r.watch && !r.continued).length;
    const late = [...(await infra.latest()).values()].find((v) => v?.kind === 'pod' && v.name === 'late-1')!;
    await api.stop();
    api.delete('pods', late.uid);
    api.compact();
    await api.start();
    await settle(api, collector);

    assert.equal(api.requests.filter((r) => !r.watch && !r.continued).length - lists, 6, 'one fresh LIST per resource');
    const republished = (await infra.messages()).slice(before.length);
    assert.deepEqual(
      republished.map((m) => [m.key, m.value === null ? 'tombstone' : (m.value.deleted_ms !== null ? 'deleted' : 'record')]),
      [
        [keyOf(late), 'deleted'],
        [keyOf(late), 'tombstone'],
      ],
    );
  });
});
