import { Command } from 'commander';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { configFromEnv, startAnalyzer } from '@meshlens/analyzer';
import { signalled, stopWithin } from './signals.js';

/** Inside the chart's 45 s termination grace: pending inserts are uncommitted and replay anyway. */
const STOP_GRACE_MS = 20_000;

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${v} is not a non-negative integer`);
  return n;
}

export function analyzerCommand(): Command {
  return new Command('analyzer')
    .description('consume agent topics, match both ends of each connection, enrich, store in ClickHouse (until SIGINT/SIGTERM)')
    .option('--group <id>', 'Kafka consumer group (env MESHLENS_ANALYZER_GROUP)')
    .option('--database <name>', 'ClickHouse database (env MESHLENS_CLICKHOUSE_DATABASE)')
    .option('--grace-ms <ms>', 'how long a slot waits for the other end (env MESHLENS_ANALYZER_GRACE_MS)', int)
    .option('--idle-flush-ms <ms>', 'flush held records of a partition idle this long (env MESHLENS_ANALYZER_IDLE_FLUSH_MS)', int)
    .option('--http-port <port>', '/metrics and /healthz port, 0 for any (env MESHLENS_ANALYZER_HTTP_PORT)', int)
    .action(async (opts: { group?: string; database?: string; graceMs?: number; idleFlushMs?: number; httpPort?: number }) => {
      // Brokers and ClickHouse: the user's own when MESHLENS_KAFKA_BROKERS/MESHLENS_CLICKHOUSE_URL are set, else the embedded ones.
      const conn = connectionsFor(localInfraConfig());
      const env = {
        ...process.env,
        MESHLENS_KAFKA_BROKERS: conn.kafkaBrokers.join(','),
        MESHLENS_CLICKHOUSE_URL: conn.clickhouseUrl,
        MESHLENS_CLICKHOUSE_USER: conn.clickhouseUser,
        MESHLENS_CLICKHOUSE_PASSWORD: conn.clickhousePassword,
      };
      const overrides = {
        ...(opts.group && { groupId: opts.group }),
        ...(opts.graceMs !== undefined && { graceMs: opts.graceMs }),
        ...(opts.idleFlushMs !== undefined && { idleFlushMs: opts.idleFlushMs }),
        ...(opts.httpPort !== undefined && { http: { port: opts.httpPort } }),
      };
      const cfg = configFromEnv(opts.database ? { ...env, MESHLENS_CLICKHOUSE_DATABASE: opts.database } : env, overrides);
      const stopping = signalled();
      const analyzer = await startAnalyzer(cfg);
      await stopping;
      await stopWithin('analyzer', STOP_GRACE_MS, () => analyzer.stop());
    });
}
