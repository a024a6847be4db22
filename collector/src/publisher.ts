/**
 * Between sources and sinks: validates every record against the shared schema, drops
 * versions that change nothing we publish (a relist after 410 Gone, a pod status update
 * that moves no IP, label or owner) and hands the rest to every sink. This is what keeps
 * a resync from flooding the topic with duplicates.
 */
import { metadataSchema, type Metadata } from '@meshlens/schemas';
import type { Logger } from 'pino';
import { gone, keyOf, type Change } from './change.js';
import type { Delivery } from './delivery.js';
import type { CollectorMetrics } from './metrics.js';

/** The record without the fields that change on every observation. */
function fingerprint(r: Metadata): string {
  return JSON.stringify({ ...r, version: '', observed_ms: 0 });
}

export class Publisher {
  private readonly live = new Map<string, { kind: Metadata['kind']; fingerprint: string }>();

  constructor(
    private readonly deliveries: readonly Delivery[],
    private readonly metrics: CollectorMetrics,
    private readonly log: Logger,
  ) {}

  readonly apply = (change: Change): void => {
    const parsed = metadataSchema.safeParse(change.record);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.metrics.invalidRecords.inc({ kind: change.record.kind });
      this.log.warn(
        { kind: change.record.kind, uid: change.record.uid, field: issue?.path.join('.'), problem: issue?.message },
        'dropping invalid metadata record',
      );
      return;
    }
    const record = parsed.data;
    const key = keyOf(record);
    if (change.type === 'upsert') {
      const fp = fingerprint(record);
      if (this.live.get(key)?.fingerprint === fp) return;
      if (!this.live.has(key)) this.metrics.objects.inc({ kind: record.kind });
      this.live.set(key, { kind: record.kind, fingerprint: fp });
      this.send({ key, value: record });
      return;
    }
    if (this.live.delete(key)) this.metrics.objects.dec({ kind: record.kind });
    this.send({ key, value: record });
    this.send({ key, value: null });
  };

  /**
   * After the source's first complete picture: objects a previous run published as alive
   * that the source no longer has (deleted while no collector ran, or dropped from the
   * inventory) are published as deleted, so nothing stale stays alive forever.
   */
  retire(previous: ReadonlyMap<string, Metadata>, now: number): number {
    let retired = 0;
    for (const [key, record] of previous) {
      if (this.live.has(key)) continue;
      this.apply({ type: 'delete', record: gone(record, now) });
      retired += 1;
    }
    return retired;
  }

  private send(entry: { key: string; value: Metadata | null }): void {
    for (const d of this.deliveries) d.push(entry);
  }
}
