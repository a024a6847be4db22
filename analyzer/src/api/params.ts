/**
 * Query parameters shared by the endpoints. Every check happens in zod before a handler runs,
 * so a bad value is a 400 naming the parameter and nothing reaches ClickHouse.
 */
import { z } from 'zod';

const RELATIVE = /^-(\d{1,6})(s|m|h|d)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
// RFC 3339 with a mandatory offset: a bare local time would depend on the server's time zone.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$/;
/** Longest range one request may scan; rollups keep 90 days, raw flows 7. */
export const MAX_RANGE_MS = 31 * UNIT_MS.d;

/** `now`, `-15m` style offsets from now, or RFC 3339; null when the text is none of them. */
export function parseTime(text: string, nowMs: number): number | null {
  if (text === 'now') return nowMs;
  const rel = RELATIVE.exec(text);
  if (rel) return nowMs - Number(rel[1]) * UNIT_MS[rel[2] as keyof typeof UNIT_MS];
  const m = RFC3339.exec(text);
  if (!m) return null;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  // Date.parse rolls 2026-02-30 over into March; a field out of its range is a typo, not a date.
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d || h > 23 || mi > 59 || sec > 59) return null;
  if (m[9] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) return null;
  return Date.parse(text);
}

export const timeSpec = z
  .string()
  .max(40)
  .refine((s) => parseTime(s, Date.now()) !== null, { message: 'must be RFC 3339 with an offset (2026-01-02T15:04:05Z), now, or relative like -15m / -2h / -1d' });

export const rangeQuery = z.object({
  from: timeSpec.default('-15m').describe('start: RFC 3339, now, or relative (-15m)'),
  to: timeSpec.default('now').describe('end (exclusive): RFC 3339, now, or relative'),
});

export interface Range {
  fromMs: number;
  toMs: number;
}

/** Resolves both ends against one `now`; the order and length checks live here because they need both. */
export function resolveRange(from: string, to: string, nowMs = Date.now()): Range | string {
  const fromMs = parseTime(from, nowMs)!;
  const toMs = parseTime(to, nowMs)!;
  // ClickHouse DateTime is seconds since 1970 in a UInt32: anything outside cannot be a bound.
  if (fromMs < 0 || toMs >= 2 ** 32 * 1000) return `the range from ${from} to ${to} is outside 1970..2106`;
  if (fromMs >= toMs) return `from (${from}) must be before to (${to})`;
  if (toMs - fromMs > MAX_RANGE_MS) return `the range from ${from} to ${to} is longer than ${MAX_RANGE_MS / UNIT_MS.d} days`;
  return { fromMs, toMs };
}

/** Kubernetes names (RFC 1123 labels, at most 253 characters for workloads). */
export const k8sName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Kubernetes name: lowercase letters, digits, - and .');

export const zoneName = z
  .string()
  .max(128)
  .regex(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'must be a zone name: letters, digits, -, _ and .');

/** `namespace/name` of a service or workload. */
export const serviceRef = z
  .string()
  .max(507)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be namespace/name (Kubernetes names)');

export function splitRef(ref: string): { namespace: string; name: string } {
  const [namespace, name] = ref.split('/') as [string, string];
  return { namespace, name };
}

/** ClickHouse DateTime parameter text (seconds; rollups are per minute). */
export function chSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}
