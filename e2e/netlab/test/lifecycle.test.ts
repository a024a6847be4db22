import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { test } from 'node:test';
import { createLab, withLab } from '../src/index.js';
// The sweep's own liveness check: "gone" means here what the sweep waits for (a zombie is gone).
import { processAlive } from '../src/stale.js';
import { leftovers, netnsPids, requireRoot } from './helpers.js';

test('createLab sweeps what a crashed run with the same prefix left behind', async () => {
  requireRoot();
  const ghost = 'ml-tlife-ghost';
  spawnSyncOk('ip', ['netns', 'add', ghost]);
  mkdirSync(`/etc/netns/${ghost}`, { recursive: true });
  writeFileSync(`/etc/netns/${ghost}/resolv.conf`, 'nameserver 192.0.2.53\n');
  const orphan = spawn('ip', ['netns', 'exec', ghost, 'sleep', '300'], { stdio: 'ignore' });
  const orphanExit = once(orphan, 'exit');
  assert.deepEqual(leftovers('tlife').sort(), [`/etc/netns/${ghost}`, `netns ${ghost}`]);

  const lab = await createLab({ prefix: 'tlife', hosts: [{ name: 'a' }] });
  try {
    await orphanExit;
    assert.ok(!processAlive(orphan.pid!), 'the leftover process survived');
    assert.ok(!leftovers('tlife').some((l) => l.includes('ghost')), `left: ${leftovers('tlife').join(', ')}`);
    // The prefix belongs to a live lab now: a second one must not sweep it away.
    await assert.rejects(createLab({ prefix: 'tlife', hosts: [{ name: 'b' }] }), /in use/);
  } finally {
    await lab.destroy();
  }
});

test('destroy() stops every process, removes namespaces and files, and can run twice', async () => {
  const lab = await createLab({ prefix: 'tlife', hosts: [{ name: 'a' }, { name: 'b' }], dns: { records: { 'x.test': ['198.18.0.9'] } } });
  const a = lab.host('a');
  const sleeper = a.spawn('sleep', ['300'], { stdio: 'ignore' });
  await lab.setDelay('a', 'b', 1);
  assert.equal(readlinkSync(`/proc/${sleeper.pid}/ns/net`), `net:[${a.netnsInode()}]`);
  assert.notEqual(a.netnsInode(), lab.host('b').netnsInode());
  const pids = [lab.routerNs, ...lab.hosts.map((h) => h.ns)].flatMap(netnsPids);
  // sleep, the delay program, and the three dnsmasq processes.
  assert.equal(pids.length, 5, `processes in the lab: ${pids.join(' ')}`);
  assert.ok(leftovers('tlife').length > 0);

  await lab.destroy();
  assert.deepEqual(leftovers('tlife'), []);
  assert.deepEqual(pids.filter(processAlive), [], 'processes outlived destroy()');
  await lab.destroy();
});

test('a lab that fails to build, or whose user code throws, leaves nothing behind', async () => {
  await assert.rejects(
    createLab({ prefix: 'tlife', hosts: [{ name: 'a' }], dns: { nxdomain: ['dup.test'], servfail: ['dup.test'] } }),
    /both nxdomain and servfail/,
  );
  assert.deepEqual(leftovers('tlife'), []);
  await assert.rejects(
    withLab({ prefix: 'tlife', hosts: [{ name: 'a' }] }, async (lab) => {
      lab.host('a').spawn('sleep', ['300'], { stdio: 'ignore' });
      throw new Error('test failed');
    }),
    /test failed/,
  );
  assert.deepEqual(leftovers('tlife'), []);
});

function spawnSyncOk(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args);
  assert.equal(r.status, 0, String(r.stderr));
}
