import type { Command } from 'commander';
import { apiAction, callApi, fmt, printJson, printTable, queryCommand, type ClientOptions } from './api-client.js';

interface Side { flows: number; rtt_p50_ms: number | null; rtt_p99_ms: number | null; retransmit_rate: number | null; failure_rate: number | null }
interface Services { services: { namespace: string; name: string; inbound: Side | null; outbound: Side | null }[] }

export function topCommand(): Command {
  return queryCommand('top', 'services by inbound traffic with their latency, loss and connect failures (GET /api/v1/services)').action(apiAction(async (o: ClientOptions) => {
    const body = await callApi<Services>(o, '/api/v1/services', {});
    if (o.json) return printJson(body);
    const rows = [...body.services].sort((a, b) => (b.inbound?.flows ?? 0) - (a.inbound?.flows ?? 0));
    printTable(
      ['SERVICE', 'IN FLOWS', 'P50 ms', 'P99 ms', 'RETRANS', 'FAILED', 'OUT FLOWS'],
      rows.map((s) => [
        s.namespace ? `${s.namespace}/${s.name}` : s.name,
        s.inbound?.flows ?? 0,
        fmt.ms(s.inbound?.rtt_p50_ms),
        fmt.ms(s.inbound?.rtt_p99_ms),
        fmt.pct(s.inbound?.retransmit_rate),
        fmt.pct(s.inbound?.failure_rate),
        s.outbound?.flows ?? 0,
      ]),
    );
  }));
}
