// The inventory file format: the documented example parses into the expected records, and
// every kind of mistake is rejected with file:line:column, the field's path and the reason.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { loadInventory, parseInventory } from '../src/index.js';
import { projectInventory } from '../src/inventory/project.js';

const EXAMPLE = fileURLToPath(new URL('../examples/inventory.yaml', import.meta.url));

describe('inventory file', () => {
  it('turns the documented example into hosts, pods, services and derived endpoints', () => {
    const records = projectInventory(loadInventory(EXAMPLE), '7', 1000);
    assert.deepEqual(records.map((r) => `${r.kind}:${'namespace' in r ? r.namespace + '/' : ''}${'name' in r ? r.name : r.service}`), [
      'host:db-vm-1',
      'host:web-vm-1',
      'pod:data/postgres-0',
      'pod:shop/web-1',
      'pod:shop/web-0',
      'service:shop/web',
      'endpoint:shop/web',
      'service:data/postgres',
      'endpoint:data/postgres',
    ]);
    const web1 = records.find((r) => r.kind === 'pod' && r.name === 'web-1');
    assert.deepEqual(web1, {
      kind: 'pod',
      uid: '7d0c5d0e-58c6-4a39-a7e4-1f0e0f3c2a11',
      version: '7',
      observed_ms: 1000,
      deleted_ms: null,
      namespace: 'shop',
      name: 'web-1',
      node: 'web-vm-1',
      host_network: false,
      workload_kind: 'Deployment',
      workload_name: 'web',
      ips: [
        { ip: '10.0.2.11', from_ms: 0, to_ms: null },
        { ip: '10.0.2.12', from_ms: Date.parse('2026-11-20T08:00:00Z'), to_ms: null },
      ],
      labels: { app: 'web' },
    });
    const endpoint = records.find((r) => r.kind === 'endpoint' && r.service === 'web');
    assert.deepEqual(endpoint?.kind === 'endpoint' && endpoint.addresses.map((a) => [a.ip, a.node]), [
      ['10.0.2.11', 'web-vm-1'],
      ['10.0.2.12', 'web-vm-1'],
    ]);
    const host = records.find((r) => r.kind === 'host' && r.name === 'web-vm-1');
    assert.deepEqual(host?.kind === 'host' && [host.zone, host.region, host.ips.map((b) => b.ip)], ['eu-west-1b', 'eu-west-1', ['10.0.2.10', 'fd00:2::10']]);
  });

  const cases: [string, string, string][] = [
    ['a misspelt field', 'version: 1\nhosts:\n  - name: a\n    zome: z1\n', 'inv.yaml:4:5: hosts[0].zome: unknown field (allowed fields are listed in collector/README.md)'],
    ['a bad IP deep inside', 'version: 1\nhosts:\n  - name: a\n    pods:\n      - name: p\n        ips: [10.0.0.1, 10.0.0.300]\n', 'inv.yaml:6:25: hosts[0].pods[0].ips[1].ip: not an IP address'],
    ['a missing required field', 'version: 1\nhosts:\n  - name: a\n    pods:\n      - name: p\n', 'inv.yaml:5:9: hosts[0].pods[0].ips: required field is missing'],
    ['a duplicate pod', 'version: 1\nhosts:\n  - name: a\n    pods: [{ name: p, ips: [10.0.0.1] }]\n  - name: b\n    pods: [{ name: p, ips: [10.0.0.2] }]\n', 'inv.yaml:6:20: hosts[1].pods[0].name: duplicate pod default/p'],
    ['a bad time', 'version: 1\nhosts:\n  - name: a\n    ips: [{ ip: 10.0.0.1, from: yesterday }]\n', 'inv.yaml:4:33: hosts[0].ips[0].from: Invalid ISO datetime'],
    ['an unsupported version', 'version: 2\n', 'inv.yaml:1:10: version: Invalid input: expected 1'],
    ['broken YAML', 'version: 1\nhosts:\n  - name: a\n   zone: z\n', 'inv.yaml:4:1: YAML syntax: Sequence item without - indicator'],
    ['an empty file', '# nothing yet\n', 'inv.yaml:1:1: the file is empty; an inventory starts with "version: 1"'],
  ];
  for (const [what, text, message] of cases) {
    it(`rejects ${what} with the line and the field`, () => {
      assert.throws(() => parseInventory(text, 'inv.yaml'), (err: Error) => {
        assert.equal(err.name, 'InventoryError');
        assert.equal(err.message, message);
        return true;
      });
    });
  }
});
