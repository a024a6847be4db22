// Every namespace's sockets, each tagged with its namespace and its process's cgroup; and a
// socket that was open before the probes attached, measured from then on.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openProbes, type Probes } from '@meshlens/bpf';
import { createLab, type Lab } from '@meshlens/e2e/netlab';
import { requireRoot } from '../../netlab/test/helpers.js';
import { cgroupIdOf, Peer, socketAt, startServer, TestCgroups } from './helpers.js';

const HOSTS = ['a', 'b', 'c'];

describe('namespaces, cgroups and sockets open before attach', () => {
  let lab: Lab;
  let probes: Probes;
  let cgroups: TestCgroups;
  let held: { server: Peer; client: Peer; port: number; localPort: number; sentBefore: number };
  before(async () => {
    requireRoot();
    lab = await createLab({ prefix: 'prns', hosts: HOSTS.map((name) => ({ name })) });
    cgroups = new TestCgroups('prns');
    // A connection made and used before the probes exist.
    const { server, port } = await startServer(lab.host('b'), lab.host('b').ip4, 0);
    const client = Peer.start(lab.host('a'), ['hold', lab.host('b').ip4, String(port)]);
    const { localPort } = await client.next<{ localPort: number }>('connected');
    client.send('send 5000');
    const { total } = await client.next<{ total: number }>('sent');
    held = { server, client, port, localPort, sentBefore: total };
    probes = openProbes();
  });
  after(async () => {
    probes?.close();
    // destroy() kills every process still in the lab's namespaces, the peers in test cgroups too.
    await lab?.destroy();
    cgroups?.remove();
  });

  test('a connection open before attach is adopted and its later bytes are counted', async () => {
    const a = lab.host('a');
    const adopted = await socketAt(probes, a.netnsInode(), held.localPort);
    assert.deepEqual(
      { preexisting: adopted.preexisting, role: adopted.role, remote: adopted.remote, bytesSent: adopted.bytesSent },
      { preexisting: true, role: 'client', remote: { ip: lab.host('b').ip4, port: held.port }, bytesSent: held.sentBefore },
    );
    const samplesAtAttach = adopted.rttSamples;
    held.client.send('send 300000');
    const { total } = await held.client.next<{ total: number }>('sent');
    held.client.send('end');
    const done = await held.client.next('done');
    const served = await held.server.next('served');
    assert.deepEqual([total, done.sent, served.received], [held.sentBefore + 300_000, total, total]);
    const closed = await socketAt(probes, a.netnsInode(), held.localPort, (s) => s.closed);
    assert.equal(closed.cookie, adopted.cookie);
    assert.equal(closed.bytesSent - adopted.bytesSent, 300_000, 'bytes sent after attach');
    assert.ok(closed.rttSamples > samplesAtAttach, 'RTT samples after attach');
    const serverSide = await socketAt(probes, lab.host('b').netnsInode(), held.port, (s) => s.closed && s.remote.port === held.localPort);
    assert.deepEqual([serverSide.preexisting, serverSide.role, serverSide.bytesReceived], [true, 'server', total]);
    await held.server.stop();
  });

  test('sockets in every namespace carry that namespace and their process cgroup', async (t) => {
    const inodes = new Set<number>();
    const ids = new Set<number>();
    for (const [i, name] of HOSTS.entries()) {
      const host = lab.host(name);
      const peer = lab.host(HOSTS[(i + 1) % HOSTS.length]!);
      const server = Peer.start(host, ['server', host.ip6, '777'], { cgroup: cgroups.make(`${name}-server`) });
      const { port } = await server.next<{ port: number }>('listening');
      const serverCgroup = cgroupIdOf(server.pid);
      // The client lives in the next host's namespace, so each namespace holds one end of two connections.
      const client = Peer.start(peer, ['client', host.ip6, String(port), '1234'], { cgroup: cgroups.make(`${name}-client`) });
      const { localPort } = await client.next<{ localPort: number }>('connected');
      const clientCgroup = cgroupIdOf(client.pid);
      await client.next('done');
      await server.next('served');
      await server.stop();

      const s = await socketAt(probes, host.netnsInode(), port, (x) => x.closed && x.remote.port === localPort);
      const c = await socketAt(probes, peer.netnsInode(), localPort, (x) => x.closed);
      t.diagnostic(`${name}: server netns ${s.owner.netns} cgroup ${s.owner.cgroupId}; ${peer.name}: client netns ${c.owner.netns} cgroup ${c.owner.cgroupId}`);
      assert.deepEqual(
        { netns: s.owner.netns, cgroupId: s.owner.cgroupId, pid: s.owner.pid, role: s.role, received: s.bytesReceived },
        { netns: host.netnsInode(), cgroupId: serverCgroup, pid: server.pid, role: 'server', received: 1234 },
      );
      assert.deepEqual(
        { netns: c.owner.netns, cgroupId: c.owner.cgroupId, pid: c.owner.pid, role: c.role, sent: c.bytesSent },
        { netns: peer.netnsInode(), cgroupId: clientCgroup, pid: client.pid, role: 'client', sent: 1234 },
      );
      inodes.add(host.netnsInode());
      ids.add(serverCgroup).add(clientCgroup);
    }
    assert.equal(inodes.size, HOSTS.length, 'each host is its own namespace');
    assert.equal(ids.size, 2 * HOSTS.length, 'each peer ran in its own cgroup');
  });
});
