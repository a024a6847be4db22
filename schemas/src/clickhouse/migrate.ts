/**
 * Applies schemas/migrations/NNNN_name.sql in order, each once. Applied migrations are
 * remembered with a checksum: editing one after it shipped is refused (write a new one),
 * because a database that silently differs from the files is worse than a failed start.
 * Statements use IF NOT EXISTS, so two analyzers starting at once are harmless.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, type ClickHouseClient } from '@clickhouse/client';

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

export function clickhouseClient(t: ClickHouseTarget): ClickHouseClient {
  return createClient({
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

/** `before`: apply only the migrations numbered below it (tests of an upgrade set up the older schema so). */
export async function migrate(target: ClickHouseTarget, dir = MIGRATIONS_DIR, { before = Infinity } = {}): Promise<MigrationResult> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(target.database)) throw new MigrationError(`bad database name ${JSON.stringify(target.database)}`);
  const migrations = loadMigrations(dir).filter((m) => m.version < before);
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
    const rows = await (
      await ch.query({ query: 'SELECT version, name, checksum FROM schema_migrations FINAL', format: 'JSONEachRow' })
    ).json<{ version: number; name: string; checksum: string }>();
    const done = new Map(rows.map((r) => [Number(r.version), r]));
    const result: MigrationResult = { applied: [], alreadyApplied: [] };
    for (const m of migrations) {
      const prev = done.get(m.version);
      if (prev) {
        if (prev.checksum !== m.checksum) {
          throw new MigrationError(`${m.name} changed after it was applied as ${prev.name}; add a new migration instead`);
        }
        result.alreadyApplied.push(m.name);
        continue;
      }
      for (const statement of m.statements) {
        try {
          await ch.command({ query: statement });
        } catch (err) {
          throw new MigrationError(`${m.name}: ${(err as Error).message.split('\n')[0]}`);
        }
      }
      await ch.insert({
        table: 'schema_migrations',
        values: [{ version: m.version, name: m.name, checksum: m.checksum }],
        format: 'JSONEachRow',
      });
      result.applied.push(m.name);
    }
    return result;
  } finally {
    await ch.close();
  }
}
