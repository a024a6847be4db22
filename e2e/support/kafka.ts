/**
 * Test-side reading of what landed in Kafka: consume a topic from the beginning with a
 * fresh consumer group, decode every frame, and stop as soon as `done` says the records
 * seen so far are enough (or fail with what was seen at the timeout). Tests wait on the
 * data itself, never on a guessed delay.
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { decodeFrame } from '@meshlens/schemas';

export interface Consumed<T> {
  partition: number;
  offset: string;
  record: T;
}

export async function consumeRecords<T>(opts: {
  brokers: string[];
  topic: string;
  /** Keep only the records of interest (other tests may share the topic). */
  keep?: (record: T) => boolean;
  done: (seen: Consumed<T>[]) => boolean;
  timeoutMs?: number;
}): Promise<Consumed<T>[]> {
  const kafka = new Kafka({ clientId: 'meshlens-test', brokers: opts.brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `meshlens-test-${randomUUID()}` });
  const seen: Consumed<T>[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: opts.topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out with ${seen.length} records from ${opts.topic}`)), opts.timeoutMs ?? 60_000);
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            for (const record of decodeFrame(message.value!).records as T[]) {
              if (!opts.keep || opts.keep(record)) seen.push({ partition, offset: message.offset, record });
            }
            if (opts.done(seen)) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return seen;
}
