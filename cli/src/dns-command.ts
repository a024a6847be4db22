import type { Command } from 'commander';
import { apiAction, callApi, fmt, printJson, printTable, queryCommand, type ClientOptions } from './api-client.js';

interface Group { queries: number; rcodes: Record<string, number>; timeouts: number; error_rate: number | null; latency_p50_ms: number | null; latency_p99_ms: number | null; [key: string]: unknown }

const NAME: Record<string, (g: Group) => string> = {
  server: (g) => `${String(g.server_name) || '-'} ${String(g.server_ip)}`,
  client: (g) => `${String(g.zone)} ${String(g.namespace)}/${String(g.workload)}`,
  name: (g) => String(g.qname),
};

export function dnsCommand(): Command {
  return queryCommand('dns', 'DNS latency, rcode mix and timeouts by server, client or name (GET /api/v1/dns)')
    .option('--by <what>', 'server, client or name', 'server')
    .action(apiAction(async (o: ClientOptions & { by: string }) => {
      const body = await callApi<{ by: string; groups: Group[] }>(o, '/api/v1/dns', { by: o.by });
      if (o.json) return printJson(body);
      printTable(
        [body.by.toUpperCase(), 'QUERIES', 'P50 ms', 'P99 ms', 'ERRORS', 'TIMEOUTS', 'RCODES'],
        body.groups.map((g) => [
          NAME[body.by]!(g),
          g.queries,
          fmt.ms(g.latency_p50_ms),
          fmt.ms(g.latency_p99_ms),
          fmt.pct(g.error_rate),
          g.timeouts,
          Object.entries(g.rcodes).map(([r, n]) => `${r}=${n}`).join(' '),
        ]),
      );
    }));
}
