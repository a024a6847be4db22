// Sockets and DNS in network namespaces this test creates (198.18.0.0/24, fd00:6d6c::/64).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import { once } from 'node:events';
import { DnsMatcher, openProbes, type DnsPacketEvent, type ProbeEvent, type Probes, type TcpEvent } from '../src/index.js';
import { cgroupIdOf, NetnsPair, recorder, socketsOnPort, waitFor } from './helpers.js';

const isDns = (e: ProbeEvent): e is DnsPacketEvent => e.type === 'dns';

describe('network namespaces', () => {
  let probes: Probes;
  let lab: NetnsPair;
  before(() => {
    lab = new NetnsPair('ns');
    probes = openProbes();
  });
  after(() => {
    probes?.close();
    lab?.destroy();
  });

  for (const [family, serverIp, clientIp] of [
    [4, NetnsPair.B4, NetnsPair.A4],
    [6, NetnsPair.B6, NetnsPair.A6],
  ] as const) {
    test(`an IPv${family} transfer between namespaces is tagged with each side's netns, cgroup and pid`, async () => {
      const server = lab.peer(lab.b, ['server', serverIp, '4321']);
      const { port } = (await server.next('listening')) as unknown as { port: number };
      const client = lab.peer(lab.a, ['client', serverIp, String(port), '654321']);
      const connected = (await client.next('connected')) as unknown as { localPort: number };
      const done = (await client.next('done')) as unknown as { sent: number; received: number };
      const served = (await server.next('served')) as unknown as { received: number; sent: number };
      assert.deepEqual([done.sent, done.received, served.received, served.sent], [654321, 4321, 654321, 4321]);

      const socks = await waitFor('both sides closed', () => {
        const s = socketsOnPort(probes, port).filter((x) => x.closed && (x.local.port === connected.localPort || x.remote.port === connected.localPort));
        return s.length === 2 ? s : undefined;
      });
      const c = socks.find((s) => s.role === 'client')!;
      const s = socks.find((x) => x.role === 'server')!;
      assert.ok(c && s, 'one client and one server socket');
      assert.deepEqual(
        { family: c.family, local: c.local, remote: c.remote, netns: c.owner.netns, pid: c.owner.pid, cgroup: c.owner.cgroupId, sent: c.bytesSent, received: c.bytesReceived },
        { family, local: { ip: clientIp, port: connected.localPort }, remote: { ip: serverIp, port }, netns: lab.inode(lab.a), pid: client.pid, cgroup: cgroupIdOf('self'), sent: 654321, received: 4321 },
      );
      assert.deepEqual(
        { family: s.family, local: s.local, remote: s.remote, netns: s.owner.netns, pid: s.owner.pid, sent: s.bytesSent, received: s.bytesReceived },
        { family, local: { ip: serverIp, port }, remote: { ip: clientIp, port: connected.localPort }, netns: lab.inode(lab.b), pid: server.pid, sent: 4321, received: 654321 },
      );
      assert.notEqual(lab.inode(lab.a), lab.inode(lab.b));
      // Read for namespace a only: b's socket is not returned and, being closed, is deleted.
      const onlyA = probes.readSocketStats({ netns: [lab.inode(lab.a)] });
      assert.ok(onlyA.length > 0 && onlyA.every((x) => x.owner.netns === lab.inode(lab.a)));
      assert.ok(onlyA.some((x) => x.cookie === c.cookie));
      assert.equal(probes.readSocketStats().some((x) => x.cookie === s.cookie), false, 'closed socket of another namespace deleted');
      server.child.kill('SIGTERM');
    });
  }

  describe('DNS', () => {
    let dir: string;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'mlbpf-dns-'));
      const dnsmasq = lab.spawn(lab.b, 'dnsmasq', [
        '--keep-in-foreground', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--bind-interfaces',
        `--listen-address=${NetnsPair.B4}`, `--listen-address=${NetnsPair.B6}`, '--user=root',
        `--pid-file=${join(dir, 'dnsmasq.pid')}`, '--log-facility=-', '--local=/meshlens.test/',
        '--address=/a.meshlens.test/198.18.0.99', '--host-record=host.meshlens.test,198.18.0.98,fd00:6d6c::98',
        '--cname=alias.meshlens.test,host.meshlens.test',
      ]);
      // dnsmasq logs "started" once its sockets are bound.
      const lines = readline.createInterface({ input: dnsmasq.stderr! });
      await waitForLine(lines, /started/, 5000);
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    for (const [transport, server, digArgs] of [
      ['udp', NetnsPair.B4, []],
      ['tcp', NetnsPair.B4, ['+tcp']],
      ['udp', NetnsPair.B6, []],
    ] as const) {
      test(`a ${transport} query to ${server} and its answer are captured on both ends and parse`, async () => {
        const ev = recorder(probes);
        const dig = lab.spawn(lab.a, 'dig', [`@${server}`, 'a.meshlens.test', 'A', '+tries=1', '+time=3', '+short', ...digArgs]);
        let out = '';
        dig.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        await once(dig, 'exit');
        assert.equal(out.trim(), '198.18.0.99', 'dig got the answer');

        const ours = (e: ProbeEvent): e is DnsPacketEvent =>
          isDns(e) && e.transport === transport && e.message?.qname === 'a.meshlens.test' && (e.local.ip === server || e.remote.ip === server);
        const pkts = await ev.until('query and response at client and server', ours, 4);
        ev.stop();
        const at = (netns: number, egress: boolean, response: boolean) =>
          pkts.filter((p) => p.netns === netns && p.egress === egress && p.message!.response === response);
        const [query] = at(lab.inode(lab.a), true, false);
        const [answer] = at(lab.inode(lab.a), false, true);
        const [serverIn] = at(lab.inode(lab.b), false, false);
        const [serverOut] = at(lab.inode(lab.b), true, true);
        assert.ok(query && answer && serverIn && serverOut, `got ${pkts.map((p) => `${p.netns}/${p.egress}/${p.message!.response}`)}`);
        assert.equal(query.remote.port, 53);
        assert.equal(query.remote.ip, server);
        assert.deepEqual(answer.local, query.local, 'the answer comes back to the querying socket');
        assert.equal(query.cookie, answer.cookie);
        assert.equal(query.pid, dig.pid);
        assert.equal(query.message!.id, answer.message!.id);
        assert.equal(query.message!.qtype, 1);
        assert.equal(answer.message!.rcode, 0);
        assert.deepEqual(answer.message!.answers.map((a) => a.value), ['198.18.0.99']);
        assert.equal(serverIn.message!.id, query.message!.id);

        // All four packets through the matcher: exactly one exchange, the client's.
        const matcher = new DnsMatcher();
        const exchanges = pkts.map((p) => matcher.add(p)).filter((x) => x !== null);
        assert.equal(exchanges.length, 1);
        assert.equal(exchanges[0]!.query, query);
        assert.equal(exchanges[0]!.latencyUs, answer.tsUs - query.tsUs);
        assert.ok(exchanges[0]!.latencyUs! > 0 && exchanges[0]!.latencyUs! < 3_000_000, `latency ${exchanges[0]!.latencyUs} us`);
        assert.equal(matcher.outstanding, 0);
      });
    }

    for (const [qname, qtype, rcode, values] of [
      ['alias.meshlens.test', 'AAAA', 0, ['host.meshlens.test', 'fd00:6d6c::98']],
      ['nope.meshlens.test', 'A', 3, []],
    ] as const) {
      test(`the answer to ${qname} ${qtype} parses to rcode ${rcode} and ${values.length} answers`, async () => {
        const ev = recorder(probes);
        const dig = lab.spawn(lab.a, 'dig', [`@${NetnsPair.B4}`, qname, qtype, '+tries=1', '+time=3']);
        await once(dig, 'exit');
        const [answer] = await ev.until('answer at the client', (e): e is DnsPacketEvent =>
          isDns(e) && !e.egress && e.netns === lab.inode(lab.a) && e.message?.qname === qname && e.message.response);
        ev.stop();
        assert.deepEqual(
          { rcode: answer!.message!.rcode, qtype: answer!.message!.qtype, values: answer!.message!.answers.map((a) => a.value), complete: answer!.message!.complete },
          { rcode, qtype: qtype === 'A' ? 1 : 28, values: [...values], complete: true },
        );
      });
    }

    test('an unanswered query is captured and times out in the matcher', async () => {
      const ev = recorder(probes);
      // Nobody owns 198.18.0.3: the query leaves the socket (and is captured) but no answer comes.
      const dig = lab.spawn(lab.a, 'dig', ['@198.18.0.3', 'silent.meshlens.test', 'A', '+tries=1', '+time=1']);
      const [query] = await ev.until('the query', (e): e is DnsPacketEvent => isDns(e) && e.message?.qname === 'silent.meshlens.test');
      await once(dig, 'exit');
      ev.stop();
      const matcher = new DnsMatcher({ timeoutUs: 1_000_000 });
      for (const p of ev.seen) if (isDns(p)) matcher.add(p);
      assert.equal(matcher.outstanding, 1);
      assert.deepEqual(matcher.expire(query!.tsUs + 999_999), []);
      const [timedOut, ...rest] = matcher.expire(query!.tsUs + 1_000_000);
      assert.deepEqual(rest, []);
      assert.deepEqual(
        { timedOut: timedOut!.timedOut, response: timedOut!.response, server: timedOut!.query.remote, netns: timedOut!.query.netns },
        { timedOut: true, response: null, server: { ip: '198.18.0.3', port: 53 }, netns: lab.inode(lab.a) },
      );
    });
  });

  test('a neighbour that never answers is exactly one connect failure of class unreachable', async () => {
    const ev = recorder(probes);
    const failed = (ip: string) => (e: ProbeEvent): e is TcpEvent => e.type === 'tcp' && e.kind === 'connect_failed' && e.remote.ip === ip;
    // 198.18.0.3 is on the link but nobody owns it: ARP fails, the kernel reports EHOSTUNREACH.
    const client = lab.peer(lab.a, ['client', '198.18.0.3', '80', '1']);
    assert.equal((await client.next('error', 15_000)).code, 'EHOSTUNREACH');
    // Marker: a refusal from the same namespace, queued behind any duplicate of the first.
    const marker = lab.peer(lab.a, ['client', NetnsPair.B4, '9', '1']);
    assert.equal((await marker.next('error')).code, 'ECONNREFUSED');
    await ev.until('marker', failed(NetnsPair.B4));
    const hits = ev.seen.filter(failed('198.18.0.3'));
    ev.stop();
    assert.equal(hits.length, 1);
    const e = hits[0]!;
    assert.deepEqual(
      { errno: e.errno, cls: e.errnoClass, remote: e.remote, local: e.local.ip, netns: e.owner.netns, pid: e.owner.pid },
      { errno: 113, cls: 'unreachable', remote: { ip: '198.18.0.3', port: 80 }, local: NetnsPair.A4, netns: lab.inode(lab.a), pid: client.pid },
    );
    // ARP gives up after ~3 s while the SYN is retransmitted every 1 s, 2 s, ...
    assert.ok(e.synRetrans >= 1, `SYN retransmissions counted (${e.synRetrans})`);
  });

  test('a receive-only socket in a namespace created after attach is refreshed at a read', async () => {
    probes.readSocketStats(); // the namespaces known so far are listed
    const late = new NetnsPair('late');
    try {
      const server = late.peer(late.b, ['server', NetnsPair.B4, '0']);
      const { port } = (await server.next('listening')) as unknown as { port: number };
      const client = late.peer(late.a, ['hold', NetnsPair.B4, String(port)]);
      const { localPort } = (await client.next('connected')) as unknown as { localPort: number };
      client.send('send 100000');
      await client.next('sent');
      // The server only receives: nothing but a read-time refresh of its namespace, which
      // no listing knew, brings its counters past those of its ESTABLISHED transition.
      const s = await waitFor('server socket with every byte', () => {
        const x = socketsOnPort(probes, port).find((y) => y.role === 'server' && y.remote.port === localPort);
        return x && x.bytesReceived === 100_000 ? x : undefined;
      });
      assert.deepEqual({ closed: s.closed, netns: s.owner.netns, sent: s.bytesSent }, { closed: false, netns: late.inode(late.b), sent: 0 });
      client.send('end');
      await client.next('done');
    } finally {
      late.destroy();
    }
  });

  test('a socket open before attach in another namespace is adopted and measured', async () => {
    const server = lab.peer(lab.b, ['server', NetnsPair.B4, '0']);
    const { port } = (await server.next('listening')) as unknown as { port: number };
    const client = lab.peer(lab.a, ['hold', NetnsPair.B4, String(port)]);
    const { localPort } = (await client.next('connected')) as unknown as { localPort: number };
    client.send('send 1000');
    await client.next('sent');

    const late = openProbes();
    try {
      const adopted = await waitFor('adopted client', () => socketsOnPort(late, port).find((s) => s.local.port === localPort));
      assert.deepEqual(
        { preexisting: adopted.preexisting, role: adopted.role, netns: adopted.owner.netns },
        { preexisting: true, role: 'client', netns: lab.inode(lab.a) },
      );
      client.send('send 300000');
      await client.next('sent');
      // RTT samples only arrive if the iterator enabled the callbacks on that namespace's socket.
      const measured = await waitFor('measured after adoption', () => {
        const s = socketsOnPort(late, port).find((x) => x.cookie === adopted.cookie);
        return s && s.rttSamples > 0 && s.bytesSent === 301_000 ? s : undefined;
      });
      assert.equal(measured.owner.netns, lab.inode(lab.a));
      client.send('end');
      await client.next('done');
    } finally {
      late.close();
      server.child.kill('SIGTERM');
    }
  });
});

function waitForLine(lines: readline.Interface, re: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs} ms`)), timeoutMs);
    lines.on('line', (l) => {
      if (re.test(l)) {
        clearTimeout(t);
        resolve();
      }
    });
  });
}
