// Connect failures and resets: one event per failed attempt, with the class the kernel's
// error implies, the endpoints the client really used and the SYN retransmissions the
// kernel counted; resets seen from both ends.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openProbes, type ProbeEvent, type Probes, type TcpEvent } from '@meshlens/bpf';
import { createLab, type Host, type Lab } from '@meshlens/e2e/netlab';
import { nstat, requireRoot } from '../../netlab/test/helpers.js';
import { Peer, recorder, socketAt, startServer } from './helpers.js';

const ATTEMPTS = 4;
const BLACKHOLED_PORT = 8081;
// Nothing listens anywhere in a fresh namespace.
const REFUSED_PORT = 8082;
const MARKER_PORT = 8083;
const UNREACHABLE_PORT = 80;
const PORT_RANGE = [40_000, 40_001] as const;
const EADDRNOTAVAIL = 99;

const isTcp = (e: ProbeEvent): e is TcpEvent => e.type === 'tcp';

interface Attempts {
  outcomes: { localPort: number; outcome: string }[];
}

/** `n` connects at once from `host` to ip:port, from local ports firstLocalPort.. (the ground truth). */
async function attempt(host: Host, ip: string, port: number, firstLocalPort: number, n: number): Promise<Attempts['outcomes']> {
  const peer = Peer.start(host, ['attempts', ip, String(port), String(firstLocalPort), String(n)]);
  const { outcomes } = await peer.next<Attempts>('attempts', 60_000);
  return outcomes;
}

