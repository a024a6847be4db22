/**
 * Applies schemas/migrations/NNNN_name.sql in order, each once. Applied migrations are
 * remembered with a checksum: editing one after it shipped is refused (write a new one),
 * because a database that silently differs from the files is worse than a failed start.
 * Migrators that start together take turns (migration-lock.ts).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { acquireMigrationLock } from './migration-lock.js';

export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'migrations');

export interface Migration {
  version: number;
  name: string;
  checksum: string;
  statements: string[];
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/** Splits on semicolons that end a line; comment lines are dropped. */
function statementsOf(sql: string): string[] {
  const body = sql
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('--'))
    .join('\n');
  return body
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m) throw new MigrationError(`${file} in ${dir} is not named NNNN_name.sql`);
    const sql = readFileSync(join(dir, file), 'utf8');
    const version = Number(m[1]);
    if (out.some((x) => x.version === version)) throw new MigrationError(`two migrations numbered ${m[1]} in ${dir}`);
    out.push({ version, name: file, checksum: createHash('sha256').update(sql).digest('hex'), statements: statementsOf(sql) });
  }
  return out;
}

export interface ClickHouseTarget {
  url: string;
  username?: string;
  password?: string;
  database: string;
}

/** Settings we rely on, set explicitly: clickhouse-local defaults differ from a server's. */
export const SYNC_INSERT_SETTINGS = { async_insert: 0, wait_end_of_query: 1 } as const;

/**
 * Failures reach the caller as errors; the client's own logger would print each one a second
 * time, and print the ones the caller expects (a taken migration lock) as ERRORs.
 */
export function clickhouseClient(t: ClickHouseTarget): ClickHouseClient {
  return createClient({
    log: { level: ClickHouseLogLevel.OFF },
    url: t.url,
    username: t.username ?? 'default',
    password: t.password ?? '',
    database: t.database,
    clickhouse_settings: SYNC_INSERT_SETTINGS,
  });
}

export interface MigrationResult {
  applied: string[];
  alreadyApplied: string[];
}

export interface MigrateOptions {
  /** Apply only the migrations numbered below it (tests of an upgrade set up the older schema so). */
  before?: number;
  /** How long a migrator that holds the lock may fall silent before another takes over (see migration-lock.ts). */
  lockStaleMs?: number;
  onLockWait?: (holder: string) => void;
}

async function appliedMigrations(ch: ClickHouseClient): Promise<Map<number, { name: string; checksum: string }>> {
  const rows = await (
    await ch.query({ query: 'SELECT version, name, checksum FROM schema_migrations FINAL', format: 'JSONEachRow' })
  ).json<{ version: number; name: string; checksum: string }>();
  return new Map(rows.map((r) => [Number(r.version), r]));
}

/** The migrations still to apply; refuses a database whose applied migrations differ from the files. */
function pending(migrations: Migration[], done: Map<number, { name: string; checksum: string }>): Migration[] {
  return migrations.filter((m) => {
    const prev = done.get(m.version);
    if (prev && prev.checksum !== m.checksum) {
      throw new MigrationError(`${m.name} changed after it was applied as ${prev.name}; add a new migration instead`);
    }
    return !prev;
  });
}

export async function migrate(target: ClickHouseTarget, dir = MIGRATIONS_DIR, opts: MigrateOptions = {}): Promise<MigrationResult> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(target.database)) throw new MigrationError(`bad database name ${JSON.stringify(target.database)}`);
  const migrations = loadMigrations(dir).filter((m) => m.version < (opts.before ?? Infinity));
  const admin = clickhouseClient({ ...target, database: 'default' });
  try {
    await admin.command({ query: `CREATE DATABASE IF NOT EXISTS ${target.database}` });
  } finally {
    await admin.close();
  }
  const ch = clickhouseClient(target);
  try {
    await ch.command({
      query: `CREATE TABLE IF NOT EXISTS schema_migrations
              (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
              ENGINE = ReplacingMergeTree(applied_at) ORDER BY version`,
    });
    const all = migrations.map((m) => m.name);
    // A restart of an up-to-date deployment, the usual case, takes no lock.
    if (pending(migrations, await appliedMigrations(ch)).length === 0) return { applied: [], alreadyApplied: all };
    const lock = await acquireMigrationLock(ch, target.database, { staleMs: opts.lockStaleMs ?? 30_000, onWait: opts.onLockWait });
    try {
      // Read again under the lock: whoever held it before may have applied some.
      const todo = pending(migrations, await appliedMigrations(ch));
      for (const m of todo) {
        for (const statement of m.statements) {
          lock.assertHeld();
          try {
            await ch.command({ query: statement });
          } catch (err) {
            throw new MigrationError(`${m.name}: ${(err as Error).message.split('\n')[0]}`);
          }
        }
        lock.assertHeld();
        await ch.insert({
          table: 'schema_migrations',
          values: [{ version: m.version, name: m.name, checksum: m.checksum }],
          format: 'JSONEachRow',
        });
      }
      const applied = todo.map((m) => m.name);
      return { applied, alreadyApplied: all.filter((n) => !applied.includes(n)) };
    } finally {
      await lock.release();
    }
  } finally {
    await ch.close();
  }
}
