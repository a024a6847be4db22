// A collector that starts after changes it did not see: objects a previous run published and
// the source no longer has (here, a host and its pod dropped from the inventory while no
// collector ran) are published as deleted and tombstoned, in Kafka and ClickHouse; objects
// still there are not re-announced as deleted. Real Kafka and ClickHouse, the real example.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { testCollector } from './support/collector.js';
import { TestInfra } from './support/infra.js';

const EXAMPLE = fileURLToPath(new URL('../examples/inventory.yaml', import.meta.url));

describe('collector: reconciling with what an earlier run published', () => {
  const infra = new TestInfra();
  const dir = mkdtempSync(join(tmpdir(), 'meshlens-reconcile-'));

  after(async () => {
    await infra.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function runOnce(file: string): Promise<void> {
    const collector = testCollector(infra, { kind: 'inventory', file });
    await collector.start();
    await collector.whenIdle();
    await collector.stop();
  }

  it('retires objects that disappeared while no collector ran, and only those', async () => {
    await runOnce(EXAMPLE);
    const first = await infra.latest();
    const alive = [...first].filter(([, v]) => v !== null).map(([k]) => k);
    assert.equal(alive.length, 9, 'the example inventory: 2 hosts, 3 pods, 2 services, 2 service endpoints');

    // The same inventory without db-vm-1 (and so without its pod postgres-0).
    const doc = parseDocument(readFileSync(EXAMPLE, 'utf8'));
    const hosts = doc.get('hosts') as { items: unknown[] };
    const dropped = hosts.items.splice(0, 1);
    assert.equal(dropped.length, 1);
    const smaller = join(dir, 'inventory.yaml');
    writeFileSync(smaller, doc.toString());
    const before = (await infra.messages()).length;
    await runOnce(smaller);

    const after = await infra.messages();
    const latest = new Map(after.map((m) => [m.key, m.value]));
    const gone = [...latest].filter(([k, v]) => v === null && alive.includes(k)).map(([k]) => k).sort();
    const deletions = after.slice(before).filter((m) => m.value?.deleted_ms != null).map((m) => m.key).sort();
    assert.deepEqual(deletions, gone, 'every retired object got a final record with deleted_ms before its tombstone');
    assert.equal(gone.length, 2, `the host and its pod, nothing else: ${gone.join(', ')}`);
    const names = gone.map((k) => first.get(k)).map((r) => (r && 'name' in r ? r.name : '?')).sort();
    assert.deepEqual(names, ['db-vm-1', 'postgres-0']);
    for (const k of alive.filter((k) => !gone.includes(k))) assert.notEqual(latest.get(k), null, `${k} stays alive`);
    // ClickHouse: the same two objects deleted, and the IP bindings of the retired ones closed.
    const deleted = await infra.rows<{ name: string }>(`SELECT name FROM metadata_objects FINAL WHERE deleted_at IS NOT NULL ORDER BY name`);
    assert.deepEqual(deleted.map((r) => r.name), ['db-vm-1', 'postgres-0']);
    const open = await infra.rows<{ name: string }>(`SELECT DISTINCT name FROM ip_bindings FINAL WHERE valid_to IS NULL AND name IN ('db-vm-1', 'postgres-0')`);
    assert.deepEqual(open, [], 'no IP still bound to a retired object');

    // A third run with the same smaller inventory retires nothing more.
    const settled = (await infra.messages()).length;
    await runOnce(smaller);
    const third = (await infra.messages()).slice(settled);
    assert.deepEqual(third.filter((m) => m.value === null || m.value.deleted_ms !== null), [], 'nothing deleted twice');
  });
});