describe('connect failures and resets', () => {
  let lab: Lab;
  let probes: Probes;
  before(async () => {
    requireRoot();
    // c gives up on unanswered SYNs after one retransmission (~3 s) so timeouts stay quick; u
    // keeps the default, so the ICMP error from the router's failed neighbour lookup (~3 s)
    // always arrives before its connects could time out.
    lab = await createLab({ prefix: 'prfail', hosts: [{ name: 'c' }, { name: 'u' }, { name: 's' }, { name: 'p' }] });
    await lab.host('c').exec('sysctl', ['-qw', 'net.ipv4.tcp_syn_retries=1']);
    // p has two local ports to connect from (IPv4 and IPv6 share the range).
    await lab.host('p').exec('sysctl', ['-qw', `net.ipv4.ip_local_port_range=${PORT_RANGE.join(' ')}`]);
    await lab.blackhole('s', BLACKHOLED_PORT);
    probes = openProbes();
  });
  after(async () => {
    probes?.close();
    await lab?.destroy();
  });

  for (const family of [4, 6] as const) {
    test(`IPv${family}: blackholed, refused and unreachable connects are one event per attempt with class and endpoints`, async (t) => {
      const [c, u, s] = [lab.host('c'), lab.host('u'), lab.host('s')];
      const ip = (h: Host) => (family === 4 ? h.ip4 : h.ip6);
      const unreachable = lab.unreachableAddress('s')[family === 4 ? 'ip4' : 'ip6'];
      const base = family === 4 ? 41_000 : 42_000;
      const cases = [
        { what: 'blackholed', from: c, ip: ip(s), port: BLACKHOLED_PORT, local: base, outcome: 'ETIMEDOUT', cls: 'timeout', errno: 110 },
        { what: 'refused', from: c, ip: ip(s), port: REFUSED_PORT, local: base + 100, outcome: 'ECONNREFUSED', cls: 'refused', errno: 111 },
        { what: 'unreachable', from: u, ip: unreachable, port: UNREACHABLE_PORT, local: base + 200, outcome: 'EHOSTUNREACH', cls: 'unreachable', errno: 113 },
      ] as const;
      const ev = recorder(probes);
      const nstatBefore = await Promise.all([c, u].map((h) => nstat(h, 'TcpRetransSegs')));
      const results = await Promise.all(cases.map((k) => attempt(k.from, k.ip, k.port, k.local, ATTEMPTS)));
      // Markers: the ring buffer is ordered, so once a later failure from the same host has
      // arrived, any duplicate event for the attempts above would have arrived too.
      const markerLocal = base + 300;
      for (const [i, h] of [c, u].entries()) {
        assert.deepEqual(await attempt(h, ip(s), MARKER_PORT, markerLocal + i, 1), [{ localPort: markerLocal + i, outcome: 'ECONNREFUSED' }]);
      }
      const failure = (e: ProbeEvent): e is TcpEvent => isTcp(e) && e.kind === 'connect_failed';
      await ev.until('both markers', (e): e is TcpEvent => failure(e) && e.remote.port === MARKER_PORT && e.local.port >= markerLocal && e.local.port <= markerLocal + 1, 2);
      ev.stop();
      const nstatAfter = await Promise.all([c, u].map((h) => nstat(h, 'TcpRetransSegs')));

      for (const [i, k] of cases.entries()) {
        const outcomes = results[i]!;
        assert.deepEqual(
          outcomes.map((o) => o.outcome),
          Array<string>(ATTEMPTS).fill(k.outcome),
          `${k.what}: what the client saw`,
        );
        const netns = k.from.netnsInode();
        const events = ev.seen.filter((e): e is TcpEvent => failure(e) && e.owner.netns === netns && e.remote.ip === k.ip && e.remote.port === k.port);
        t.diagnostic(`${k.what}: ${outcomes.length} attempts, ${events.length} events: ${events.map((e) => `${e.local.port}/${e.errnoClass}/${e.errno}/syn-rtx ${e.synRetrans}`).join(' ')}`);
        assert.deepEqual(
          events.map((e) => ({ family: e.family, local: e.local, remote: e.remote, cls: e.errnoClass, errno: e.errno, role: e.role })).sort((a, b) => a.local.port - b.local.port),
          outcomes.map((o) => ({ family, local: { ip: ip(k.from), port: o.localPort }, remote: { ip: k.ip, port: k.port }, cls: k.cls, errno: k.errno, role: 'client' })),
          `${k.what}: one event per attempt`,
        );
      }
      // The only segments these hosts retransmitted were the SYNs of the failed connects.
      for (const [i, h] of [c, u].entries()) {
        const synRetrans = ev.seen.filter((e): e is TcpEvent => failure(e) && e.owner.netns === h.netnsInode()).reduce((n, e) => n + e.synRetrans, 0);
        const kernel = nstatAfter[i]!.TcpRetransSegs! - nstatBefore[i]!.TcpRetransSegs!;
        t.diagnostic(`${h.name}: SYN retransmissions ${synRetrans}, nstat TcpRetransSegs ${kernel}`);
        assert.equal(synRetrans, kernel, `${h.name}: SYN retransmissions vs nstat`);
      }
    });

    test(`IPv${family}: a connect that finds no free local port is one event, with the connecting process`, async () => {
      const [p, s] = [lab.host('p'), lab.host('s')];
      const serverIp = family === 4 ? s.ip4 : s.ip6;
      const { server, port } = await startServer(s, serverIp, 0);
      // Two connections to one server take both local ports there are for it.
      const holders = [Peer.start(p, ['hold', serverIp, String(port)]), Peer.start(p, ['hold', serverIp, String(port)])];
      try {
        const used = await Promise.all(holders.map(async (h) => (await h.next<{ localPort: number }>('connected')).localPort));
        assert.deepEqual(used.sort(), [...PORT_RANGE], 'the holders have the whole range');
        const ev = recorder(probes);
        const third = Peer.start(p, ['client', serverIp, String(port), '10']);
        assert.equal((await third.next('error')).code, 'EADDRNOTAVAIL', 'what the client saw');
        // A refused connect from the same host after it: the ring buffer is ordered.
        const markerLocal = 43_000 + family; // bound explicitly: outside the range, free
        assert.deepEqual(await attempt(p, serverIp, REFUSED_PORT, markerLocal, 1), [{ localPort: markerLocal, outcome: 'ECONNREFUSED' }]);
        const failure = (e: ProbeEvent): e is TcpEvent => isTcp(e) && e.kind === 'connect_failed' && e.owner.netns === p.netnsInode();
        await ev.until('the marker', (e): e is TcpEvent => failure(e) && e.remote.port === REFUSED_PORT);
        ev.stop();
        const events = ev.seen.filter((e): e is TcpEvent => failure(e) && e.remote.port === port);
        assert.deepEqual(
          events.map((e) => ({ family: e.family, remote: e.remote, localPort: e.local.port, errno: e.errno, cls: e.errnoClass, role: e.role, pid: e.owner.pid, synRetrans: e.synRetrans })),
          [{ family, remote: { ip: serverIp, port }, localPort: 0, errno: EADDRNOTAVAIL, cls: 'other', role: 'client', pid: third.pid, synRetrans: 0 }],
        );
      } finally {
        for (const h of holders) h.child.kill();
        await server.stop();
      }
    });

    test(`IPv${family}: a server that aborts its connection is seen as a reset on both sides`, async () => {
      const [c, s] = [lab.host('c'), lab.host('s')];
      const serverIp = family === 4 ? s.ip4 : s.ip6;
      const clientIp = family === 4 ? c.ip4 : c.ip6;
      const ev = recorder(probes);
      const { server, port } = await startServer(s, serverIp, 0, true);
      const client = Peer.start(c, ['client', serverIp, String(port), '1000']);
      const { localPort } = await client.next<{ localPort: number }>('connected');
      assert.equal((await client.next('error')).code, 'ECONNRESET');
      assert.equal((await server.next('aborted')).remotePort, localPort);
      await server.stop();

      const serverEnd = { ip: serverIp, port };
      const clientEnd = { ip: clientIp, port: localPort };
      const sent = await ev.until('reset_sent', (e): e is TcpEvent => isTcp(e) && e.kind === 'reset_sent' && e.owner.netns === s.netnsInode() && e.remote.port === localPort);
      const got = await ev.until('reset_received', (e): e is TcpEvent => isTcp(e) && e.kind === 'reset_received' && e.owner.netns === c.netnsInode() && e.local.port === localPort);
      ev.stop();
      assert.deepEqual(
        sent.map((e) => ({ role: e.role, local: e.local, remote: e.remote })),
        [{ role: 'server', local: serverEnd, remote: clientEnd }],
      );
      assert.deepEqual(
        got.map((e) => ({ role: e.role, local: e.local, remote: e.remote })),
        [{ role: 'client', local: clientEnd, remote: serverEnd }],
      );
      const serverSock = await socketAt(probes, s.netnsInode(), port, (x) => x.closed && x.remote.port === localPort);
      const clientSock = await socketAt(probes, c.netnsInode(), localPort, (x) => x.closed);
      assert.deepEqual([serverSock.resetsSent, serverSock.resetsReceived], [1, 0]);
      assert.deepEqual([clientSock.resetsSent, clientSock.resetsReceived], [0, 1]);
    });
  }
});
