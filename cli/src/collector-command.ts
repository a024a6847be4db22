import { Command, InvalidArgumentError, Option } from 'commander';
import { Collector, DEFAULT_DATABASE, DEFAULT_TOPIC, InventoryError, InventorySource, kubeConfigFrom, type SourceConfig } from '@meshlens/collector';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { kafkaSecurityFromEnv, kafkaSecuritySchema } from '@meshlens/schemas';
import { signalled, stopWithin } from './signals.js';

/** Its own stop gives pending metadata 10 s; this is the net under it (a start publishes the current state again). */
const STOP_GRACE_MS = 20_000;

interface Options {
  kubeconfig?: string;
  inventory?: string;
  topic: string;
  partitions: number;
  database: string;
  listen: { host: string; port: number };
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function hostPort(v: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(v);
  if (!m || Number(m[2]) > 65535) throw new InvalidArgumentError('must be host:port');
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/**
 * Runs until SIGTERM/SIGINT, then shuts down gracefully (pending metadata gets a few
 * seconds to reach Kafka and ClickHouse). SIGHUP re-reads an inventory file.
 */
export function collectorCommand(): Command {
  return new Command('collector')
    .description('publish cluster metadata (Kubernetes watch or an inventory file) to Kafka and ClickHouse')
    .option('--kubeconfig <file>', 'kubeconfig to watch the cluster with (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
    .addOption(new Option('--inventory <file.yaml>', 'static inventory instead of Kubernetes (format: collector/README.md)').conflicts('kubeconfig'))
    .option('--topic <name>', 'compacted metadata topic', DEFAULT_TOPIC)
    .option('--partitions <n>', 'partitions when the topic has to be created', positiveInt, 1)
    .option('--database <name>', 'ClickHouse database for the dimension tables', DEFAULT_DATABASE)
    .addOption(new Option('--listen <host:port>', '/metrics and /healthz').argParser(hostPort).default(hostPort('127.0.0.1:9465'), '127.0.0.1:9465'))
    .action(async function (this: Command, opts: Options) {
      const conn = connectionsFor(localInfraConfig());
      const security = kafkaSecuritySchema.safeParse(kafkaSecurityFromEnv(process.env));
      if (!security.success) {
        const issue = security.error.issues[0]!;
        this.error(`meshlens collector: Kafka security settings (MESHLENS_KAFKA_TLS*/MESHLENS_KAFKA_SASL_*): ${issue.path.join('.')}: ${issue.message}`);
      }
      const source: SourceConfig = opts.inventory
        ? { kind: 'inventory', file: opts.inventory }
        : { kind: 'kubernetes', kubeConfig: kubeConfigFrom(opts.kubeconfig) };
      const collector = new Collector({
        source,
        kafka: { brokers: conn.kafkaBrokers, topic: opts.topic, partitions: opts.partitions, security: security.data },
        clickhouse: { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database: opts.database },
        http: opts.listen,
      });
      const stopped = signalled();
      if (collector.source instanceof InventorySource) {
        const inventory = collector.source;
        process.on('SIGHUP', () => inventory.reload());
      }
      try {
        await collector.start();
      } catch (err) {
        await collector.stop();
        // A bad inventory is the user's to fix: the message names file, line and field; a stack would only bury it.
        if (!(err instanceof InventoryError)) throw err;
        process.stderr.write(`meshlens collector: ${err.message}\n`);
        process.exitCode = 1;
        return;
      }
      await stopped;
      await stopWithin('collector', STOP_GRACE_MS, () => collector.stop());
    });
}
