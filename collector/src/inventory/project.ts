/**
 * Inventory -> the same metadata records the Kubernetes source produces: hosts, the pods
 * on them, services, and one endpoint record per service derived from its selector, so
 * the analyzer and SQL users cannot tell an inventory-fed cluster from a watched one.
 */
import type { Metadata } from '@meshlens/schemas';
import type { Inventory } from './schema.js';

export const inventoryUid = (kind: Metadata['kind'], id: string): string => `inventory:${kind}:${id}`;

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  const wanted = Object.entries(selector);
  return wanted.length > 0 && wanted.every(([k, v]) => labels[k] === v);
}

export function projectInventory(inv: Inventory, version: string, observedMs: number): Metadata[] {
  const stamp = { version, observed_ms: observedMs, deleted_ms: null };
  const out: Metadata[] = [];
  const pods: Extract<Metadata, { kind: 'pod' }>[] = [];
  for (const h of inv.hosts) {
    const zone = h.zone ?? null;
    out.push({ kind: 'host', uid: inventoryUid('host', h.name), ...stamp, name: h.name, zone, region: h.region ?? null, ips: h.ips, labels: h.labels });
    for (const p of h.pods) {
      pods.push({
        kind: 'pod',
        uid: p.uid ?? inventoryUid('pod', `${p.namespace}/${p.name}`),
        ...stamp,
        namespace: p.namespace,
        name: p.name,
        node: h.name,
        host_network: false,
        workload_kind: p.workload?.kind ?? null,
        workload_name: p.workload?.name ?? null,
        ips: p.ips,
        labels: p.labels,
      });
    }
  }
  out.push(...pods);
  for (const s of inv.services) {
    const id = `${s.namespace}/${s.name}`;
    out.push({
      kind: 'service',
      uid: inventoryUid('service', id),
      ...stamp,
      namespace: s.namespace,
      name: s.name,
      cluster_ips: s.cluster_ips,
      ports: s.ports,
      selector: s.selector,
    });
    const members = pods.filter((p) => p.namespace === s.namespace && matches(s.selector, p.labels));
    out.push({
      kind: 'endpoint',
      uid: inventoryUid('endpoint', id),
      ...stamp,
      namespace: s.namespace,
      service: s.name,
      addresses: members.flatMap((p) =>
        p.ips.filter((b) => b.to_ms === null).map((b) => ({ ip: b.ip, pod_uid: p.uid, node: p.node, ready: true })),
      ),
    });
  }
  return out;
}
