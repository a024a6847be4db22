/**
 * The compacted metadata topic. One message per object version, keyed by object identity,
 * the value a one-record metadata frame; a deletion is the final record followed by a
 * tombstone (null value) so compaction eventually drops the object. The topic is created
 * with cleanup.policy=compact when missing. Connecting happens lazily inside deliver, so
 * a Kafka that is down at start is just one more retried delivery.
 */
import kafkajs, { Kafka, Partitioners, logLevel, type Admin, type LogEntry, type Producer, type SASLOptions } from 'kafkajs';
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import { decodeFrame, encodeFrame, type KafkaSecurity, type Metadata } from '@meshlens/schemas';
import type { Sink } from '../delivery.js';
import type { Entry } from '../outbox.js';

export interface KafkaSinkOptions {
  brokers: string[];
  topic: string;
  partitions: number;
  clientId: string;
  security?: KafkaSecurity;
}

// kafkajs is CommonJS and Node's export detection misses this one, so it comes off the default export.
const { ConfigResourceTypes } = kafkajs;

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'warn', // kafkajs reports every failed connection attempt as an error; we retry them
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

export class KafkaSink implements Sink {
  readonly name = 'kafka';
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private topicReady = false;

  constructor(
    private readonly opts: KafkaSinkOptions,
    private readonly log: Logger,
  ) {
    this.kafka = new Kafka({
      clientId: opts.clientId,
      brokers: opts.brokers,
      ssl: opts.security?.ssl ?? false,
      ...(opts.security?.sasl ? { sasl: opts.security.sasl as SASLOptions } : {}),
      connectionTimeout: 2_000,
      // Our delivery loop owns retrying; kafkajs' own retries only smooth over blips.
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1_000 },
      logLevel: logLevel.WARN,
      logCreator: () => (entry: LogEntry) => {
        const { message, ...rest } = entry.log;
        this.log[LEVELS[entry.level] ?? 'info']({ kafkajs: entry.namespace, ...rest }, message);
      },
    });
  }

  async deliver(batch: readonly Entry[]): Promise<void> {
    try {
      const producer = await this.ready();
      await producer.send({
        topic: this.opts.topic,
        acks: -1,
        messages: batch.map((e) => ({ key: e.key, value: e.value === null ? null : encodeFrame('metadata', [e.value]) })),
      });
    } catch (err) {
      // A producer that lost its brokers is rebuilt from scratch on the next attempt.
      const producer = this.producer;
      this.producer = undefined;
      await producer?.disconnect().catch(() => {});
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.producer?.disconnect();
    this.producer = undefined;
  }

  /**
   * What the topic says is alive now: per key the last record, unless it is a deletion or a
   * tombstone. Read to the end offsets of when it was asked, with a throwaway consumer group
   * that commits nothing. Empty when the topic does not exist yet.
   */
  async published(): Promise<Map<string, Metadata>> {
    const { topic } = this.opts;
    const admin = this.kafka.admin();
    await admin.connect();
    let ends: Map<number, number>;
    try {
      if (!(await admin.listTopics()).includes(topic)) return new Map();
      ends = new Map((await admin.fetchTopicOffsets(topic)).filter((o) => Number(o.high) > Number(o.low)).map((o) => [o.partition, Number(o.high)]));
    } finally {
      await admin.disconnect();
    }
    const live = new Map<string, Metadata>();
    if (ends.size === 0) return live;
    const consumer = this.kafka.consumer({ groupId: `meshlens-collector-reconcile-${randomUUID()}` });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        consumer
          .run({
            autoCommit: false,
            eachMessage: async ({ partition, message }) => {
              const key = message.key?.toString();
              const record = message.value === null ? null : (decodeFrame(message.value).records[0] as Metadata | undefined);
              if (key !== undefined) {
                if (record && record.deleted_ms === null) live.set(key, record);
                else live.delete(key);
              }
              if (Number(message.offset) + 1 >= (ends.get(partition) ?? 0)) ends.delete(partition);
              if (ends.size === 0) resolve();
            },
          })
          .catch(reject);
      });
    } finally {
      await consumer.disconnect();
    }
    return live;
  }

  private async ready(): Promise<Producer> {
    if (!this.topicReady) {
      const admin = this.kafka.admin();
      await admin.connect();
      try {
        await this.ensureTopic(admin);
      } finally {
        await admin.disconnect();
      }
      this.topicReady = true;
    }
    if (this.producer === undefined) {
      // One request in flight keeps each object's versions in order. Not idempotent: that
      // needs unbounded retries, and a duplicate of a keyed record is harmless on a compacted topic.
      const producer = this.kafka.producer({ maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
      this.producer = producer;
    }
    return this.producer;
  }

  private async ensureTopic(admin: Admin): Promise<void> {
    const { topic, partitions } = this.opts;
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: partitions, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
    });
    if (created) {
      this.log.info({ topic, partitions }, 'created compacted metadata topic');
      return;
    }
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy'] }],
    });
    const policy = described.resources[0]?.configEntries.find((c) => c.configName === 'cleanup.policy')?.configValue;
    if (policy !== undefined && !policy.split(',').includes('compact')) {
      this.log.warn({ topic, policy }, 'metadata topic is not compacted; deleted objects will not be cleaned up');
    }
  }
}
