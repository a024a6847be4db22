import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { connectionsFor, infraDown, infraStatus, infraUp, localInfraConfig } from '@meshlens/deploy/local';
import { DemoLab, describeIncident, injectIncident, INCIDENT_KINDS, NAMES, ZONE_KEYS, type IncidentKind } from '@meshlens/e2e/demo';
import { startDemoStack, type DemoStack } from './demo-stack.js';
import { runLiveView } from './live-view.js';

function positive(v: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError('must be a positive number');
  return n;
}

/**
 * A lab cluster (three zones, six nodes, services, DNS, a service IP) with steady traffic,
 * watched by the whole product; optionally breaks something after a baseline. Ctrl-C stops
 * the processes it started (by PID) and removes the lab.
 */
export function demoCommand(): Command {
  return new Command('demo')
    .description('a lab cluster in network namespaces (root): 3 zones x 2 nodes, services, DNS, a service IP, steady traffic, one agent per node, collector, analyzer, API and a live summary')
    .option('--slot-ms <ms>', 'agent interval', positive, 5000)
    .option('--rate <connections/s>', 'new connections per second over all pods', positive, 24)
    .addOption(new Option('--incident <kind>', `inject after the baseline: ${INCIDENT_KINDS.join(', ')} (repeatable)`).argParser((v: string, prev: IncidentKind[] = []) => {
      if (!(INCIDENT_KINDS as readonly string[]).includes(v)) throw new InvalidArgumentError(`one of ${INCIDENT_KINDS.join(', ')}`);
      return [...prev, v as IncidentKind];
    }))
    .option('--baseline-s <s>', 'seconds of healthy traffic before the incidents', positive, 120)
    .option('--prefix <name>', 'network lab prefix (namespaces ml-<prefix>-*)', 'demo')
    .option('--api-port <port>', 'API port (default: any free one)', positive)
    .action(async (o: { slotMs: number; rate: number; incident?: IncidentKind[]; baselineS: number; prefix: string; apiPort?: number }) => {
      const cfg = localInfraConfig();
      // Infrastructure that was already there (external, or an earlier `infra up`) is left running.
      const ours = !(process.env.MESHLENS_KAFKA_BROKERS && process.env.MESHLENS_CLICKHOUSE_URL) && !(await infraStatus(cfg)).every((s) => s.answers);
      if (ours) await infraUp(cfg);
      const conn = connectionsFor(cfg);
      let demo: DemoLab | undefined;
      let stack: DemoStack | undefined;
      let stopping: Promise<void> | null = null;
      const stop = () =>
        (stopping ??= (async () => {
          await stack?.stop();
          await demo?.destroy();
          if (ours) await infraDown(cfg);
        })());
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
      const timers: NodeJS.Timeout[] = [];
      try {
        process.stdout.write(`building lab ${o.prefix} ...\n`);
        demo = await DemoLab.create({ prefix: o.prefix });
        stack = await startDemoStack(demo, { slotMs: o.slotMs, dir: join(cfg.stateDir, 'demo'), apiPort: o.apiPort });
      } catch (err) {
        await stop();
        throw err;
      }
      if (stopping) return;
      demo.setRate(o.rate);
      const n = NAMES;
      const zones = ZONE_KEYS.map((z) => n.zone(z));
      for (const r of stack.running) process.stdout.write(`${r.spec.name.padEnd(10)} pid ${r.child.pid}, log ${r.logFile}\n`);
      process.stdout.write(
        [
          '',
          `API        ${stack.apiUrl} (token ${stack.token}; docs ${stack.apiUrl}/docs)`,
          `kafka      ${conn.kafkaBrokers.join(',')}`,
          `clickhouse ${conn.clickhouseUrl} (database meshlens)`,
          `zones      ${zones.join(', ')}; services in namespace ${n.namespace}`,
          `try        MESHLENS_API_URL=${stack.apiUrl} MESHLENS_API_TOKEN=${stack.token} pnpm meshlens triage --zone ${zones[0]}`,
          '',
        ].join('\n'),
      );
      for (const kind of o.incident ?? []) {
        const lab = demo;
        timers.push(
          setTimeout(() => {
            injectIncident(lab, kind).then(
              () => process.stdout.write(`\nincident injected: ${describeIncident(kind)}\n`),
              (err: Error) => process.stderr.write(`incident ${kind} failed: ${err.message}\n`),
            );
          }, o.baselineS * 1000),
        );
      }
      await runLiveView(conn, o.slotMs, () => stopping !== null, `API ${stack.apiUrl} (token ${stack.token})\n`);
      for (const t of timers) clearTimeout(t);
      await stop();
      process.stdout.write('stopped\n');
    });
}
