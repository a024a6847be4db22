// Retransmitted segments: the probes' per-socket total_retrans, summed over the sockets of a
// namespace, against the kernel's own TcpRetransSegs counter (nstat) in that namespace.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openProbes, type Probes } from '@meshlens/bpf';
import { createLab, type Host, type Lab } from '@meshlens/e2e/netlab';
import { nstat, requireRoot } from '../../netlab/test/helpers.js';
import { Peer, socketAt, startServer } from './helpers.js';

// Big enough for over a hundred retransmissions at 2% loss, so "within 2%" is a real bound
// and not just "exactly equal".
const TRANSFER_BYTES = 12_000_000;
const REPLY_BYTES = 200_000;

describe('retransmitted segments vs nstat TcpRetransSegs', () => {
  let lab: Lab;
  let probes: Probes;
  before(async () => {
    requireRoot();
    lab = await createLab({ prefix: 'prretx', hosts: [{ name: 'c' }, { name: 's' }] });
    probes = openProbes();
  });
  after(async () => {
    probes?.close();
    await lab?.destroy();
  });

  /** Each socket's retransSegs in `netns` now, by cookie. */
  const retransIn = (netns: number) => new Map(probes.readSocketStats().filter((s) => s.owner.netns === netns).map((s) => [s.cookie, s.retransSegs]));

  for (const loss of [0.02, 0.05]) {
    test(`${loss * 100}% loss each way: per-namespace sums equal the nstat deltas within 2%`, async (t) => {
      const [c, s] = [lab.host('c'), lab.host('s')];
      await lab.setLoss('c', 's', loss);
      const hosts: Host[] = [c, s];
      const baseline = hosts.map((h) => retransIn(h.netnsInode()));
      const nstatBefore = await Promise.all(hosts.map((h) => nstat(h, 'TcpRetransSegs')));

      const { server, port } = await startServer(s, s.ip4, REPLY_BYTES);
      const client = Peer.start(c, ['client', s.ip4, String(port), String(TRANSFER_BYTES)]);
      const { localPort } = await client.next<{ localPort: number }>('connected');
      const done = await client.next('done', 120_000);
      assert.deepEqual([done.sent, done.received], [TRANSFER_BYTES, REPLY_BYTES]);
      // Both ends closed (the server's FIN may need retransmitting after the client is done):
      // from here on neither namespace retransmits anything.
      await socketAt(probes, c.netnsInode(), localPort, (x) => x.closed);
      await socketAt(probes, s.netnsInode(), port, (x) => x.closed && x.remote.port === localPort, 30_000);
      await server.stop();
      await lab.setLoss('c', 's', 0);

      const nstatAfter = await Promise.all(hosts.map((h) => nstat(h, 'TcpRetransSegs')));
      for (const [i, h] of hosts.entries()) {
        const kernel = nstatAfter[i]!.TcpRetransSegs! - nstatBefore[i]!.TcpRetransSegs!;
        let probed = 0;
        for (const [cookie, n] of retransIn(h.netnsInode())) probed += n - (baseline[i]!.get(cookie) ?? 0);
        t.diagnostic(`${h.name}: probes ${probed}, nstat ${kernel}`);
        assert.ok(Math.abs(probed - kernel) <= 0.02 * kernel, `${h.name}: probes ${probed} vs nstat ${kernel}`);
      }
    });
  }
});
