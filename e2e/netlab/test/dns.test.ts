import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLab, type Lab } from '../src/index.js';
import { dig, requireRoot } from './helpers.js';

let lab: Lab;
before(async () => {
  requireRoot();
  lab = await createLab({
    prefix: 'tdns',
    hosts: [{ name: 'a', zone: 'east' }],
    dns: {
      records: { 'web.lab.test': ['198.18.32.2', 'fd6d:6c00:0:100::2'], 'v4only.lab.test': ['198.18.32.9'] },
      nxdomain: ['gone.lab.test'],
      servfail: ['broken.lab.test'],
      drop: ['silent.lab.test'],
    },
  });
});
after(() => lab?.destroy());

for (const family of [4, 6] as const) {
  test(`over IPv${family}: answers, NXDOMAIN, SERVFAIL and a dropped query`, async () => {
    const a = lab.host('a');
    const server = family === 4 ? lab.dns.ip4 : lab.dns.ip6;
    const four = await dig(a, server, 'web.lab.test', 'A');
    assert.deepEqual([four.status, four.answers], ['NOERROR', ['198.18.32.2']]);
    const aaaa = await dig(a, server, 'web.lab.test', 'AAAA');
    assert.deepEqual([aaaa.status, aaaa.answers], ['NOERROR', ['fd6d:6c00:0:100::2']]);
    const nodata = await dig(a, server, 'v4only.lab.test', 'AAAA');
    assert.deepEqual([nodata.status, nodata.answers], ['NOERROR', []]);
    // Names below a listed name share its fate.
    for (const name of ['gone.lab.test', 'x.gone.lab.test', 'unlisted.lab.test']) {
      assert.equal((await dig(a, server, name, 'A')).status, 'NXDOMAIN', name);
    }
    const [servfail, dropped] = await Promise.all([dig(a, server, 'broken.lab.test', 'A'), dig(a, server, 'silent.lab.test', 'A')]);
    assert.equal(servfail.status, 'SERVFAIL');
    assert.equal(dropped.status, 'TIMEOUT');
  });
}

test("each host's namespace resolves through the lab server by default", async () => {
  const r = await dig(lab.host('a'), undefined, 'web.lab.test', 'A');
  assert.deepEqual(r.answers, ['198.18.32.2']);
});

test('update() replaces the answers at runtime', async () => {
  const a = lab.host('a');
  await lab.dns.update({
    records: { 'web.lab.test': ['198.18.32.3'], 'gone.lab.test': ['198.18.32.4'] },
    servfail: ['silent.lab.test'],
    drop: ['broken.lab.test'],
  });
  assert.deepEqual((await dig(a, lab.dns.ip4, 'web.lab.test', 'A')).answers, ['198.18.32.3']);
  assert.deepEqual((await dig(a, lab.dns.ip6, 'gone.lab.test', 'A')).answers, ['198.18.32.4']);
  assert.equal((await dig(a, lab.dns.ip4, 'silent.lab.test', 'A')).status, 'SERVFAIL');
  assert.equal((await dig(a, lab.dns.ip4, 'broken.lab.test', 'A')).status, 'TIMEOUT');
  await assert.rejects(lab.dns.update({ nxdomain: ['x.test'], drop: ['x.test'] }), /both/);
});

test('a delay towards the DNS host shows in the query time', async (t) => {
  await lab.setDelay('a', 'dns', 10);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) times.push((await dig(lab.host('a'), lab.dns.ip4, 'web.lab.test', 'A')).queryMs!);
  await lab.setDelay('a', 'dns', 0);
  t.diagnostic(`10 ms each way to the DNS host: dig query times ${times.join(', ')} ms`);
  // dig reports whole milliseconds. The fastest query is the one without scheduling delay on
  // top (a CI run under load once saw a median of 24 ms); it can never beat the delay itself.
  const fastest = Math.min(...times);
  assert.ok(fastest >= 20 && fastest <= 22, `fastest query time ${fastest} ms, expected 20-22`);
});
