/**
 * The dead-letter topic: bad frames as they arrived, bad records as JSON, each with the
 * reason and its source (topic, partition, offset, record index) in headers. Sent and
 * acknowledged before the source offsets are committed, so none is lost; a crash in between
 * can send one twice, which the source headers make recognisable.
 */
import type { Producer } from 'kafkajs';
import { deadLetterHeaders, type DeadLetter } from './ingest.js';
import type { Metrics } from './metrics.js';

export interface PendingDeadLetter {
  dead: DeadLetter;
  key: Buffer | null;
  source: { topic: string; partition: number; offset: string };
}

export class DeadLetterQueue {
  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly metrics: Metrics,
  ) {}

  async send(pending: PendingDeadLetter[]): Promise<void> {
    if (pending.length === 0) return;
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      messages: pending.map((p) => ({ key: p.key, value: p.dead.value, headers: deadLetterHeaders(p.dead, p.source) })),
    });
    for (const p of pending) this.metrics.deadLettered.inc({ kind: p.dead.kind, reason: p.dead.reason });
  }
}
