/** A kafkajs client from the validated config: TLS and SASL exactly as configured. */
import { Kafka, logLevel, type KafkaConfig, type SASLOptions } from 'kafkajs';
import type { Logger } from 'pino';
import type { AnalyzerConfig } from './config.js';

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

export function kafkaClient(cfg: AnalyzerConfig['kafka'], log: Logger): Kafka {
  const config: KafkaConfig = {
    clientId: cfg.clientId,
    brokers: cfg.brokers,
    ssl: cfg.ssl,
    // kafkajs logs through pino so that one process has one log format.
    logLevel: logLevel.WARN,
    logCreator: () => (entry) => {
      const { message, ...rest } = entry.log;
      log[levels[entry.level] ?? 'info']({ kafka: entry.namespace, ...rest }, message);
    },
  };
  if (cfg.sasl) config.sasl = cfg.sasl as SASLOptions;
  return new Kafka(config);
}
