import type { Command } from 'commander';
import { apiAction, callApi, fmt, printJson, printTable, queryCommand, type ClientOptions } from './api-client.js';

export function matrixCommand(): Command {
  return queryCommand('matrix', 'zone x zone matrix, client zones down, server zones across (GET /api/v1/zones/matrix)')
    .option('--metric <metric>', 'rtt_p10, rtt_p50, rtt_p99 (ms), retransmit_rate, failure_rate', 'rtt_p50')
    .action(apiAction(async (o: ClientOptions & { metric: string }) => {
      const body = await callApi<{ metric: string; zones: string[]; matrix: (number | null)[][] }>(o, '/api/v1/zones/matrix', { metric: o.metric });
      if (o.json) return printJson(body);
      const cell = body.metric.startsWith('rtt') ? fmt.ms : fmt.pct;
      printTable([`${body.metric}:from\\to`, ...body.zones], body.zones.map((z, i) => [z, ...body.matrix[i]!.map(cell)]));
    }));
}
