/**
 * ClickHouse inserts that are safe to repeat. Every insert carries a deduplication token
 * derived from the Kafka offsets its rows came from; ClickHouse drops a block whose token it
 * has already stored (the tables keep a non-replicated dedup window), and so do the
 * materialized views below it. A failed insert is retried with the same token until it is
 * acknowledged: nothing is dropped, and the caller does not commit offsets meanwhile.
 */
import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import { SYNC_INSERT_SETTINGS } from '@meshlens/schemas/clickhouse';
import type { Metrics } from './metrics.js';
import { RowBinaryTypeError, rowsEncoder } from './row-binary.js';

/** Settings the exactly-once argument depends on, stated instead of inherited (clickhouse-local defaults to async inserts). */
export function dedupSettings(token: string) {
  return {
    ...SYNC_INSERT_SETTINGS,
    insert_deduplicate: 1,
    insert_deduplication_token: token,
    deduplicate_blocks_in_dependent_materialized_views: 1,
  } as const;
}

export interface RetryHooks {
  /** Called before each retry wait: keeps the consumer group membership alive; throws to give up. */
  beforeRetry: (attempt: number, err: Error) => Promise<void>;
  /** Called once when the first attempt fails and once when an insert finally succeeds after failures. */
  onStall: (stalled: boolean) => void;
}

interface TableEncoder {
  sql: string;
  encode: (rows: Record<string, unknown>[]) => Buffer;
}

export class ClickHouseSink {
  /** By table and column list: built once from the table's own column types. */
  private readonly encoders = new Map<string, TableEncoder>();

  constructor(
    private readonly ch: ClickHouseClient,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly retry: { minMs: number; maxMs: number },
  ) {}

  async insert(table: string, rows: Record<string, unknown>[], token: string, hooks: RetryHooks): Promise<void> {
    let attempt = 0;
    // Encoded once: a retry during an outage resends the same bytes.
    let body: Buffer | null = null;
    for (;;) {
      const end = this.metrics.insertSeconds.startTimer({ table });
      try {
        const encoder = await this.encoderFor(table, Object.keys(rows[0]!));
        body ??= encoder.encode(rows);
        const res = await this.ch.exec({ query: encoder.sql, values: Readable.from([body], { objectMode: false }), clickhouse_settings: dedupSettings(token) });
        // The answer to an INSERT is empty; reading it to the end hands the socket back to the pool.
        for await (const chunk of res.stream) void chunk;
        end();
        this.metrics.rowsInserted.inc({ table }, rows.length);
        if (attempt > 0) hooks.onStall(false);
        return;
      } catch (err) {
        // Rows the table cannot take are a bug, not an outage: retrying would stall the partition forever.
        if (err instanceof RowBinaryTypeError) throw err;
        this.metrics.insertFailures.inc({ table });
        if (attempt === 0) hooks.onStall(true);
        attempt++;
        const delay = Math.min(this.retry.maxMs, this.retry.minMs * 2 ** Math.min(attempt - 1, 16));
        this.log.warn({ table, token, attempt, delay, err: (err as Error).message }, 'insert failed; consumption paused, retrying');
        await hooks.beforeRetry(attempt, err as Error);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private async encoderFor(table: string, columns: string[]): Promise<TableEncoder> {
    const id = `${table}(${columns.join(',')})`;
    const known = this.encoders.get(id);
    if (known) return known;
    const rs = await this.ch.query({
      query: 'SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {table:String}',
      query_params: { table },
      format: 'JSONEachRow',
    });
    const types = new Map((await rs.json<{ name: string; type: string }>()).map((c) => [c.name, c.type]));
    const missing = columns.filter((c) => !types.has(c));
    if (missing.length) throw new RowBinaryTypeError(`${table} has no column ${missing.join(', ')}`);
    const encoder = {
      sql: `INSERT INTO ${table} (${columns.join(', ')}) FORMAT RowBinary`,
      encode: rowsEncoder(columns.map((name) => ({ name, type: types.get(name)! }))),
    };
    this.encoders.set(id, encoder);
    return encoder;
  }
}
