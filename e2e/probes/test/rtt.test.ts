// RTT: the median of the probes' per-socket RTT histogram for a bulk transfer against the
// system ping on the same path, measured during the transfer.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { histogramQuantile } from '@meshlens/schemas';
import { openProbes, type Probes } from '@meshlens/bpf';
import { createLab, type Lab } from '@meshlens/e2e/netlab';
import { median, requireRoot } from '../../netlab/test/helpers.js';
import { Peer, socketAt, startServer } from './helpers.js';

// The kernel hands sockops one RTT sample per round trip (tcp_rtt_estimator calls the
// RTT callback once per window), so the sample count is the transfer's length in RTTs. A
// receive buffer capped at 64 KB makes the transfer window-limited: ~64 KB per round trip
// whatever the delay, so TRANSFER_BYTES gives well over MIN_SAMPLES at every delay, and
// the flow never floods the delay program with line-rate bursts.
const RCVBUF = 65_536;
const TRANSFER_BYTES = 1_200_000;
const MIN_SAMPLES = 15;

describe('RTT of a bulk transfer vs ping', () => {
  let lab: Lab;
  let probes: Probes;
  before(async () => {
    requireRoot();
    lab = await createLab({ prefix: 'prrtt', hosts: [{ name: 'c' }, { name: 's' }] });
    const s = lab.host('s');
    await s.exec('sysctl', ['-qw', `net.ipv4.tcp_rmem=4096 ${RCVBUF} ${RCVBUF}`]);
    // ping's echo reply leaves at once, but a TCP receiver may hold an ACK for its delayed-ACK
    // timer (40 ms or more), and the kernel's RTT sample includes that hold. The sample is
    // taken once per flight, on the ACK of the flight's tail, which is the ACK most often
    // delayed. quickack on the receiver's routes sends every ACK at once, so both measure the path.
    await s.exec('ip', ['route', 'change', 'default', 'via', s.link.router4, 'dev', 'eth0', 'quickack', '1']);
    await s.exec('ip', ['-6', 'route', 'change', 'default', 'via', s.link.router6, 'dev', 'eth0', 'quickack', '1']);
    probes = openProbes();
  });
  after(async () => {
    probes?.close();
    await lab?.destroy();
  });

  for (const family of [4, 6] as const) {
    for (const ms of [5, 20, 50]) {
      test(`IPv${family}, ${ms} ms each way: probe median RTT within 5% (or 0.5 ms) of ping`, async (t) => {
        const [c, s] = [lab.host('c'), lab.host('s')];
        const serverIp = family === 4 ? s.ip4 : s.ip6;
        await lab.setDelay('c', 's', ms);
        const { server, port } = await startServer(s, serverIp, 1);
        const client = Peer.start(c, ['client', serverIp, String(port), String(TRANSFER_BYTES)]);
        const { localPort } = await client.next<{ localPort: number }>('connected');
        // Ping runs while the transfer does, so both see the same queues in the delay program.
        const ping = c.spawn('ping', ['-n', '-i', '0.01', serverIp], { stdio: ['ignore', 'pipe', 'inherit'] });
        let pingOut = '';
        ping.stdout!.on('data', (d: Buffer) => (pingOut += d.toString()));
        const pingExit = new Promise((r) => ping.once('exit', r));
        const done = await client.next('done', 60_000);
        ping.kill('SIGINT');
        await pingExit;
        await server.stop();
        assert.deepEqual([done.sent, done.received], [TRANSFER_BYTES, 1]);

        const pings = [...pingOut.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
        const sock = await socketAt(probes, c.netnsInode(), localPort, (x) => x.closed);
        assert.equal(sock.remote.ip, serverIp);
        assert.ok(sock.rttSamples >= MIN_SAMPLES, `only ${sock.rttSamples} RTT samples`);
        assert.ok(pings.length >= MIN_SAMPLES, `only ${pings.length} ping replies`);
        const probeMs = histogramQuantile(sock.rttHist, 0.5)! / 1000;
        const pingMs = median(pings);
        const tolerance = Math.max(0.05 * pingMs, 0.5);
        t.diagnostic(`probe median ${probeMs.toFixed(3)} ms over ${sock.rttSamples} samples (min ${sock.minRttUs} us, srtt ${sock.srttUs} us); ping median ${pingMs} ms over ${pings.length}`);
        assert.ok(Math.abs(probeMs - pingMs) <= tolerance, `probe ${probeMs.toFixed(3)} ms vs ping ${pingMs} ms (± ${tolerance.toFixed(3)})`);
      });
    }
  }
});
