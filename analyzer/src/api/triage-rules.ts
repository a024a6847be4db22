/**
 * When is a window worse than its baseline, and which nodes explain it. Pure functions over
 * aggregates, so the rules are tested without ClickHouse and the route stays a query + a call.
 */
import { addAggs, failureRate, retransmitRate, rttQuantileMs, type Agg } from './health.js';

/**
 * A change counts when it is both relative (at least `ratio` times the baseline) and absolute
 * (at least `floor` worse; a missing baseline counts as zero): jitter on tiny values and a
 * constant small background both stay quiet.
 */
export const RULES = {
  latency: { metric: 'rtt_p50_ms', ratio: 1.5, floor: 0.5, value: (a: Agg) => rttQuantileMs(a, 0.5) },
  loss: { metric: 'retransmit_rate', ratio: 2, floor: 0.01, value: retransmitRate },
  connectivity: { metric: 'failure_rate', ratio: 2, floor: 0.05, value: failureRate },
} as const;

export type TcpSymptom = keyof typeof RULES;

/** How much worse, as (incident - baseline) / baseline with the floor as the least baseline; null when not degraded. */
export function worsening(incident: number | null, baseline: number | null, rule: { ratio: number; floor: number }): number | null {
  if (incident === null) return null;
  const base = baseline ?? 0;
  if (incident - base < rule.floor || incident < base * rule.ratio) return null;
  return (incident - base) / Math.max(base, rule.floor);
}

/** Items grouped by a key, in first-seen order. */
export function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const t of items) {
    const k = key(t);
    const g = out.get(k);
    if (g) g.push(t);
    else out.set(k, [t]);
  }
  return out;
}

export interface Cell {
  clientNode: string;
  serverNode: string;
  agg: Agg;
}

/**
 * Nodes whose traffic explains a degradation: remove the worst node (by the symptom's metric
 * over the cells it takes part in) until what is left has traffic and is healthy, at most
 * half the nodes. Null when no such small set exists: the problem is zone-wide.
 */
export function confiningNodes(cells: Cell[], baseline: Agg, symptom: TcpSymptom): string[] | null {
  const rule = RULES[symptom];
  const nodes = new Set(cells.flatMap((c) => [c.clientNode, c.serverNode]).filter((n) => n !== ''));
  const limit = Math.floor(nodes.size / 2);
  const base = rule.value(baseline);
  const removed: string[] = [];
  let rest = cells;
  while (removed.length < limit) {
    const score = new Map([...nodes].filter((n) => !removed.includes(n)).map((n) => [n, rule.value(addAggs(rest.filter((c) => c.clientNode === n || c.serverNode === n).map((c) => c.agg))) ?? -1]));
    const worst = [...score].sort(([x, sx], [y, sy]) => sy - sx || x.localeCompare(y))[0]![0];
    removed.push(worst);
    rest = rest.filter((c) => c.clientNode !== worst && c.serverNode !== worst);
    if (rest.length === 0) return null;
    const left = rule.value(addAggs(rest.map((c) => c.agg)));
    if (left !== null && worsening(left, base, rule) === null) return removed.sort();
  }
  return null;
}
