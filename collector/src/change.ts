import type { Metadata } from '@meshlens/schemas';

/** What a source reports: an object's current state, or its final state when it is gone. */
export type Change = { type: 'upsert'; record: Metadata } | { type: 'delete'; record: Metadata };

export type Emit = (change: Change) => void;

/** A source of cluster metadata: the Kubernetes API or an inventory file. */
export interface MetadataSource {
  start(emit: Emit): Promise<void>;
  stop(): Promise<void>;
  /** True once the source has delivered a complete picture at least once. */
  readonly synced: boolean;
}

/** Compacted-topic key: object identity, stable across versions. */
export function keyOf(record: Pick<Metadata, 'kind' | 'uid'>): string {
  return `${record.kind}/${record.uid}`;
}

/** The final version of an object that is gone: deleted now, its open IP bindings closed now. */
export function gone(r: Metadata, now: number): Metadata {
  const closed = { observed_ms: now, deleted_ms: now };
  if (r.kind === 'service' || r.kind === 'endpoint') return { ...r, ...closed };
  return { ...r, ...closed, ips: r.ips.map((b) => (b.to_ms === null ? { ...b, to_ms: now } : b)) };
}
