/**
 * Per-test Kafka topic and ClickHouse database on the shared infrastructure: unique names,
 * read-back helpers, and cleanup of everything a test created (topic, database).
 */
import { randomUUID } from 'node:crypto';
import kafkajs, { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { decodeFrame, type Metadata } from '@meshlens/schemas';
import { clickhouseClient, type ClickHouseTarget } from '@meshlens/schemas/clickhouse';

export interface TopicMessage {
  key: string;
  value: Metadata | null;
}

export class TestInfra {
  readonly conn = connectionsFor(localInfraConfig());
  readonly id = randomUUID().replaceAll('-', '');
  readonly topic = `meshlens.test.metadata.${this.id}`;
  readonly database = `meshlens_test_${this.id}`;
  readonly kafka: Kafka;
  readonly clickhouse: Omit<ClickHouseTarget, 'database'> = {
    url: this.conn.clickhouseUrl,
    username: this.conn.clickhouseUser,
    password: this.conn.clickhousePassword,
  };
  readonly ch = clickhouseClient({ ...this.clickhouse, database: this.database });

  /** `brokers`: a Kafka of the test's own instead of the shared one (ClickHouse stays shared). */
  constructor(
    readonly brokers: string[] = connectionsFor(localInfraConfig()).kafkaBrokers,
    sasl?: SASLOptions,
  ) {
    this.kafka = new Kafka({ clientId: 'meshlens-test', brokers, logLevel: logLevel.NOTHING, ...(sasl ? { sasl } : {}) });
  }

  /** Every message in the topic, in order (one partition), decoded. */
  async messages(): Promise<TopicMessage[]> {
    const admin = this.kafka.admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(this.topic);
    await admin.disconnect();
    const expected = offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
    const out: TopicMessage[] = [];
    if (expected === 0) return out;
    // Nothing is committed, so the group dies with its only member and leaves nothing behind.
    const groupId = `meshlens-test-${randomUUID()}`;
    const consumer = this.kafka.consumer({ groupId });
    await consumer.connect();
    await consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ message }) => {
            const value = message.value === null ? null : (decodeFrame(message.value).records[0] as Metadata);
            out.push({ key: message.key!.toString(), value });
            if (out.length === expected) resolve();
          },
        })
        .catch(reject);
    });
    await consumer.disconnect();
    return out;
  }

  /** What a compacted-topic reader ends up with: the last value per key (null = tombstone). */
  async latest(): Promise<Map<string, Metadata | null>> {
    return new Map((await this.messages()).map((m) => [m.key, m.value]));
  }

  async topicConfig(name: string): Promise<string | undefined> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const d = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: this.topic, configNames: [name] }] });
      return d.resources[0]?.configEntries.find((c) => c.configName === name)?.configValue;
    } finally {
      await admin.disconnect();
    }
  }

  async rows<T>(query: string): Promise<T[]> {
    return (await this.ch.query({ query, format: 'JSONEachRow' })).json<T>();
  }

  async cleanup(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const topics = await admin.listTopics();
      if (topics.includes(this.topic)) await admin.deleteTopics({ topics: [this.topic] });
    } finally {
      await admin.disconnect();
    }
    await this.ch.close();
    const root = clickhouseClient({ ...this.clickhouse, database: 'default' });
    await root.command({ query: `DROP DATABASE IF EXISTS ${this.database}` });
    await root.close();
  }
}
