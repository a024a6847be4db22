import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLab, Lines, type Lab } from '../src/index.js';
import { median, pingRtts, requireRoot } from './helpers.js';

// Three zones; a and b share one. The ground truth is the system ping, outside the library.
let lab: Lab;
before(async () => {
  requireRoot();
  lab = await createLab({
    prefix: 'tdelay',
    hosts: [
      { name: 'a', zone: 'east' },
      { name: 'b', zone: 'east' },
      { name: 'c', zone: 'west' },
      { name: 'd', zone: 'north' },
    ],
  });
});
after(() => lab?.destroy());

function assertRtt(rtts: number[], expectedMs: number, what: string): void {
  assert.ok(rtts.length >= 15, `${what}: only ${rtts.length} replies`);
  const m = median(rtts);
  const tolerance = Math.max(0.05 * expectedMs, 0.5);
  assert.ok(Math.abs(m - expectedMs) <= tolerance, `${what}: median RTT ${m} ms, expected ${expectedMs} ± ${tolerance}`);
}

async function rtt(from: string, to: string, family: 4 | 6): Promise<number[]> {
  const target = lab.host(to);
  // 40 pings over 2 s, not 20 over 0.4 s: when the VM's host takes its CPUs away for a
  // fraction of a second, the lab's delays run late for that long, and a burst must not cover
  // half the samples.
  return pingRtts(lab.host(from), family === 4 ? target.ip4 : target.ip6, 40, 0.05);
}

for (const ms of [5, 20, 50]) {
  test(`${ms} ms each way between two hosts gives a ${2 * ms} ms ping RTT over IPv4 and IPv6`, async (t) => {
    await lab.setDelay('a', 'c', ms);
    for (const family of [4, 6] as const) {
      const rtts = await rtt('a', 'c', family);
      t.diagnostic(`IPv${family} ${ms} ms each way: median RTT ${median(rtts)} ms`);
      assertRtt(rtts, 2 * ms, `IPv${family} a-c`);
    }
  });
}

test('a host-pair delay leaves every other pair alone, and 0 removes it', async () => {
  await lab.setDelay('a', 'c', 20);
  assertRtt(await rtt('a', 'c', 4), 40, 'a-c');
  for (const [x, y] of [['a', 'b'], ['b', 'c'], ['a', 'd'], ['c', 'd']] as const) {
    assert.ok(median(await rtt(x, y, 4)) < 1, `${x}-${y} slowed by the a-c delay`);
  }
  await lab.setDelay('a', 'c', 0);
  assert.ok(median(await rtt('a', 'c', 4)) < 1, 'a-c still delayed after setDelay(0)');
});

test('zone pairs get their own delays; a host pair beats its zones', async () => {
  await lab.setDelay({ zone: 'east' }, { zone: 'west' }, 10);
  await lab.setDelay({ zone: 'west' }, { zone: 'north' }, 25);
  try {
    assertRtt(await rtt('a', 'c', 4), 20, 'east-west a-c');
    assertRtt(await rtt('b', 'c', 6), 20, 'east-west b-c');
    assertRtt(await rtt('d', 'c', 4), 50, 'north-west d-c');
    assert.ok(median(await rtt('a', 'd', 4)) < 1, 'east-north has no delay');
    assert.ok(median(await rtt('a', 'b', 4)) < 1, 'inside east has no delay');
    await lab.setDelay('a', 'c', 3);
    assertRtt(await rtt('a', 'c', 4), 6, 'host pair a-c inside east-west');
    assertRtt(await rtt('b', 'c', 4), 20, 'b-c keeps the zone delay');
  } finally {
    await lab.setDelay('a', 'c', 0);
    await lab.setDelay({ zone: 'east' }, { zone: 'west' }, 0);
    await lab.setDelay({ zone: 'west' }, { zone: 'north' }, 0);
  }
});

test('lowering a delay mid-flow does not reorder packets', async () => {
  await lab.setDelay('a', 'c', 50);
  // 2 ms apart, so ~25 requests are held when the delay drops to 1 ms.
  const ping = lab.host('a').spawn('ping', ['-n', '-i', '0.002', '-c', '150', lab.host('c').ip4], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = new Lines(ping, ping.stdout!);
  const arrivals: { seq: number; ms: number }[] = [];
  const reply = (l: string) => {
    const m = /icmp_seq=(\d+) .*time=([\d.]+) ms/.exec(l);
    if (m) arrivals.push({ seq: Number(m[1]), ms: Number(m[2]) });
    return m !== null;
  };
  for (let i = 0; i < 5; i++) await lines.next(reply);
  await lab.setDelay('a', 'c', 1);
  await lines.next((l) => {
    reply(l);
    return /packets transmitted/.test(l);
  }, 20_000);
  await lab.setDelay('a', 'c', 0);
  assert.ok(arrivals.length >= 140, `only ${arrivals.length} replies`);
  const outOfOrder = arrivals.filter((r, i) => i > 0 && r.seq <= arrivals[i - 1]!.seq);
  assert.deepEqual(outOfOrder, [], 'replies arrived out of order');
  assert.ok(arrivals[0]!.ms >= 100, `first RTT ${arrivals[0]!.ms} ms, expected the 50 ms delay`);
  const tail = median(arrivals.slice(-20).map((r) => r.ms));
  assert.ok(tail < 5, `last RTTs around ${tail} ms, expected the 1 ms delay`);
});
