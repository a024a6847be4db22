/**
 * "Which pod had IP X at time T?" Pod IPs are reused, so the answer is the binding whose
 * interval [valid_from, valid_to) contains T. Should intervals overlap (the old pod's
 * deletion was observed after the new pod already had the IP), the later one wins: an IP
 * is only handed to a new pod after the old one let go of it. collector/README.md shows the
 * same query for SQL users.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { chTime, type BindingOwner } from './sinks/clickhouse-rows.js';

export const IP_OWNER_SQL = `
  SELECT kind, uid, namespace, name, node, zone, workload_name,
         toUnixTimestamp64Milli(valid_from) AS from_ms,
         if(valid_to IS NULL, NULL, toUnixTimestamp64Milli(assumeNotNull(valid_to))) AS to_ms
  FROM ip_bindings FINAL
  WHERE ip = {ip:String} AND kind IN {kinds:Array(String)}
    AND valid_from <= {at:DateTime64(3, 'UTC')} AND (valid_to IS NULL OR valid_to > {at:DateTime64(3, 'UTC')})
  ORDER BY valid_from DESC
  LIMIT 1`;

/** The binding's owner columns, with its interval as epoch milliseconds. */
export interface IpOwner extends BindingOwner {
  from_ms: number;
  to_ms: number | null;
}

export async function ipOwnerAt(
  ch: ClickHouseClient,
  ip: string,
  atMs: number,
  kinds: readonly string[] = ['pod'],
): Promise<IpOwner | null> {
  const rs = await ch.query({
    query: IP_OWNER_SQL,
    query_params: { ip, kinds, at: chTime(atMs) },
    format: 'JSONEachRow',
    // Integers as JSON numbers, not quoted strings.
    clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
  });
  const [row] = await rs.json<IpOwner>();
  return row ?? null;
}
