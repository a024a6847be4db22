/** Apache Kafka in KRaft combined mode (one broker that is its own controller) on loopback. */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import type { LocalInfraConfig } from './config.js';
import { InfraError, assertPortFree, spawnDaemon, waitReady } from './processes.js';

export interface KafkaEndpoint {
  pid: number;
  brokers: string[];
}

function jarsDir(cfg: LocalInfraConfig): string {
  const dir = join(cfg.cacheDir, 'kafka', 'current');
  if (!existsSync(dir) || !readdirSync(dir).some((f) => f.startsWith('kafka_2.13-'))) {
    throw new InfraError(`Kafka jars are missing in ${dir}; run scripts/setup.sh (it downloads them from Maven Central)`);
  }
  return dir;
}

function assertJava(): void {
  const r = spawnSync('java', ['-version'], { stdio: 'ignore' });
  if (r.error || r.status !== 0) {
    throw new InfraError('no working Java found (java -version failed); run scripts/setup.sh, it installs openjdk-17-jre-headless');
  }
}

/** Java properties quoting for the JAAS line: backslash and double quote escaped. */
const jaasString = (v: string) => `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

function listenerProps(cfg: LocalInfraConfig): Record<string, string> {
  const name = cfg.kafkaSasl ? 'SASL_PLAINTEXT' : 'PLAINTEXT';
  const props: Record<string, string> = {
    listeners: `${name}://127.0.0.1:${cfg.kafkaPort},CONTROLLER://127.0.0.1:${cfg.kafkaControllerPort}`,
    'advertised.listeners': `${name}://127.0.0.1:${cfg.kafkaPort}`,
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': `CONTROLLER:PLAINTEXT,${name}:${name}`,
    'inter.broker.listener.name': name,
  };
  if (cfg.kafkaSasl) {
    const { username, password } = cfg.kafkaSasl;
    props['sasl.enabled.mechanisms'] = 'PLAIN';
    props['sasl.mechanism.inter.broker.protocol'] = 'PLAIN';
    props['listener.name.sasl_plaintext.plain.sasl.jaas.config'] =
      `org.apache.kafka.common.security.plain.PlainLoginModule required username=${jaasString(username)} password=${jaasString(password)} user_${username}=${jaasString(password)};`;
  }
  return props;
}

function writeConfig(cfg: LocalInfraConfig, dir: string): string {
  const props = {
    'process.roles': 'broker,controller',
    'node.id': '1',
    'controller.quorum.voters': `1@127.0.0.1:${cfg.kafkaControllerPort}`,
    ...listenerProps(cfg),
    'log.dirs': join(dir, 'data'),
    'num.partitions': '8',
    'offsets.topic.replication.factor': '1',
    'offsets.topic.num.partitions': '8',
    'transaction.state.log.replication.factor': '1',
    'transaction.state.log.min.isr': '1',
    'group.initial.rebalance.delay.ms': '0',
    // Topics are created on purpose (with the partition count and compaction they need),
    // never by a typo in a producer.
    'auto.create.topics.enable': 'false',
    'log.retention.hours': '24',
  };
  const file = join(dir, 'server.properties');
  // A backslash is an escape in .properties files; the JAAS line may carry some.
  writeFileSync(file, Object.entries(props).map(([k, v]) => `${k}=${v.replaceAll('\\', '\\\\')}`).join('\n') + '\n');
  writeFileSync(
    join(dir, 'log4j.properties'),
    ['log4j.rootLogger=WARN, stdout', 'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
      'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n', 'log4j.logger.kafka.server.KafkaServer=INFO', ''].join('\n'),
  );
  return file;
}

function javaArgs(cfg: LocalInfraConfig, dir: string, mainClass: string, args: string[]): string[] {
  return [
    '-Xms256m', '-Xmx768m', '-XX:+UseG1GC', '-Djava.awt.headless=true',
    `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`,
    // The state dir on the command line lets `infra down` recognise its own process.
    `-Dmeshlens.state=${cfg.stateDir}`,
    '-cp', `${jarsDir(cfg)}/*`, mainClass, ...args,
  ];
}

export async function kafkaAnswers(brokers: string[], sasl?: LocalInfraConfig['kafkaSasl']): Promise<boolean> {
  const admin = new Kafka({
    clientId: 'meshlens-infra',
    brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 1000,
    ...(sasl ? { sasl: { mechanism: 'plain', ...sasl } as SASLOptions } : {}),
  }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

export async function startKafka(cfg: LocalInfraConfig): Promise<KafkaEndpoint> {
  assertJava();
  // Checked here too (not only in infraUp): a broker that cannot bind would otherwise look
  // ready whenever some other process answers on the port.
  await assertPortFree(cfg.kafkaPort, 'Kafka', 'MESHLENS_KAFKA_PORT');
  await assertPortFree(cfg.kafkaControllerPort, 'Kafka controller', 'MESHLENS_KAFKA_CONTROLLER_PORT');
  const dir = join(cfg.stateDir, 'kafka');
  mkdirSync(dir, { recursive: true });
  const propsFile = writeConfig(cfg, dir);
  const logFile = join(dir, 'kafka.log');
  if (!existsSync(join(dir, 'data', 'meta.properties'))) {
    const r = spawnSync('java', javaArgs(cfg, dir, 'kafka.tools.StorageTool', ['format', '-t', randomUUID(), '-c', propsFile]), {
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (r.status !== 0) throw new InfraError(`formatting Kafka storage failed: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').pop()}`);
  }
  const pid = spawnDaemon('java', javaArgs(cfg, dir, 'kafka.Kafka', [propsFile]), logFile, dir);
  const brokers = [`127.0.0.1:${cfg.kafkaPort}`];
  await waitReady('Kafka', pid, logFile, cfg.readyTimeoutMs, () => kafkaAnswers(brokers, cfg.kafkaSasl));
  return { pid, brokers };
}
