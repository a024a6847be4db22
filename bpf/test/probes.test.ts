// Loopback behaviour of the probes against real sockets of this process.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, fork } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { encode } from 'dns-packet';
import { bucketLower, histogramCount } from '@meshlens/schemas';
import { DNS_PROGRAMS, openProbes, type DnsPacketEvent, type Probes, type TcpEvent, type ProbeEvent, type SocketStats } from '../src/index.js';
import { cgroupIdOf, closedPort, listen, netnsInode, recorder, socketsOnPort, waitFor } from './helpers.js';

const isTcp = (e: ProbeEvent): e is TcpEvent => e.type === 'tcp';

/** A loopback server that only counts the bytes it receives. */
async function countingServer() {
  const server = net.createServer();
  let count = 0;
  server.on('connection', (s) => s.on('data', (d) => (count += d.length)));
  const port = await listen(server, '127.0.0.1');
  return { server, port, received: () => count };
}

/** A client connected to a countingServer, and what of a read is that connection's two sockets. */
async function countedConnection() {
  const { server, port, received } = await countingServer();
  const c = net.connect(port, '127.0.0.1');
  await once(c, 'connect');
  const cport = c.localPort!;
  const ours = (scan: Iterable<SocketStats>) =>
    [...scan].filter((s) => (s.local.port === port && s.remote.port === cport) || (s.local.port === cport && s.remote.port === port));
  return { server, received, c, ours };
}

/** Client sends `up` bytes and half-closes; the server counts them and answers `down` bytes. */
async function transfer(serverHost: string, clientHost: string, up: number, down: number, serverOpts: net.ServerOpts = {}) {
  let serverReceived = 0;
  const server = net.createServer(serverOpts);
  const served = new Promise<void>((resolve) => {
    server.on('connection', (s) => {
      s.on('data', (d) => (serverReceived += d.length));
      s.on('end', () => s.end(Buffer.alloc(down, 7)));
      s.on('close', () => resolve());
    });
  });
  const port = await listen(server, serverHost);
  const c = net.connect(port, clientHost);
  await once(c, 'connect');
  const clientPort = c.localPort!;
  let clientReceived = 0;
  c.on('data', (d) => (clientReceived += d.length));
  c.end(Buffer.alloc(up, 3));
  await Promise.all([once(c, 'close'), served]);
  await new Promise((r) => server.close(r));
  return { port, clientPort, serverReceived, clientReceived };
}

function pair(probes: Probes, port: number, clientPort: number): { client: SocketStats; server: SocketStats } | undefined {
  const socks = socketsOnPort(probes, port).filter((s) => s.closed);
  const client = socks.find((s) => s.local.port === clientPort && s.remote.port === port);
  const server = socks.find((s) => s.local.port === port && s.remote.port === clientPort);
  return client && server ? { client, server } : undefined;
}

