/**
 * One migrator at a time per database. Several analyzers and the collector start together
 * and all migrate; two running one migration at once fail (the second MODIFY of a column
 * finds it already changed) or double a backfill. ClickHouse has neither locks nor
 * transactions, but creating a table that exists fails, so `CREATE TABLE
 * schema_migrations_lock_<n>` is a mutex: whoever creates the next number holds it.
 *
 * A holder that dies would hold it for ever, so the holder adds a heartbeat row every
 * staleMs / 5, and a waiter that sees no new heartbeat for staleMs takes over by creating the
 * next number. Staleness is judged on the waiter's own clock, never by comparing clocks of
 * two machines. A holder that was only slow finds its table gone when it next beats, and
 * stops before its next statement rather than migrate beside the new holder.
 */
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import type { ClickHouseClient } from '@clickhouse/client';

const PREFIX = 'schema_migrations_lock_';
const lockTable = (generation: number) => `${PREFIX}${generation}`;

export interface MigrationLockOptions {
  /** A holder silent this long is taken for dead. Long statements are fine: the heartbeat runs beside them. */
  staleMs: number;
  /** Called once per holder this migrator waits for. */
  onWait?: (holder: string) => void;
}

function clickhouseCode(err: unknown): string | undefined {
  return (err as { type?: string }).type;
}

async function generations(ch: ClickHouseClient, database: string): Promise<number[]> {
  const rows = await (
    await ch.query({
      query: 'SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {prefix:String})',
      query_params: { db: database, prefix: PREFIX },
      format: 'JSONEachRow',
    })
  ).json<{ name: string }>();
  return rows
    .map((r) => Number(r.name.slice(PREFIX.length)))
    .filter((g) => Number.isInteger(g) && g > 0)
    .sort((a, b) => a - b);
}

/** The holder and a value that changes with every heartbeat; null once the table is gone. */
async function heartbeat(ch: ClickHouseClient, generation: number): Promise<{ holder: string; beat: string } | null> {
  try {
    const [row] = await (
      await ch.query({ query: `SELECT any(holder) AS holder, toString(count()) AS beat FROM ${lockTable(generation)}`, format: 'JSONEachRow' })
    ).json<{ holder: string; beat: string }>();
    return row ?? null;
  } catch (err) {
    if (clickhouseCode(err) === 'UNKNOWN_TABLE') return null;
    throw err;
  }
}

export class MigrationLock {
  private lost: Error | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly ch: ClickHouseClient,
    readonly generation: number,
    readonly holder: string,
    beatMs: number,
  ) {
    this.timer = setInterval(() => {
      this.beat().catch((err: Error) => (this.lost ??= err));
    }, beatMs);
    this.timer.unref();
  }

  async beat(): Promise<void> {
    await this.ch.insert({ table: lockTable(this.generation), values: [{ holder: this.holder }], format: 'JSONEachRow' });
  }

  /** Throws once a heartbeat failed: another migrator may hold the lock now. */
  assertHeld(): void {
    if (this.lost) throw new Error(`lost the migration lock ${lockTable(this.generation)}: ${this.lost.message.split('\n')[0]}`);
  }

  async release(): Promise<void> {
    clearInterval(this.timer);
    await this.ch.command({ query: `DROP TABLE IF EXISTS ${lockTable(this.generation)} SYNC` });
  }
}

export async function acquireMigrationLock(ch: ClickHouseClient, database: string, opts: MigrationLockOptions): Promise<MigrationLock> {
  const holder = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  const pollMs = Math.min(1000, opts.staleMs / 10);
  let watched = null as { generation: number; beat: string; since: number } | null;
  for (;;) {
    const gens = await generations(ch, database);
    const top = gens.at(-1) ?? 0;
    if (top > 0) {
      const seen = await heartbeat(ch, top);
      if (seen === null) continue;
      const newHolder = watched?.generation !== top;
      if (newHolder) opts.onWait?.(seen.holder);
      if (newHolder || watched!.beat !== seen.beat) watched = { generation: top, beat: seen.beat, since: performance.now() };
      if (performance.now() - watched!.since < opts.staleMs) {
        await delay(pollMs);
        continue;
      }
    }
    try {
      await ch.command({
        query: `CREATE TABLE ${lockTable(top + 1)} (at DateTime64(3, 'UTC') DEFAULT now64(3), holder String) ENGINE = MergeTree ORDER BY tuple()`,
      });
    } catch (err) {
      if (clickhouseCode(err) === 'TABLE_ALREADY_EXISTS') continue;
      throw err;
    }
    const lock = new MigrationLock(ch, top + 1, holder, opts.staleMs / 5);
    await lock.beat();
    // The dead holder's table, if any: the lock is the highest number, the rest is litter.
    for (const g of gens) await ch.command({ query: `DROP TABLE IF EXISTS ${lockTable(g)} SYNC` });
    return lock;
  }
}
