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
import { BufferPool, ByteWriter, RowBinaryTypeError, rowEncoder, type RowEncoder } from './row-binary.js';

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
  encode: RowEncoder;
}

/**
 * The rows of one table for one insert, encoded as each is added: a row object lives only
 * for its own `add`, so a unit of work holds bytes (what the insert sends anyway) instead of
 * tens of thousands of objects the GC would copy until the insert.
 */
export class RowBatch {
  readonly out: ByteWriter;
  rows = 0;
  private encoder: TableEncoder | null = null;

  constructor(
    readonly table: string,
    private readonly encoderFor: (columns: string[]) => TableEncoder,
    pool: BufferPool,
  ) {
    this.out = new ByteWriter(pool.blockBytes, pool);
  }

  add(row: Record<string, unknown>): void {
    // Every row a table is given has the same properties: the first one names the columns.
    this.encoder ??= this.encoderFor(Object.keys(row));
    this.encoder.encode(this.out, row);
    this.rows++;
  }

  get sql(): string {
    return this.encoder!.sql;
  }
}

/** The batches of one unit of work, by table, in the order their first rows came. */
export class UnitRows {
  private readonly batches = new Map<string, RowBatch>();

  constructor(private readonly sink: ClickHouseSink) {}

  add(table: string, row: Record<string, unknown>): void {
    let b = this.batches.get(table);
    if (!b) this.batches.set(table, (b = this.sink.batch(table)));
    b.add(row);
  }

  get size(): number {
    return this.batches.size;
  }

  values(): IterableIterator<RowBatch> {
    return this.batches.values();
  }
}

export class ClickHouseSink {
  /** Column types by table, from `system.columns` (see `load`). */
  private readonly types = new Map<string, Map<string, string>>();
  /** By table and column list: built once from the table's own column types. */
  private readonly encoders = new Map<string, TableEncoder>();
  /**
   * Where every batch's bytes are written: 256 KiB blocks (a small unit's batch takes one),
   * back in the pool when the insert is acknowledged; up to 64 (16 MiB) kept between units.
   */
  private readonly pool = new BufferPool(256 * 1024, 64);

  constructor(
    private readonly ch: ClickHouseClient,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly retry: { minMs: number; maxMs: number },
  ) {}

  /**
   * Reads the column types of every table of the database, so that batches encode rows as
   * they come, synchronously. Called once the migrations ran; a table made later needs another call.
   */
  async load(): Promise<void> {
    const rs = await this.ch.query({
      query: 'SELECT table, name, type FROM system.columns WHERE database = currentDatabase()',
      format: 'JSONEachRow',
    });
    this.types.clear();
    this.encoders.clear();
    for (const c of await rs.json<{ table: string; name: string; type: string }>()) {
      let t = this.types.get(c.table);
      if (!t) this.types.set(c.table, (t = new Map()));
      t.set(c.name, c.type);
    }
  }

  batch(table: string): RowBatch {
    return new RowBatch(table, (columns) => this.encoderFor(table, columns), this.pool);
  }

  async insert(batch: RowBatch, token: string, hooks: RetryHooks): Promise<void> {
    const { table } = batch;
    // Encoded once: a retry during an outage resends the same bytes.
    const body = batch.out.chunks();
    let attempt = 0;
    for (;;) {
      const end = this.metrics.insertSeconds.startTimer({ table });
      try {
        const res = await this.ch.exec({ query: batch.sql, values: Readable.from(body, { objectMode: false }), clickhouse_settings: dedupSettings(token) });
        // The answer to an INSERT is empty; reading it to the end hands the socket back to the pool.
        for await (const chunk of res.stream) void chunk;
        end();
        // Acknowledged: the server has read the whole body, the socket holds none of it.
        batch.out.release();
        this.metrics.rowsInserted.inc({ table }, batch.rows);
        if (attempt > 0) hooks.onStall(false);
        return;
      } catch (err) {
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

  /** Rows a table cannot take are a bug, not an outage: this throws at the first such row instead of an insert retrying forever. */
  private encoderFor(table: string, columns: string[]): TableEncoder {
    const id = `${table}(${columns.join(',')})`;
    const known = this.encoders.get(id);
    if (known) return known;
    const types = this.types.get(table);
    if (!types) throw new RowBinaryTypeError(`no table ${table} (or its column types were not loaded)`);
    const missing = columns.filter((c) => !types.has(c));
    if (missing.length) throw new RowBinaryTypeError(`${table} has no column ${missing.join(', ')}`);
    const encoder = {
      sql: `INSERT INTO ${table} (${columns.join(', ')}) FORMAT RowBinary`,
      encode: rowEncoder(columns.map((name) => ({ name, type: types.get(name)! }))),
    };
    this.encoders.set(id, encoder);
    return encoder;
  }
}
