/**
 * The ClickHouse dimension tables. Migrations are applied before the first insert (they
 * are idempotent, and the collector may well start before the analyzer); like Kafka, a
 * ClickHouse that is down is one more retried delivery. Tombstones are Kafka's business:
 * here a deletion is the final row with deleted_at set, kept for joins on old flows.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import { clickhouseClient, migrate, type ClickHouseTarget } from '@meshlens/schemas/clickhouse';
import type { Metadata } from '@meshlens/schemas';
import type { Sink } from '../delivery.js';
import type { Entry } from '../outbox.js';
import { bindingRows, objectRow } from './clickhouse-rows.js';

export class ClickHouseSink implements Sink {
  readonly name = 'clickhouse';
  private client: ClickHouseClient | undefined;
  /** Node/host name -> zone, from every node and host record that passed through. */
  private readonly zones = new Map<string, string>();

  constructor(
    private readonly target: ClickHouseTarget,
    private readonly log: Logger,
  ) {}

  async deliver(batch: readonly Entry[]): Promise<void> {
    const records = batch.map((e) => e.value).filter((v): v is Metadata => v !== null);
    for (const r of records) {
      if ((r.kind === 'node' || r.kind === 'host') && r.zone !== null) this.zones.set(r.name, r.zone);
    }
    const zoneOf = (node: string): string | undefined => this.zones.get(node);
    const objects = records.map((r) => objectRow(r, zoneOf));
    const bindings = records.flatMap((r) => bindingRows(r, zoneOf));
    const ch = await this.ready();
    await ch.insert({ table: 'metadata_objects', values: objects, format: 'JSONEachRow' });
    if (bindings.length > 0) await ch.insert({ table: 'ip_bindings', values: bindings, format: 'JSONEachRow' });
  }

  async close(): Promise<void> {
    await this.client?.close();
    this.client = undefined;
  }

  private async ready(): Promise<ClickHouseClient> {
    if (this.client === undefined) {
      await migrate(this.target, undefined, { onLockWait: (holder) => this.log.info({ holder }, 'waiting for another migrator of the database') });
      this.client = clickhouseClient(this.target);
    }
    return this.client;
  }
}
