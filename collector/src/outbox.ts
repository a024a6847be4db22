/**
 * Entries waiting for one sink, coalesced per object: while a sink is unreachable only the
 * newest state of each object is kept (the topic is compacted and the tables keep the
 * latest row anyway), so an outage costs memory proportional to the number of objects,
 * not to the number of changes. A deletion is never folded away: the final record (with
 * its closed IP intervals) and the tombstone that follows it are both delivered.
 */
import type { Metadata } from '@meshlens/schemas';

export interface Entry {
  key: string;
  /** null is a tombstone. */
  value: Metadata | null;
}

export class Outbox {
  private entries = new Map<string, Entry[]>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(entry: Entry): void {
    const queue = this.entries.get(entry.key);
    if (queue === undefined) {
      this.entries.set(entry.key, [entry]);
      this.count++;
      return;
    }
    const last = queue[queue.length - 1];
    if (last?.value != null && entry.value !== null && last.value.deleted_ms === null) {
      queue[queue.length - 1] = entry;
    } else {
      queue.push(entry);
      this.count++;
    }
  }

  /** Removes and returns the entries of up to `maxKeys` objects, in arrival order. */
  take(maxKeys: number): Entry[] {
    const out: Entry[] = [];
    let keys = 0;
    for (const [key, queue] of this.entries) {
      if (keys++ === maxKeys) break;
      out.push(...queue);
      this.entries.delete(key);
    }
    this.count -= out.length;
    return out;
  }

  /** Puts a failed batch back in front of anything that arrived meanwhile. */
  requeue(batch: readonly Entry[]): void {
    const newer = this.entries;
    this.entries = new Map();
    this.count = 0;
    for (const e of batch) this.push(e);
    for (const queue of newer.values()) for (const e of queue) this.push(e);
  }
}
