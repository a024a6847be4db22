/**
 * Reads a whole topic on every analyzer instance (metadata, DNS answers): enrichment needs
 * all of it, not this instance's share. A consumer group of one (unique id, never
 * committed) starting from the beginning; `ready` resolves once everything that was in the
 * topic at start has been applied, so no flow is labelled from a half-built index.
 */
import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, Kafka, KafkaMessage } from 'kafkajs';
import type { Logger } from 'pino';

export interface BroadcastReader {
  ready: Promise<void>;
  groupId: string;
  stop(): Promise<void>;
}

/** A topic created a moment ago can answer "not the leader" for a while; Kafka has no event for "ready", so retry those. */
async function highWatermarks(admin: Admin, topic: string): ReturnType<Admin['fetchTopicOffsets']> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await admin.fetchTopicOffsets(topic);
    } catch (err) {
      if (!(err as { retriable?: boolean }).retriable || attempt === 10) throw err;
      await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
    }
  }
}

export async function startBroadcastReader(
  kafka: Kafka,
  admin: Admin,
  opts: { topic: string; groupPrefix: string; log: Logger },
  apply: (m: KafkaMessage) => void,
): Promise<BroadcastReader> {
  const groupId = `${opts.groupPrefix}.broadcast.${randomUUID()}`;
  const targets = new Map<number, number>();
  for (const p of await highWatermarks(admin, opts.topic)) {
    if (Number(p.high) > Number(p.low)) targets.set(p.partition, Number(p.high) - 1);
  }
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  if (targets.size === 0) markReady();
  const consumer: Consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
  await consumer.connect();
  await consumer.subscribe({ topic: opts.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, heartbeat }) => {
      for (const m of batch.messages) apply(m);
      const last = Number(batch.lastOffset());
      const target = targets.get(batch.partition);
      if (target !== undefined && last >= target) {
        targets.delete(batch.partition);
        if (targets.size === 0) {
          opts.log.info({ topic: opts.topic }, 'caught up');
          markReady();
        }
      }
      await heartbeat();
    },
  });
  return {
    ready,
    groupId,
    stop: async () => {
      await consumer.disconnect();
      // A group that never committed and has no members is gone already; this covers the rest.
      await admin.deleteGroups([groupId]).catch(() => undefined);
    },
  };
}