describe('probes on loopback', () => {
  let probes: Probes;
  before(() => {
    probes = openProbes({ lifecycleEvents: true });
  });
  after(() => probes.close());

  test('every program loads and attaches on this kernel, and the report says what each is', () => {
    const byProgram = Object.fromEntries(probes.attachments.map((a) => [a.program, a]));
    for (const name of ['ml_sockops', 'ml_connect4', 'ml_connect6', 'ml_rcv', 'ml_read', 'ml_rst_out', 'ml_rst_in', 'ml_adopt', 'ml_dns_egress', 'ml_dns_ingress']) {
      assert.deepEqual({ name, loaded: byProgram[name]?.loaded, attached: byProgram[name]?.attached, error: byProgram[name]?.error }, { name, loaded: true, attached: true, error: null });
    }
    assert.equal(byProgram.ml_sockops!.section, 'sockops');
    assert.ok(probes.adopted.some((a) => a.ok), 'adopted in at least our own namespace');
    assert.deepEqual(probes.adopted.filter((a) => !a.ok && !a.gone), []);
  });

  test('an IPv4 transfer is counted exactly, with role, owner, netns and cgroup', async () => {
    const ev = recorder(probes);
    const t = await transfer('127.0.0.1', '127.0.0.1', 300_000, 12_345);
    assert.equal(t.serverReceived, 300_000);
    assert.equal(t.clientReceived, 12_345);
    const { client, server } = await waitFor('both closed sockets', () => pair(probes, t.port, t.clientPort));
    const owner = { netns: netnsInode('/proc/self/ns/net'), cgroupId: cgroupIdOf('self'), pid: process.pid, comm: client.owner.comm };
    assert.match(client.owner.comm, /^node/);
    for (const [s, role, sent, received] of [
      [client, 'client', 300_000, 12_345],
      [server, 'server', 12_345, 300_000],
    ] as const) {
      assert.equal(s.role, role);
      assert.equal(s.family, 4);
      assert.equal(s.local.ip, '127.0.0.1');
      assert.equal(s.remote.ip, '127.0.0.1');
      assert.equal(s.bytesSent, sent, `${role} bytesSent`);
      assert.equal(s.bytesReceived, received, `${role} bytesReceived`);
      assert.ok(s.segsOut >= s.dataSegsOut && s.dataSegsOut > 0, `${role} segments`);
      assert.ok(s.segsIn >= s.dataSegsIn && s.dataSegsIn > 0, `${role} segments in`);
      assert.deepEqual({ ...s.owner, comm: client.owner.comm, tid: 0 }, { ...owner, tid: 0 }, `${role} owner`);
      // The server's owner came from its reader (this process), not only from the listener.
      assert.equal(s.ownerProvisional, false, `${role} owner provisional`);
      assert.equal(s.preexisting, false);
      assert.ok(s.closedUs! >= s.openedUs && s.openedUs > 0);
      // retransSegs is not asserted: loopback sees real tail-loss probes when this process is slow to read.
      assert.deepEqual([s.resetsSent, s.resetsReceived], [0, 0], `${role} resets`);
    }
    const mine = await ev.until('open and close of both sockets', (e): e is TcpEvent => isTcp(e) && (e.cookie === client.cookie || e.cookie === server.cookie), 4);
    assert.deepEqual(mine.map((e) => `${e.role}:${e.kind}`).sort(), ['client:close', 'client:open', 'server:close', 'server:open']);
    ev.stop();
  });

  test('an open receive-only socket has exact counters at a read, and only because of the refresh', async () => {
    const { server, port, received } = await countingServer();
    const c = net.connect(port, '127.0.0.1');
    await once(c, 'connect');
    c.write(Buffer.alloc(250_000, 1));
    await waitFor('all bytes at the server', () => (received() === 250_000 ? true : undefined));
    const at = (read: SocketStats[]) => {
      const mine = read.filter((s) => s.local.port === port && s.remote.port === c.localPort || s.local.port === c.localPort && s.remote.port === port);
      return { server: mine.find((s) => s.role === 'server'), client: mine.find((s) => s.role === 'client') };
    };
    // The server sends nothing (no RTT samples) and no state changed since ESTABLISHED.
    const stale = at(probes.readSocketStats({ refresh: false }));
    assert.equal(stale.server?.bytesReceived, 0, 'nothing on the data path updates the counters');
    const now = at(probes.readSocketStats());
    assert.deepEqual(
      [now.server?.closed, now.server?.bytesReceived, now.server?.bytesSent, now.client?.bytesSent, now.client?.closed],
      [false, 250_000, 0, 250_000, false],
    );
    assert.ok(now.server!.updatedUs > stale.server!.updatedUs);
    c.destroy();
    await new Promise((r) => server.close(r));
  });

  test('a half-closed pair is read like any open one: FIN sent or received, its traffic counts at the read', async () => {
    // The client half-closes; the server, left half-open, answers after the FIN: the client
    // sits in FIN_WAIT2 and the server in CLOSE_WAIT, both with traffic since their last
    // state change the hooks saw (ESTABLISHED). Only a close being processed at the very
    // moment of the read is left to the close (see closing_midway in the probes).
    const server = net.createServer({ allowHalfOpen: true });
    const accepted: net.Socket[] = [];
    server.on('connection', (s) => {
      accepted.push(s);
      s.resume();
      s.on('end', () => s.write(Buffer.alloc(1000, 1)));
    });
    const port = await listen(server, '127.0.0.1');
    const c = net.connect(port, '127.0.0.1');
    await once(c, 'connect');
    let got = 0;
    c.on('data', (d) => (got += d.length));
    c.end();
    try {
      await waitFor('the answer after the FIN', () => (got === 1000 ? true : undefined));
      const at = (read: SocketStats[]) => {
        const mine = read.filter((s) => (s.local.port === port && s.remote.port === c.localPort) || (s.local.port === c.localPort && s.remote.port === port));
        const [client, server] = ['client', 'server'].map((r) => mine.find((s) => s.role === r));
        return [client?.state, client?.bytesReceived, server?.state, server?.bytesSent];
      };
      const [ESTABLISHED, FIN_WAIT2, CLOSE_WAIT] = [1, 5, 8];
      assert.deepEqual(at(probes.readSocketStats({ refresh: false })), [ESTABLISHED, 0, ESTABLISHED, 0], 'as of ESTABLISHED without the refresh');
      assert.deepEqual(at(probes.readSocketStats()), [FIN_WAIT2, 1000, CLOSE_WAIT, 1000]);
    } finally {
      c.destroy();
      for (const s of accepted) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  test('a read `since` an earlier one skips open sockets that did nothing meanwhile, never closed ones', async () => {
    const { server, received, c, ours } = await countedConnection();
    try {
      const roles = (xs: SocketStats[]) => xs.map((s) => `${s.role}:${s.closed ? 'closed' : 'open'}`).sort();
      c.write(Buffer.alloc(1000, 1));
      await waitFor('1000 bytes at the server', () => (received() === 1000 ? true : undefined));
      // Past the delayed ACK, after which neither socket has anything left to do.
      await new Promise((r) => setTimeout(r, 300));
      const first = probes.scanSocketStats();
      assert.deepEqual(roles(ours(first)), ['client:open', 'server:open']);
      // A socket the last read's refresh updated is read again while reads follow within the
      // margin a read's moment leaves (readUs is a millisecond before the read, for hooks
      // that stamp before they write); after that, never. A refresh that stamped idle
      // sockets anew would keep them coming.
      let prev = first;
      const idle = await waitFor('a read that skips the idle sockets', () => {
        const x = probes.scanSocketStats({ since: { updatedUs: prev.readUs, openedUs: prev.readUs } });
        prev = x;
        return ours(x).length === 0 ? x : undefined;
      });
      assert.ok(idle.inScope >= idle.count + 2, `inScope ${idle.inScope} (returned ${idle.count}) counts our two sockets left out`);
      assert.deepEqual(roles(ours(probes.scanSocketStats({ since: { updatedUs: first.readUs, openedUs: 0 } }))), ['client:open', 'server:open'], 'opened since');

      c.write(Buffer.alloc(500, 1));
      await waitFor('1500 bytes at the server', () => (received() === 1500 ? true : undefined));
      const moved = ours(probes.scanSocketStats({ since: { updatedUs: idle.readUs, openedUs: idle.readUs } }));
      assert.deepEqual(roles(moved), ['client:open', 'server:open']);
      assert.deepEqual(moved.map((s) => s.bytesReceived + s.bytesSent), [1500, 1500]);

      c.destroy();
      await waitFor('both ends closed', () => (roles(ours(probes.scanSocketStats({ refresh: false }))).join() === 'client:closed,server:closed' ? true : undefined));
      const later = probes.scanSocketStats();
      // Closed entries are final and always read, however long ago they closed.
      const closed = ours(probes.scanSocketStats({ since: { updatedUs: later.readUs + 1e9, openedUs: later.readUs + 1e9 } }));
      assert.deepEqual(roles(closed), ['client:closed', 'server:closed']);
      probes.deleteSockets(closed.map((s) => s.cookie));
    } finally {
      c.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  test('a scan decodes until the next read, which reuses its buffer, and refuses to after it', async () => {
    const { server, port } = await countingServer();
    const c = net.connect(port, '127.0.0.1');
    await once(c, 'connect');
    const cport = c.localPort!;
    const ours = (xs: SocketStats[]) => xs.filter((s) => (s.local.port === port && s.remote.port === cport) || (s.local.port === cport && s.remote.port === port));
    try {
      const overtaken = probes.scanSocketStats();
      const it = overtaken[Symbol.iterator]();
      assert.equal(it.next().done, false, 'decodes before the next read');
      const next = probes.scanSocketStats();
      assert.throws(() => it.next(), /overtaken/);
      assert.throws(() => [...overtaken], /overtaken/);
      assert.equal(ours([...next]).length, 2, 'the later read decodes, both ends');
      // The buffer is made at the first read, even one that returns nothing.
      const fresh = openProbes({ adoptExisting: false });
      try {
        const none = fresh.scanSocketStats({ netns: [1] });
        assert.equal(none.count, 0);
        assert.deepEqual([...none], []);
      } finally {
        fresh.close();
      }
    } finally {
      c.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  test('a socket accepted by a worker on its parent\'s listener (pre-fork) has the worker, its reader, as owner', async () => {
    const listener = net.createServer();
    const port = await listen(listener, '127.0.0.1');
    const worker = fork(fileURLToPath(new URL('./fixtures/acceptor.mjs', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    try {
      const said = (event: string) => new Promise<Record<string, number>>((resolve) => worker.on('message', (m: { event: string }) => m.event === event && resolve(m as never)));
      const ready = said('ready');
      worker.send('listener', listener);
      await ready;
      // Only the worker accepts from now on; the listening socket lives on in its copy.
      await new Promise((r) => listener.close(r));
      const served = said('served');
      const c = net.connect(port, '127.0.0.1');
      await once(c, 'connect');
      const clientPort = c.localPort!;
      let received = 0;
      c.on('data', (d) => (received += d.length));
      c.end(Buffer.alloc(4000, 1));
      await once(c, 'close');
      assert.equal((await served).received, 4000);
      const { client, server } = await waitFor('both closed sockets', () => pair(probes, port, clientPort));
      assert.deepEqual(
        { received, serverReceived: server.bytesReceived, serverSent: server.bytesSent, serverPid: server.owner.pid, provisional: server.ownerProvisional, clientPid: client.owner.pid },
        { received: 4000, serverReceived: 4000, serverSent: 4000, serverPid: worker.pid, provisional: false, clientPid: process.pid },
        'the server socket is reported with the worker\'s pid, not that of the process that called listen()',
      );
    } finally {
      worker.kill();
    }
  });

  test('RTT samples land in the histogram, with min <= srtt and plausible values', async () => {
    const t = await transfer('127.0.0.1', '127.0.0.1', 2_000_000, 1_000_000);
    const { client, server } = await waitFor('both closed sockets', () => pair(probes, t.port, t.clientPort));
    for (const s of [client, server]) {
      assert.ok(s.rttSamples > 0, `${s.role} has RTT samples`);
      assert.equal(histogramCount(s.rttHist), s.rttSamples);
      assert.ok(s.minRttUs !== null && s.minRttUs <= s.srttUs + 1, `${s.role} min ${s.minRttUs} <= srtt ${s.srttUs}`);
      // Loopback on a busy 2-core VM: well under a second, and never zero for srtt.
      assert.ok(s.srttUs > 0 && s.srttUs < 1_000_000, `${s.role} srtt ${s.srttUs}`);
    }
  });

  test('RTT samples beyond the per-socket slots spill into the full histogram without loss', async () => {
    // The client's request is ACKed together with the reply, which the server delays by
    // 1..40 ms: one RTT sample per round, spread over far more buckets than there are slots.
    const server = net.createServer((s) => {
      let n = 0;
      s.on('data', () => setTimeout(() => s.write('r'), ++n));
    });
    const port = await listen(server, '127.0.0.1');
    const c = net.connect(port, '127.0.0.1');
    await once(c, 'connect');
    for (let i = 0; i < 40; i++) {
      c.write('q');
      await once(c, 'data');
    }
    const s = await waitFor('client entry', () => socketsOnPort(probes, port).find((x) => x.local.port === c.localPort));
    c.destroy();
    await new Promise((r) => server.close(r));
    assert.ok(s.rttHist.idx.length > 16, `${s.rttHist.idx.length} buckets used`);
    assert.equal(histogramCount(s.rttHist), s.rttSamples);
    assert.ok(s.rttHist.idx.some((i) => bucketLower(i) >= 20_000), 'the delayed replies are in the histogram');
  });

  test('a refused connect is exactly one connect_failed event, class refused, right endpoints', async () => {
    const ev = recorder(probes);
    const refusedPort = await closedPort('127.0.0.1');
    const markerPort = await closedPort('127.0.0.1');
    const failedTo = (port: number) => (e: ProbeEvent): e is TcpEvent => isTcp(e) && e.kind === 'connect_failed' && e.remote.port === port && e.owner.pid === process.pid;
    for (const port of [refusedPort, markerPort]) {
      const c = net.connect(port, '127.0.0.1');
      const [err] = (await once(c, 'error')) as [NodeJS.ErrnoException];
      assert.equal(err.code, 'ECONNREFUSED');
    }
    // The ring buffer is ordered: once the second failure arrived, a duplicate of the first would have too.
    await ev.until('marker failure', failedTo(markerPort));
    const hits = ev.seen.filter(failedTo(refusedPort));
    assert.equal(hits.length, 1);
    const e = hits[0]!;
    assert.deepEqual(
      { errno: e.errno, cls: e.errnoClass, role: e.role, remote: e.remote, localIp: e.local.ip, family: e.family },
      { errno: 111, cls: 'refused', role: 'client', remote: { ip: '127.0.0.1', port: refusedPort }, localIp: '127.0.0.1', family: 4 },
    );
    assert.ok(e.local.port > 0, 'source port known');
    assert.equal(ev.seen.filter((x) => isTcp(x) && x.kind === 'reset_received' && x.cookie === e.cookie).length, 0, 'a refusal is not also a reset');
    ev.stop();
  });

  test('a server that aborts with a reset is seen on both sides', async () => {
    const ev = recorder(probes);
    const server = net.createServer((s) => s.once('data', () => s.resetAndDestroy()));
    const port = await listen(server, '127.0.0.1');
    const c = net.connect(port, '127.0.0.1');
    await once(c, 'connect');
    const clientPort = c.localPort!;
    c.write('hello');
    const [err] = (await once(c, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNRESET');
    await new Promise((r) => server.close(r));
    const sent = await ev.until('reset_sent', (e): e is TcpEvent => isTcp(e) && e.kind === 'reset_sent' && e.local.port === port && e.remote.port === clientPort);
    const got = await ev.until('reset_received', (e): e is TcpEvent => isTcp(e) && e.kind === 'reset_received' && e.local.port === clientPort && e.remote.port === port);
    assert.equal(sent.length, 1);
    assert.equal(got.length, 1);
    assert.equal(sent[0]!.role, 'server');
    assert.equal(got[0]!.role, 'client');
    const socks = socketsOnPort(probes, port);
    assert.equal(socks.find((s) => s.cookie === sent[0]!.cookie)?.resetsSent, 1);
    assert.equal(socks.find((s) => s.cookie === got[0]!.cookie)?.resetsReceived, 1);
    ev.stop();
  });

  test('IPv6 sockets report IPv6 endpoints', async () => {
    const t = await transfer('::1', '::1', 50_000, 7);
    const { client, server } = await waitFor('both closed sockets', () => pair(probes, t.port, t.clientPort));
    for (const s of [client, server]) {
      assert.equal(s.family, 6);
      assert.deepEqual([s.local.ip, s.remote.ip], ['::1', '::1']);
    }
    assert.deepEqual([client.bytesSent, client.bytesReceived, server.bytesSent, server.bytesReceived], [50_000, 7, 7, 50_000]);
  });

  test('v4-mapped IPv6 sockets are normalised to IPv4', async () => {
    // Dual-stack listener (AF_INET6) accepting an IPv4 client, and an AF_INET6 client dialling ::ffff:127.0.0.1.
    const t = await transfer('::', '::ffff:127.0.0.1', 1000, 2000, {});
    const { client, server } = await waitFor('both closed sockets', () => pair(probes, t.port, t.clientPort));
    for (const s of [client, server]) {
      assert.equal(s.family, 4);
      assert.deepEqual([s.local.ip, s.remote.ip], ['127.0.0.1', '127.0.0.1']);
    }
    assert.deepEqual([client.bytesSent, server.bytesReceived], [1000, 1000]);
  });

  test('deleteClosed removes exactly the closed sockets that were read', async () => {
    const t = await transfer('127.0.0.1', '127.0.0.1', 10, 10);
    const { client, server } = await waitFor('both closed sockets', () => pair(probes, t.port, t.clientPort));
    const open = new net.Socket();
    const listener = net.createServer();
    const lport = await listen(listener, '127.0.0.1');
    open.connect(lport, '127.0.0.1');
    await once(open, 'connect');
    const live = await waitFor('live socket', () => socketsOnPort(probes, lport).find((s) => s.role === 'client' && !s.closed));
    const read = probes.readSocketStats({ deleteClosed: true });
    assert.ok(read.some((s) => s.cookie === client.cookie) && read.some((s) => s.cookie === server.cookie));
    const after = new Set(probes.readSocketStats().map((s) => s.cookie));
    assert.deepEqual([after.has(client.cookie), after.has(server.cookie), after.has(live.cookie)], [false, false, true]);
    assert.equal(probes.deleteSockets([live.cookie, client.cookie]), 1, 'only the live entry was still there');
    assert.equal(probes.readSocketStats().some((s) => s.cookie === live.cookie), false);
    open.destroy();
    await new Promise((r) => listener.close(r));
  });

  test('events() yields the same events as an async iterator and stops on return()', async () => {
    const port = await closedPort('127.0.0.1');
    const it = probes.events();
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => {});
    let failure: TcpEvent | undefined;
    const deadline = setTimeout(() => void it.return?.(), 5000);
    for await (const e of it) {
      if (isTcp(e) && e.kind === 'connect_failed' && e.remote.port === port) {
        failure = e;
        break;
      }
    }
    clearTimeout(deadline);
    assert.equal(failure?.errnoClass, 'refused');
    assert.deepEqual(await it.next(), { value: undefined, done: true });
  });

  test('programStats reports calls and kernel time per program', async () => {
    const before = new Map(probes.programStats().map((s) => [s.program, s]));
    await transfer('127.0.0.1', '127.0.0.1', 1000, 1000);
    const after = new Map(probes.programStats().map((s) => [s.program, s]));
    for (const p of ['ml_sockops', 'ml_connect4', 'ml_dns_egress', 'ml_dns_ingress']) {
      assert.ok(after.get(p)!.runCount > before.get(p)!.runCount, `${p} ran`);
      assert.ok(after.get(p)!.runTimeNs > before.get(p)!.runTimeNs, `${p} took time`);
    }
  });

  test('counters are readable by name and report no overflow', () => {
    const c = probes.readCounters();
    assert.ok(c.sock_tracked! > 0);
    assert.equal(c.sock_map_full, 0);
    assert.equal(c.ringbuf_dropped, 0);
  });

  test("counters include each program's missed runs, as the kernel reports them to bpftool", () => {
    const c = probes.readCounters();
    const kernel = new Map((JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' })) as { id: number; recursion_misses?: number }[]).map((p) => [p.id, p.recursion_misses ?? 0]));
    const loaded = probes.programStats();
    assert.ok(loaded.length >= 8, 'every loaded program is reported');
    for (const p of loaded) {
      assert.ok(kernel.has(p.id), `${p.program} (id ${p.id}) is loaded`);
      // Read before bpftool, and after it: a miss in between can only raise the later figures.
      const ours = c[`${p.program}_missed_runs`];
      assert.ok(ours !== undefined && ours <= kernel.get(p.id)! && kernel.get(p.id)! <= p.missedRuns, `${p.program}: ${ours} <= bpftool's ${kernel.get(p.id)} <= ${p.missedRuns}`);
    }
  });
});

describe('a probe set with programs left out', () => {
  // Beside a full set, which shows what the left-out programs would have seen.
  let reduced: Probes;
  let full: Probes;
  before(() => {
    reduced = openProbes({ adoptExisting: false, without: ['ml_read', ...DNS_PROGRAMS] });
    full = openProbes({ adoptExisting: false });
  });
  after(() => {
    reduced.close();
    full.close();
  });

  test('says which it left out, attaches the rest, and refuses a name the object does not have', () => {
    const byProgram = Object.fromEntries(reduced.attachments.map((a) => [a.program, a]));
    for (const name of ['ml_read', ...DNS_PROGRAMS]) {
      const a = byProgram[name];
      assert.deepEqual({ name, loaded: a?.loaded, attached: a?.attached, leftOut: a?.leftOut, error: a?.error }, { name, loaded: false, attached: false, leftOut: true, error: 'left out by configuration' });
    }
    for (const name of ['ml_sockops', 'ml_connect4', 'ml_connect6', 'ml_rcv', 'ml_rst_out', 'ml_rst_in', 'ml_adopt']) assert.deepEqual([byProgram[name]?.attached, byProgram[name]?.leftOut], [true, false], name);
    assert.throws(() => openProbes({ adoptExisting: false, without: ['ml_nosuch'] }), /cannot leave out ml_nosuch: .* has no such program/);
  });

  test('without the DNS programs a DNS query goes unseen, where the full set sees it', async () => {
    const before = { reduced: reduced.readCounters().dns_packets!, full: full.readCounters().dns_packets! };
    const seen = recorder(reduced);
    const control = recorder(full);
    const sock = dgram.createSocket('udp4');
    try {
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
      const port = sock.address().port;
      sock.send(encode({ type: 'query', id: 4242, questions: [{ type: 'A', name: 'left-out.test' }] }), 53, '127.0.0.1');
      await control.until('the full set sees the query', (e): e is DnsPacketEvent => e.type === 'dns' && e.egress && e.local.port === port);
      assert.ok(full.readCounters().dns_packets! > before.full);
      assert.equal(reduced.readCounters().dns_packets, before.reduced);
      assert.deepEqual(seen.seen.filter((e) => e.type === 'dns'), []);
    } finally {
      sock.close();
      seen.stop();
      control.stop();
    }
  });

  test('without ml_read a read is a batch lookup: open sockets as of their last state change, closed ones final, `since` alike', async () => {
    const { server, received, c, ours } = await countedConnection();
    const summary = (xs: SocketStats[]) => xs.map((s) => `${s.role}:${s.closed ? 'closed' : 'open'}:${s.bytesSent}/${s.bytesReceived}`).sort();
    try {
      c.write(Buffer.alloc(1000, 1));
      await waitFor('1000 bytes at the server', () => (received() === 1000 ? true : undefined));
      // Nothing refreshes them: counters as of ESTABLISHED, whatever the read asks.
      const first = reduced.scanSocketStats({ refresh: true });
      assert.deepEqual(summary(ours(first)), ['client:open:0/0', 'server:open:0/0']);
      const idle = reduced.scanSocketStats({ since: { updatedUs: first.readUs, openedUs: first.readUs } });
      assert.deepEqual(ours(idle), []);
      assert.ok(idle.inScope >= idle.count + 2, `inScope ${idle.inScope} (returned ${idle.count}) counts our two sockets left out`);
      assert.deepEqual(summary(ours(reduced.scanSocketStats({ since: { updatedUs: first.readUs, openedUs: 0 } }))), ['client:open:0/0', 'server:open:0/0'], 'opened since');

      c.destroy();
      await waitFor('both ends closed', () => (ours(reduced.scanSocketStats()).filter((s) => s.closed).length === 2 ? true : undefined));
      // Closed entries carry their close's counters and are read whatever `since` says.
      const closed = ours(reduced.scanSocketStats({ since: { updatedUs: first.readUs + 1e9, openedUs: first.readUs + 1e9 } }));
      assert.deepEqual(summary(closed), ['client:closed:1000/0', 'server:closed:0/1000']);
      assert.equal(reduced.readSocketStats({ deleteClosed: true }).filter((s) => closed.some((x) => x.cookie === s.cookie)).length, 2);
      assert.deepEqual(ours(reduced.scanSocketStats()), [], 'deleteClosed took them out');
    } finally {
      c.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('sockets opened before the probes attached', () => {
  test('are adopted and measured from then on', async () => {
    const { server, port, received } = await countingServer();
    const c = net.connect(port, '127.0.0.1');
    await once(c, 'connect');
    c.write(Buffer.alloc(5000));
    await waitFor('first bytes', () => (received() === 5000 ? true : undefined));

    const probes = openProbes();
    try {
      const before = await waitFor('adopted client', () => socketsOnPort(probes, port).find((s) => s.local.port === c.localPort));
      assert.equal(before.preexisting, true);
      assert.equal(before.role, 'client');
      assert.equal(before.bytesSent, 5000, 'lifetime total at adoption');
      const srv = socketsOnPort(probes, port).find((s) => s.local.port === port);
      assert.equal(srv?.role, 'server', 'role inferred from the adopted listener');

      c.write(Buffer.alloc(200_000));
      await waitFor('more bytes', () => (received() === 205_000 ? true : undefined));
      const later = await waitFor('RTT samples after adoption', () => {
        const s = socketsOnPort(probes, port).find((x) => x.cookie === before.cookie);
        return s && s.rttSamples > 0 && s.bytesSent === 205_000 ? s : undefined;
      });
      assert.equal(later.owner.netns, netnsInode('/proc/self/ns/net'));
    } finally {
      probes.close();
      c.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  test('without sockops, an adopted connection\'s close is found by the next read, with its final counters', async () => {
    // Nothing calls back at these sockets' close: the read finds them closed (or freed).
    const { server, received, c, ours: of } = await countedConnection();
    c.write(Buffer.alloc(5000));
    await waitFor('first bytes', () => (received() === 5000 ? true : undefined));
    const probes = openProbes({ without: ['ml_sockops'] });
    const ours = () => of(probes.readSocketStats());
    try {
      await waitFor('both ends adopted', () => (ours().length === 2 ? true : undefined));
      c.write(Buffer.alloc(3000));
      await waitFor('more bytes', () => (received() === 8000 ? true : undefined));
      assert.deepEqual(ours().map((s) => [s.role, s.closed]).sort(), [['client', false], ['server', false]], 'read once after the last bytes');
      const unseen = probes.readCounters().close_unseen!;
      c.end();
      await once(c, 'close');
      const closed = await waitFor('both ends closed by a read', () => {
        const xs = ours();
        return xs.length === 2 && xs.every((s) => s.closed) ? xs : undefined;
      });
      assert.deepEqual(
        closed.map((s) => ({ role: s.role, sent: s.bytesSent, received: s.bytesReceived })).sort((a, b) => a.role.localeCompare(b.role)),
        [
          { role: 'client', sent: 8000, received: 0 },
          { role: 'server', sent: 0, received: 8000 },
        ],
      );
      assert.equal(probes.readCounters().close_unseen, unseen + 2);
    } finally {
      probes.close();
      c.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  test('a connection accepted after attach on a listener from before names its reader', async () => {
    const { server, port, received } = await countingServer();
    const probes = openProbes();
    try {
      const c = net.connect(port, '127.0.0.1');
      await once(c, 'connect');
      c.write(Buffer.alloc(3000));
      await waitFor('bytes at the server', () => (received() === 3000 ? true : undefined));
      const srv = await waitFor('accepted socket read once', () =>
        socketsOnPort(probes, port).find((s) => s.local.port === port && s.remote.port === c.localPort && !s.ownerProvisional),
      );
      // The adopted listener has no pid/comm; the first recvmsg supplied this process's.
      assert.deepEqual({ role: srv.role, pid: srv.owner.pid, comm: srv.owner.comm.length > 0 }, { role: 'server', pid: process.pid, comm: true });
      c.destroy();
    } finally {
      probes.close();
      await new Promise((r) => server.close(r));
    }
  });
});
