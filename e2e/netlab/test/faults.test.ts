import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLab, Lines, type Lab } from '../src/index.js';
import { connectFrom, nstat, pingLoss, requireRoot, startHttpServer } from './helpers.js';

let lab: Lab;
before(async () => {
  requireRoot();
  lab = await createLab({ prefix: 'tfault', hosts: [{ name: 'a' }, { name: 'b' }, { name: 'c' }], flowsInOrder: true });
});
after(() => lab?.destroy());

// Loss applies to each packet in each direction, so a ping (request + reply) is lost with
// 1-(1-p)^2. With n = 2000 pings the standard error is ~0.0066; ±0.03 is over 4.5 of them
// (a false failure about once in 10^5 runs) and still far from 0 and from one-way p.
const PINGS = 2000;
function assertLossRate(lost: number, sent: number, p: number, what: string): void {
  const expected = 1 - (1 - p) ** 2;
  const rate = lost / sent;
  assert.ok(Math.abs(rate - expected) <= 0.03, `${what}: ${lost}/${sent} pings lost (${rate.toFixed(4)}), expected ${expected.toFixed(4)} ± 0.03`);
}

test('5% loss between two hosts: ping loses 1-(0.95)^2 of its round trips over IPv4 and IPv6; other pairs lose none', async (t) => {
  const [a, b, c] = [lab.host('a'), lab.host('b'), lab.host('c')];
  await lab.setLoss('a', 'c', 0.05);
  for (const [family, target] of [[4, c.ip4], [6, c.ip6]] as const) {
    const { sent, received } = await pingLoss(a, target, PINGS);
    t.diagnostic(`IPv${family} a-c: ${sent - received}/${sent} lost`);
    assertLossRate(sent - received, sent, 0.05, `IPv${family} a-c`);
  }
  const other = await pingLoss(b, c.ip4, 500);
  assert.equal(other.received, other.sent, 'b-c lost packets from the a-c setting');
  await lab.setLoss('a', 'c', 0);
  const cleared = await pingLoss(a, c.ip4, 500);
  assert.equal(cleared.received, cleared.sent, 'a-c still lossy after setLoss(0)');
});

test('loss on one host affects its traffic with every peer', async (t) => {
  const [a, b, c] = [lab.host('a'), lab.host('b'), lab.host('c')];
  await lab.setLoss('c', 0.05);
  try {
    for (const from of [a, b]) {
      const { sent, received } = await pingLoss(from, c.ip4, PINGS);
      t.diagnostic(`${from.name}-c: ${sent - received}/${sent} lost`);
      assertLossRate(sent - received, sent, 0.05, `${from.name}-c`);
    }
  } finally {
    await lab.setLoss('c', 0);
  }
});

test('5% loss makes a bulk TCP transfer retransmit, as nstat in the sender namespace counts', async (t) => {
  const [a, c] = [lab.host('a'), lab.host('c')];
  // Sender and receiver on different CPUs (iperf3 -A), the case in which a lab that let a
  // flow's packets be queued on two CPUs reorders them.
  const transfer = async () => {
    const server = c.spawn('iperf3', ['-s', '-1', '--forceflush', '-A', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Lines(server, server.stdout!).next((l) => l.includes('Server listening'));
    const counters = ['TcpRetransSegs', 'TcpExtTCPOrigDataSent'];
    const before = await nstat(a, ...counters);
    await a.exec('iperf3', ['-c', c.ip4, '-n', String(4 << 20), '-A', '0']);
    const after = await nstat(a, ...counters);
    // Original data segments, not bytes asked for: iperf3 -n stops with data still in its socket buffer.
    return { retrans: after.TcpRetransSegs! - before.TcpRetransSegs!, sent: after.TcpExtTCPOrigDataSent! - before.TcpExtTCPOrigDataSent! };
  };
  // Without loss nothing should be sent twice. The lab keeps each flow on one CPU (RPS, see
  // LabSpec.flowsInOrder); without that, reordering made up to 11% of the segments spurious fast
  // retransmits, whatever ran before. 1% leaves room for the odd tail-loss probe.
  const clean = await transfer();
  t.diagnostic(`no loss: ${clean.retrans} retransmits for ${clean.sent} data segments`);
  assert.ok(clean.sent > 1000, `only ${clean.sent} data segments sent`);
  assert.ok(clean.retrans <= 0.01 * clean.sent, `${clean.retrans} retransmits for ${clean.sent} data segments without any loss configured`);
  await lab.setLoss('a', 'c', 0.05);
  try {
    const lossy = await transfer();
    t.diagnostic(`5% loss: ${lossy.retrans} retransmits for ${lossy.sent} data segments (${(lossy.retrans / lossy.sent).toFixed(4)})`);
    // Each data segment is lost with p and every lost one is sent again at least once: for
    // ~2600 segments that is ~130 (sd ~11), so half of it is 6 sd away.
    assert.ok(lossy.sent > 1000, `only ${lossy.sent} data segments sent`);
    assert.ok(lossy.retrans >= 0.5 * 0.05 * lossy.sent, `only ${lossy.retrans} retransmits for ${lossy.sent} data segments`);
  } finally {
    await lab.setLoss('a', 'c', 0);
  }
});

test('blackholed port times out, refused port is ECONNREFUSED, unowned address is EHOSTUNREACH', async (t) => {
  const [a, c] = [lab.host('a'), lab.host('c')];
  const server = await startHttpServer(c, 8080, 'c');
  const unreachable = lab.unreachableAddress('c');
  const probe = () =>
    connectFrom(a, 5_000, [
      [c.ip4, 8080],
      [c.ip6, 8080],
      [c.ip4, 8081],
      [c.ip6, 8081],
      [unreachable.ip4, 8080],
      [unreachable.ip6, 8080],
    ]);
  const open = await probe();
  assert.deepEqual(
    open.map((r) => r.outcome),
    ['connected', 'connected', 'ECONNREFUSED', 'ECONNREFUSED', 'EHOSTUNREACH', 'EHOSTUNREACH'],
    JSON.stringify(open),
  );
  for (const r of open) t.diagnostic(`${r.host}:${r.port} -> ${r.outcome} after ${r.ms} ms`);
  const undo = await lab.blackhole('c', 8080);
  const holed = await connectFrom(a, 2_000, [
    [c.ip4, 8080],
    [c.ip6, 8080],
  ]);
  assert.deepEqual(holed.map((r) => r.outcome), ['timeout', 'timeout'], JSON.stringify(holed));
  await undo();
  const reopened = await connectFrom(a, 2_000, [[c.ip4, 8080]]);
  assert.equal(reopened[0]!.outcome, 'connected');
  server.kill();
});
