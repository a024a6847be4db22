/**
 * Rollups created after data existed (migration 0007) hold every row from `covered_from` on
 * and nothing reliable before it (README.md, "Rollups that start at their migration"). A range
 * is cut at that minute: the part before it is answered as before the rollup existed (raw
 * rows or the older rollups), the part from it on by the new rollup, and the parts add up.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { select } from './db.js';
import type { Range } from './params.js';

export type CoveredRollup = 'flows_by_edge' | 'dns_by_name';

/** Seconds (a whole minute) from which `rollup` holds every row. */
export type Coverage = (rollup: CoveredRollup) => Promise<number>;

/** How long a read of rollup_coverage is reused: covered_from only moves back (a backfill), and a stale later value just reads more raw rows. */
const REFRESH_MS = 60_000;

export function coverageOf(ch: ClickHouseClient): Coverage {
  let cached: { at: number; rows: Promise<Map<string, number>> } | null = null;
  return async (rollup) => {
    if (cached === null || Date.now() - cached.at > REFRESH_MS) {
      const rows = select<{ rollup: string; covered_from: number }>(ch, 'SELECT rollup, toUnixTimestamp(covered_from) AS covered_from FROM rollup_coverage FINAL', {}).then(
        (rs) => new Map(rs.map((r) => [r.rollup, Number(r.covered_from)])),
      );
      cached = { at: Date.now(), rows };
      // A failed read is not cached: the next request asks again.
      rows.catch(() => {
        if (cached?.rows === rows) cached = null;
      });
    }
    const covered = (await cached.rows).get(rollup);
    if (covered === undefined) throw new Error(`rollup_coverage has no row for ${rollup} (migration 0007 not applied?)`);
    return covered;
  };
}

/** `range` cut at `coveredS`: the part before (answered without the rollup) and the part from it on; either may be absent. */
export function splitAt(range: Range, coveredS: number): { before: Range | null; after: Range | null } {
  const c = coveredS * 1000;
  // The rollup parts include the first minute whole, so a range starting inside the covered minute belongs after it.
  const fromMinute = Math.floor(range.fromMs / 60_000) * 60_000;
  if (fromMinute >= c) return { before: null, after: range };
  if (range.toMs <= c) return { before: range, after: null };
  return { before: { fromMs: range.fromMs, toMs: c }, after: { fromMs: c, toMs: range.toMs } };
}
