import type { Command } from 'commander';
import { apiAction, callApi, fmt, printJson, printTable, queryCommand, type ClientOptions } from './api-client.js';

interface Finding {
  rank: number;
  symptom: string;
  metric: string;
  baseline: number | null;
  incident: number;
  zone_pairs: { src_zone: string; dst_zone: string }[];
  scope: string;
  nodes: string[];
  services: string[];
  dns_server: { ip: string; name: string } | null;
}

const value = (metric: string, v: number | null) => (metric.endsWith('_ms') ? `${fmt.ms(v)} ms` : fmt.pct(v));

export function triageCommand(): Command {
  return queryCommand('triage', 'what got worse in and across a zone against a baseline, ranked (GET /api/v1/triage)')
    .requiredOption('--zone <zone>', 'the zone to triage')
    .option('--baseline-from <time>', 'baseline start (default: as long as the incident window, just before it)')
    .option('--baseline-to <time>', 'baseline end (needs --baseline-from)')
    .action(apiAction(async (o: ClientOptions & { zone: string; baselineFrom?: string; baselineTo?: string }) => {
      const body = await callApi<{ findings: Finding[] }>(o, '/api/v1/triage', { zone: o.zone, baseline_from: o.baselineFrom, baseline_to: o.baselineTo });
      if (o.json) return printJson(body);
      if (body.findings.length === 0) {
        process.stdout.write(`nothing got worse in or across ${o.zone}\n`);
        return;
      }
      printTable(
        ['#', 'SYMPTOM', 'WHERE', 'SCOPE', 'BASELINE', 'NOW', 'SERVICES'],
        body.findings.map((f) => [
          f.rank,
          f.symptom,
          f.dns_server ? `dns ${f.dns_server.name || f.dns_server.ip}` : f.zone_pairs.map((p) => `${p.src_zone}->${p.dst_zone}`).join(','),
          f.scope === 'nodes' ? `nodes ${f.nodes.join(',')}` : 'zone-wide',
          value(f.metric, f.baseline),
          value(f.metric, f.incident),
          f.services.join(','),
        ]),
      );
    }));
}
