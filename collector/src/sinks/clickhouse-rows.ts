/**
 * Metadata records -> rows of the dimension tables (schemas/migrations/0002_metadata.sql).
 * metadata_objects gets one row per object version (ReplacingMergeTree keeps the newest),
 * ip_bindings one row per IP interval, keyed by (ip, valid_from, kind, uid) so closing an
 * interval replaces its open row instead of adding a second one.
 */
import type { Metadata } from '@meshlens/schemas';

/** DateTime64(3, 'UTC') text form; JSONEachRow numbers would be read as seconds. */
export function chTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

export interface ObjectRow {
  kind: string;
  uid: string;
  version: string;
  observed_at: string;
  deleted_at: string | null;
  namespace: string;
  name: string;
  node: string;
  zone: string;
  region: string;
  workload_kind: string;
  workload_name: string;
  labels: Record<string, string>;
  body: string;
}

/** Who an ip_bindings row names: written with the binding, read back by IP lookups (ip-query.ts). */
export interface BindingOwner {
  kind: string;
  uid: string;
  namespace: string;
  name: string;
  node: string;
  zone: string;
  workload_name: string;
}

export interface BindingRow extends BindingOwner {
  ip: string;
  valid_from: string;
  valid_to: string | null;
  observed_at: string;
}

/** Zone of a node or host by name, for pod bindings (the pod record itself has no zone). */
export type ZoneLookup = (node: string) => string | undefined;

export function objectRow(r: Metadata, zoneOf: ZoneLookup): ObjectRow {
  const common = {
    kind: r.kind,
    uid: r.uid,
    version: r.version,
    observed_at: chTime(r.observed_ms),
    deleted_at: r.deleted_ms === null ? null : chTime(r.deleted_ms),
    body: JSON.stringify(r),
  };
  const none = { namespace: '', node: '', zone: '', region: '', workload_kind: '', workload_name: '', labels: {} };
  switch (r.kind) {
    case 'node':
    case 'host':
      return { ...common, ...none, name: r.name, node: r.name, zone: r.zone ?? '', region: r.region ?? '', labels: r.labels };
    case 'pod':
      return {
        ...common,
        ...none,
        namespace: r.namespace,
        name: r.name,
        node: r.node ?? '',
        zone: (r.node && zoneOf(r.node)) || '',
        workload_kind: r.workload_kind ?? '',
        workload_name: r.workload_name ?? '',
        labels: r.labels,
      };
    case 'service':
      return { ...common, ...none, namespace: r.namespace, name: r.name, labels: r.selector };
    case 'endpoint':
      return { ...common, ...none, namespace: r.namespace, name: r.service };
  }
}

/**
 * Host-network pods share their node's IP; the node owns that binding, so such pods get
 * none (an IP lookup would otherwise name an arbitrary host-network pod for node traffic).
 */
export function bindingRows(r: Metadata, zoneOf: ZoneLookup): BindingRow[] {
  if (r.kind === 'service' || r.kind === 'endpoint') return [];
  if (r.kind === 'pod' && r.host_network) return [];
  const row = objectRow(r, zoneOf);
  return r.ips.map((b) => ({
    ip: b.ip,
    kind: r.kind,
    uid: r.uid,
    namespace: row.namespace,
    name: row.name,
    node: row.node,
    zone: row.zone,
    workload_name: row.workload_name,
    valid_from: chTime(b.from_ms),
    valid_to: b.to_ms === null ? null : chTime(b.to_ms),
    observed_at: row.observed_at,
  }));
}
