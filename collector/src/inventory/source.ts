/**
 * The inventory source: publishes the file's contents, and on reload (SIGHUP) publishes
 * what changed, deletions included. A reload that fails validation keeps the previous
 * state and is reported; a file that is bad at start stops the start.
 */
import { statSync } from 'node:fs';
import type { Metadata } from '@meshlens/schemas';
import type { Logger } from 'pino';
import { gone, keyOf, type Emit, type MetadataSource } from '../change.js';
import type { CollectorMetrics } from '../metrics.js';
import { loadInventory } from './load.js';
import { projectInventory } from './project.js';

export class InventorySource implements MetadataSource {
  synced = false;
  private current = new Map<string, Metadata>();
  private emit: Emit = () => {};

  constructor(
    private readonly file: string,
    private readonly clock: () => number,
    private readonly metrics: CollectorMetrics,
    private readonly log: Logger,
  ) {}

  async start(emit: Emit): Promise<void> {
    this.emit = emit;
    this.apply();
    this.synced = true;
  }

  async stop(): Promise<void> {}

  /** Re-reads the file; returns false (and keeps the old state) when it is invalid. */
  reload(): boolean {
    try {
      this.apply();
      return true;
    } catch (err) {
      this.metrics.sourceErrors.inc({ resource: 'inventory' });
      this.log.error({ file: this.file, err: (err as Error).message }, 'inventory reload rejected; keeping the previous one');
      return false;
    }
  }

  private apply(): void {
    const inv = loadInventory(this.file);
    // The file's modification time is the inventory revision: it only moves forward as the file is edited.
    const version = String(Math.trunc(statSync(this.file).mtimeMs));
    const now = this.clock();
    const next = new Map(projectInventory(inv, version, now).map((r) => [keyOf(r), r]));
    for (const [key, old] of this.current) {
      if (!next.has(key)) this.emit({ type: 'delete', record: gone(old, now) });
    }
    for (const r of next.values()) this.emit({ type: 'upsert', record: r });
    this.current = next;
    this.log.info({ file: this.file, version, objects: next.size }, 'inventory loaded');
  }
}
