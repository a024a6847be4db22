import { join } from 'node:path';
import { Command, Option } from 'commander';
import { destination, pino } from 'pino';
import { loadAgentConfig, startAgent } from '@meshlens/agent';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { signalled, stopWithin } from './signals.js';

/** The agent's own stop flushes for at most 3 s (then spools); this is the net under it, inside the chart's 15 s. */
const STOP_GRACE_MS = 10_000;

const collect = (v: string, prev: string[]) => [...prev, v];

/** Brokers from the environment or the embedded infra, if either is there: then Kafka is the default output. */
function defaultBrokers(): string[] | null {
  try {
    return connectionsFor(localInfraConfig()).kafkaBrokers;
  } catch {
    return null;
  }
}

export function agentCommand(): Command {
  return new Command('agent')
    .description('run the per-host agent: eBPF probes -> per-socket interval records -> Kafka (needs root)')
    .option('--config <file>', 'YAML config file (flags and MESHLENS_AGENT_* env override it)')
    .option('--node <name>', 'node name recorded on every record (default: $NODE_NAME or the hostname)')
    .option('--slot-ms <ms>', 'interval between sweeps, aligned to wall-clock multiples', (v) => Number(v))
    .addOption(new Option('--output <where>', 'kafka (default when brokers are configured or the embedded infra is up) or stdout (JSON lines)').choices(['kafka', 'stdout']))
    .option('--brokers <list>', 'Kafka bootstrap brokers, comma-separated')
    .option('--netns <name-or-path>', 'watch only this network namespace (repeatable); default: the whole host', collect, [])
    .option('--spool-dir <dir>', 'where records wait while Kafka is away')
    .option('--spool-max-bytes <n>', 'spool size limit; beyond it the oldest records are dropped and counted', (v) => Number(v))
    .option('--no-dns', 'no DNS capture: its per-packet programs are not loaded (also MESHLENS_AGENT_DNS=false)')
    .option('--metrics-port <port>', 'port for /metrics and /healthz on 127.0.0.1 (0: off)', (v) => Number(v))
    .option('--log-level <level>', 'trace, debug, info, warn, error or silent')
    .action(async (o: Record<string, unknown>) => {
      const brokers = typeof o.brokers === 'string' ? o.brokers.split(',') : undefined;
      const embedded = brokers ? null : defaultBrokers();
      const infra = localInfraConfig();
      const cfg = loadAgentConfig({
        file: o.config as string | undefined,
        defaults: {
          output: embedded || process.env.MESHLENS_KAFKA_BROKERS ? 'kafka' : 'stdout',
          kafka: embedded ? { brokers: embedded } : undefined,
          spool: { dir: join(infra.stateDir, 'agent-spool'), maxBytes: 256 * 1024 * 1024 },
        },
        flags: {
          node: o.node,
          slotMs: o.slotMs,
          output: o.output ?? (brokers ? 'kafka' : undefined),
          kafka: brokers ? { brokers } : undefined,
          netns: (o.netns as string[]).length ? o.netns : undefined,
          spool: { dir: o.spoolDir, maxBytes: o.spoolMaxBytes },
          // commander sets dns to true when --no-dns is absent: only its presence is a flag.
          dns: o.dns === false ? false : undefined,
          metricsPort: o.metricsPort,
          logLevel: o.logLevel,
        },
      });
      // Logs go to stderr so that --output stdout stays pure JSON lines.
      const log = pino({ level: cfg.logLevel }, destination(2));
      const stopping = signalled();
      const agent = await startAgent(cfg, log);
      await stopping;
      await stopWithin('agent', STOP_GRACE_MS, () => agent.stop());
      log.info({ produced: agent.produced }, 'agent stopped');
    });
}
