// An inventory file through a real collector into real Kafka and ClickHouse: the same
// records and tables as a watched cluster, IP intervals from the file answering "who had
// this IP then", and reloads that publish only what changed (deletions as tombstones).
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Metadata } from '@meshlens/schemas';
import { InventoryError, ipOwnerAt, type Collector, type InventorySource } from '../src/index.js';
import { TestInfra } from './support/infra.js';
import { testCollector } from './support/collector.js';

const EXAMPLE = fileURLToPath(new URL('../examples/inventory.yaml', import.meta.url));

describe('collector: inventory file -> compacted topic + dimension tables', () => {
  const infra = new TestInfra();
  const dir = mkdtempSync(join(tmpdir(), 'meshlens-inventory-'));
  const file = join(dir, 'inventory.yaml');
  let collector: Collector;

  before(async () => {
    copyFileSync(EXAMPLE, file);
    collector = testCollector(infra, { kind: 'inventory', file });
    await collector.start();
    await collector.whenIdle();
  });

  after(async () => {
    await collector?.stop();
    await infra.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes every host, pod, service and endpoint once', async () => {
    const messages = await infra.messages();
    assert.deepEqual(messages.map((m) => m.key).sort(), [
      'endpoint/inventory:endpoint:data/postgres',
      'endpoint/inventory:endpoint:shop/web',
      'host/inventory:host:db-vm-1',
      'host/inventory:host:web-vm-1',
      'pod/7d0c5d0e-58c6-4a39-a7e4-1f0e0f3c2a11',
      'pod/inventory:pod:data/postgres-0',
      'pod/inventory:pod:shop/web-0',
      'service/inventory:service:data/postgres',
      'service/inventory:service:shop/web',
    ]);
    const objects = await infra.rows<{ kind: string; name: string; node: string; zone: string; workload: string }>(
      `SELECT kind, name, node, zone, workload_name AS workload FROM metadata_objects FINAL WHERE kind IN ('host', 'pod') ORDER BY kind, name`,
    );
    assert.deepEqual(objects.map((o) => [o.kind, o.name, o.node, o.zone, o.workload]), [
      ['host', 'db-vm-1', 'db-vm-1', 'eu-west-1a', ''],
      ['host', 'web-vm-1', 'web-vm-1', 'eu-west-1b', ''],
      ['pod', 'postgres-0', 'db-vm-1', 'eu-west-1a', 'postgres'],
      ['pod', 'web-0', 'web-vm-1', 'eu-west-1b', 'web'],
      ['pod', 'web-1', 'web-vm-1', 'eu-west-1b', 'web'],
    ]);
  });

  it('answers which pod had an IP at a time from the intervals in the file', async () => {
    const owner = async (ip: string, at: string, kinds?: string[]) => (await ipOwnerAt(infra.ch, ip, Date.parse(at), kinds))?.name ?? null;
    assert.equal(await owner('10.0.2.12', '2026-11-19T12:00:00Z'), 'web-0');
    assert.equal(await owner('10.0.2.12', '2026-11-20T07:59:59.999Z'), 'web-0');
    assert.equal(await owner('10.0.2.12', '2026-11-20T08:00:00Z'), 'web-1');
    assert.equal(await owner('10.0.2.12', '2026-11-18T00:00:00Z'), null);
    assert.equal(await owner('fd00:2::10', '2026-11-20T08:00:00Z', ['host']), 'web-vm-1');
  });

  it('publishes only the differences on reload, and keeps the old state when the new file is invalid', async () => {
    const source = collector.source as InventorySource;
    const before = (await infra.messages()).length;
    const original = readFileSync(file, 'utf8');
    writeFileSync(file, original.replace('postgres-0', 'postgres-9'));
    assert.equal(source.reload(), true);
    await collector.whenIdle();
    const changed = (await infra.messages()).slice(before);
    const kind = (v: Metadata | null) => (v === null ? 'tombstone' : v.deleted_ms !== null ? 'deleted' : 'record');
    assert.deepEqual(
      changed.map((m) => [m.key, kind(m.value)]),
      [
        ['pod/inventory:pod:data/postgres-0', 'deleted'],
        ['pod/inventory:pod:data/postgres-0', 'tombstone'],
        ['pod/inventory:pod:data/postgres-9', 'record'],
        ['endpoint/inventory:endpoint:data/postgres', 'record'],
      ],
    );

    writeFileSync(file, original.replace('zone: eu-west-1a', 'zone: [eu-west-1a]'));
    assert.equal(source.reload(), false);
    await collector.whenIdle();
    assert.equal((await infra.messages()).length, before + changed.length, 'an invalid file publishes nothing');
  });

  it('refuses to start on an invalid file, naming line and field', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'version: 1\nhosts:\n  - name: Not_A_Name\n');
    const c = testCollector(infra, { kind: 'inventory', file: bad }, { http: null });
    try {
      await assert.rejects(c.start(), (err: Error) => {
        assert.ok(err instanceof InventoryError);
        assert.equal(err.message, `${bad}:3:11: hosts[0].name: must be a DNS-style name: lowercase letters, digits, "-" and "."`);
        return true;
      });
    } finally {
      await c.stop();
    }
  });
});
