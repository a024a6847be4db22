/**
 * Apache Kafka in KRaft combined mode (one broker that is its own controller) on loopback;
 * more brokers can join it, for tests of what a cluster does that one broker cannot (one of
 * several brokers gone while the others answer).
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import type { LocalInfraConfig } from './config.js';
import { InfraError, assertPortFree, spawnDaemon, waitReady } from './processes.js';

export interface KafkaEndpoint {
  pid: number;
  brokers: string[];
}

/** A broker-only node that joins the combined node of the same configuration. */
export interface JoiningBroker {
  /** Kafka's node.id; the combined node is 1. */
  nodeId: number;
  port: number;
}

/** The combined node, or the joining broker `node`. */
interface Node {
  id: number;
  port: number;
  dir: string;
  roles: string;
}

function nodeOf(cfg: LocalInfraConfig, joining?: JoiningBroker): Node {
  if (!joining) return { id: 1, port: cfg.kafkaPort, dir: join(cfg.stateDir, 'kafka'), roles: 'broker,controller' };
  if (joining.nodeId === 1) throw new InfraError('node.id 1 is the combined node; a joining broker needs another');
  return { id: joining.nodeId, port: joining.port, dir: join(cfg.stateDir, `kafka-${joining.nodeId}`), roles: 'broker' };
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

function listenerProps(cfg: LocalInfraConfig, node: Node): Record<string, string> {
  const name = cfg.kafkaSasl ? 'SASL_PLAINTEXT' : 'PLAINTEXT';
  const controller = node.roles.includes('controller') ? `,CONTROLLER://127.0.0.1:${cfg.kafkaControllerPort}` : '';
  const props: Record<string, string> = {
    listeners: `${name}://127.0.0.1:${node.port}${controller}`,
    'advertised.listeners': `${name}://127.0.0.1:${node.port}`,
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

function writeConfig(cfg: LocalInfraConfig, node: Node): string {
  const dir = node.dir;
  const props = {
    'process.roles': node.roles,
    'node.id': String(node.id),
    'controller.quorum.voters': `1@127.0.0.1:${cfg.kafkaControllerPort}`,
    ...listenerProps(cfg, node),
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

/** Whether the cluster answers at `brokers` (and, given `nodeId`, counts that broker in). */
export async function kafkaAnswers(brokers: string[], sasl?: LocalInfraConfig['kafkaSasl'], nodeId?: number): Promise<boolean> {
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
    return nodeId === undefined ? cluster.brokers.length > 0 : cluster.brokers.some((b) => b.nodeId === nodeId);
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The cluster id the combined node was formatted with: a joining broker must carry the same. */
function clusterId(cfg: LocalInfraConfig): string {
  const meta = join(nodeOf(cfg).dir, 'data', 'meta.properties');
  const id = existsSync(meta) ? /^cluster\.id=(.+)$/m.exec(readFileSync(meta, 'utf8'))?.[1] : undefined;
  if (!id) throw new InfraError(`no Kafka cluster to join: ${meta} has no cluster.id (start the combined node first)`);
  return id.trim();
}

/**
 * Starts the combined node, or with `joining` a broker that joins it (the combined node
 * must be running). Each keeps its data under the state dir, so a stopped node started
 * again comes back with its partitions.
 */
export async function startKafka(cfg: LocalInfraConfig, joining?: JoiningBroker): Promise<KafkaEndpoint> {
  assertJava();
  const node = nodeOf(cfg, joining);
  // Checked here too (not only in infraUp): a broker that cannot bind would otherwise look
  // ready whenever some other process answers on the port.
  await assertPortFree(node.port, 'Kafka', joining ? 'the joining broker\'s port' : 'MESHLENS_KAFKA_PORT');
  if (!joining) await assertPortFree(cfg.kafkaControllerPort, 'Kafka controller', 'MESHLENS_KAFKA_CONTROLLER_PORT');
  const dir = node.dir;
  mkdirSync(dir, { recursive: true });
  const propsFile = writeConfig(cfg, node);
  const logFile = join(dir, 'kafka.log');
  if (!existsSync(join(dir, 'data', 'meta.properties'))) {
    const id = joining ? clusterId(cfg) : randomUUID();
    const r = spawnSync('java', javaArgs(cfg, dir, 'kafka.tools.StorageTool', ['format', '-t', id, '-c', propsFile]), {
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (r.status !== 0) throw new InfraError(`formatting Kafka storage failed: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').pop()}`);
  }
  const pid = spawnDaemon('java', javaArgs(cfg, dir, 'kafka.Kafka', [propsFile]), logFile, dir);
  const brokers = [`127.0.0.1:${node.port}`];
  await waitReady('Kafka', pid, logFile, cfg.readyTimeoutMs, () => kafkaAnswers(brokers, cfg.kafkaSasl, node.id));
  return { pid, brokers };
}
