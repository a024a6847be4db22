/**
 * Which rollup answers a window (the rule is written down in README.md, "Which rollup answers").
 * Every rollup family exists at up to three resolutions with the same columns and the same
 * histogram sums (schemas/migrations 0003, 0005), so a window can be cut into parts that each
 * read the coarsest table covering them exactly, and the parts simply add up:
 * - short windows, recent enough: the per-second tier alone, exact to the agent slot;
 * - otherwise whole hours from the hourly tier and the minutes at both ends from the minute
 *   tier, exact to the minute (the first minute of the range is included whole).
 * A source is a FROM item whose rows carry `start` (the start of their second, minute or hour).
 */
import { chSeconds, type Range } from './params.js';
import type { Params } from './db.js';

export type Tier = '1s' | '1m' | '1h';
export const ALL_TIERS: readonly Tier[] = ['1s', '1m', '1h'];
export type Family = 'service' | 'zone' | 'node' | 'dns' | 'edge' | 'dns_name';

/** Windows shorter than this read the per-second tier: there a minute of dilution would hide an incident. */
export const FINE_MAX_MS = 10 * 60_000;
/** The per-second tier keeps 3 hours (TTL, whole hourly parts); a window must start within this to use it. */
export const FINE_KEPT_MS = 2 * 3_600_000;

const HOUR_S = 3600;
const MINUTE_S = 60;

/**
 * The per-second tier exists for node pairs only: it has every dimension the other families group by.
 * Service pair by pod pair (edge) and DNS by name (0007) have no per-second tier, and hold time
 * from their migration on only (coverage.ts).
 */
const TABLES: Record<Family, { '1s'?: string; '1m': string; '1h': string }> = {
  service: { '1s': 'flows_by_node_1s', '1m': 'flows_by_service_1m', '1h': 'flows_by_service_1h' },
  zone: { '1s': 'flows_by_node_1s', '1m': 'flows_by_zone_1m', '1h': 'flows_by_zone_1h' },
  node: { '1s': 'flows_by_node_1s', '1m': 'flows_by_node_1m', '1h': 'flows_by_node_1h' },
  dns: { '1s': 'dns_by_server_1s', '1m': 'dns_by_server_1m', '1h': 'dns_by_server_1h' },
  edge: { '1m': 'flows_by_edge_1m', '1h': 'flows_by_edge_1h' },
  dns_name: { '1m': 'dns_by_name_1m', '1h': 'dns_by_name_1h' },
};
const TIME_COLUMN: Record<Tier, string> = { '1s': 'second', '1m': 'minute', '1h': 'hour' };

export interface SourceOptions {
  /** The tiers this API may read besides '1m', which is always read; the bench passes ['1m'] for its same-run baseline. */
  tiers: readonly Tier[];
  /** The coarsest resolution the caller can use (a time series step); whole hours only when this is a multiple of them. */
  stepS?: number;
  nowMs?: number;
}

export interface Source {
  /** A parenthesized subquery, to follow FROM. */
  sql: string;
  /** Its time bounds as query parameters, named with the given prefix. */
  params: Params;
  /** The finest tier it reads, for the answer's `resolution_ms`. */
  resolutionMs: number;
}

const at = (name: string) => `toDateTime({${name}:UInt32}, 'UTC')`;

function part(table: string, tier: Tier, cond: string, where: string): string {
  const t = TIME_COLUMN[tier];
  return `SELECT ${t} AS start, * EXCEPT (${t}) FROM ${table} WHERE (${cond})${where ? ` AND (${where})` : ''}`;
}

/** Whether the per-second tier answers `range` (rule 1 in README.md), for families that have one. */
export function isFine(range: Range, tiers: readonly Tier[], nowMs = Date.now()): boolean {
  return tiers.includes('1s') && range.toMs - range.fromMs < FINE_MAX_MS && range.fromMs >= nowMs - FINE_KEPT_MS;
}

/**
 * Rows of `family` in `range`, filtered by `where` inside every part (so each table's primary
 * key and minmax index see it). `p` prefixes the parameter names, so two sources can share a query.
 */
export function rollupSource(family: Family, range: Range, where: string, opts: SourceOptions, p = 'r'): Source {
  const tables = TABLES[family];
  const from = chSeconds(range.fromMs);
  const to = Math.ceil(range.toMs / 1000);
  if (tables['1s'] && isFine(range, opts.tiers, opts.nowMs)) {
    return {
      sql: `(${part(tables['1s'], '1s', `second >= ${at(`${p}_from`)} AND second < ${at(`${p}_to`)}`, where)})`,
      params: { [`${p}_from`]: from, [`${p}_to`]: to },
      resolutionMs: 1000,
    };
  }
  const fromMinute = from - (from % MINUTE_S);
  const h1 = Math.ceil(fromMinute / HOUR_S) * HOUR_S;
  const h2 = Math.floor(to / HOUR_S) * HOUR_S;
  const hours = opts.tiers.includes('1h') && h2 > h1 && (opts.stepS ?? HOUR_S) % HOUR_S === 0;
  const params = { [`${p}_from`]: fromMinute, [`${p}_to`]: to, [`${p}_h1`]: h1, [`${p}_h2`]: h2 };
  if (!hours) {
    return { sql: `(${part(tables['1m'], '1m', `minute >= ${at(`${p}_from`)} AND minute < ${at(`${p}_to`)}`, where)})`, params, resolutionMs: 60_000 };
  }
  const minutes = `(minute >= ${at(`${p}_from`)} AND minute < ${at(`${p}_h1`)}) OR (minute >= ${at(`${p}_h2`)} AND minute < ${at(`${p}_to`)})`;
  return {
    sql: `(${part(tables['1h'], '1h', `hour >= ${at(`${p}_h1`)} AND hour < ${at(`${p}_h2`)}`, where)} UNION ALL ${part(tables['1m'], '1m', minutes, where)})`,
    params,
    resolutionMs: 60_000,
  };
}
