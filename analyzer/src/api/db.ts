/** The API's only way to ClickHouse: parameterized queries ({name:Type}), never user text in SQL. */
import type { ClickHouseClient } from '@clickhouse/client';

export type Params = Record<string, string | number | string[]>;

export async function select<T>(ch: ClickHouseClient, query: string, params: Params): Promise<T[]> {
  const rs = await ch.query({
    query,
    query_params: params,
    format: 'JSONEachRow',
    // Counters as JSON numbers, not strings; histograms and sums stay far below 2^53.
    clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
  });
  return rs.json<T>();
}
