/**
 * Where Kafka and ClickHouse are: the user's own clusters when configured, otherwise the
 * embedded ones that `infra up` started. Every component and test asks here.
 */
import type { LocalInfraConfig } from './config.js';
import { readInfraState } from './infra.js';
import { InfraError } from './processes.js';

export interface Connections {
  kafkaBrokers: string[];
  clickhouseUrl: string;
  clickhouseUser: string;
  clickhousePassword: string;
  embedded: boolean;
}

export function connectionsFor(cfg: LocalInfraConfig, env: NodeJS.ProcessEnv = process.env): Connections {
  const user = env.MESHLENS_CLICKHOUSE_USER ?? 'default';
  const password = env.MESHLENS_CLICKHOUSE_PASSWORD ?? '';
  if (env.MESHLENS_KAFKA_BROKERS && env.MESHLENS_CLICKHOUSE_URL) {
    return {
      kafkaBrokers: env.MESHLENS_KAFKA_BROKERS.split(',').map((b) => b.trim()).filter(Boolean),
      clickhouseUrl: env.MESHLENS_CLICKHOUSE_URL,
      clickhouseUser: user,
      clickhousePassword: password,
      embedded: false,
    };
  }
  const state = readInfraState(cfg);
  if (!state.kafka || !state.clickhouse) {
    throw new InfraError(
      `no Kafka/ClickHouse configured and the embedded ones are not up (state dir ${cfg.stateDir}); ` +
        'run `pnpm meshlens infra up` or set MESHLENS_KAFKA_BROKERS and MESHLENS_CLICKHOUSE_URL',
    );
  }
  return {
    kafkaBrokers: state.kafka.brokers,
    clickhouseUrl: state.clickhouse.url,
    clickhouseUser: user,
    clickhousePassword: password,
    embedded: true,
  };
}
