/**
 * Sends frames to Kafka, one message per (topic, partition) per flush. While Kafka is away
 * (or the spool still holds older messages) everything goes to the spool, so order is kept;
 * a background loop replays the spool as soon as the broker answers again.
 *
 * Everything goes out in chunks under Kafka's limit on one partition's batch (the broker's
 * `message.max.bytes`, 1 MiB by default; kafkajs puts all of a request's messages for a
 * partition in one batch), so a spool filled during a long outage can be replayed at all.
 * What failed is spooled from the failed chunk on, alone in its segment, and replayed in the
 * same chunks: a chunk whose outcome is unknown is sent again identical, and the broker
 * recognises the idempotent producer's sequence numbers if it had written it.
 */
import type { Kafka, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { Spool, SpooledMessage } from './spool.js';

export interface ShipperOptions {
  kafka: Kafka;
  spool: Spool;
  log: Logger;
  /** How long to wait between attempts to reach Kafka again. */
  retryMs?: number;
}

/**
 * How long the agent's Kafka client waits for any answer: a broker that accepts and never
 * answers (hung, or a stopped process behind an open port) sends us to the spool within
 * about three of these (kafkajs' two retries) instead of stalling the sweeps indefinitely.
 */
export const REQUEST_TIMEOUT_MS = 10_000;

/** Below the broker's default 1 MiB, with room for the batch's and records' headers. */
const CHUNK_BYTES = 768 * 1024;

/** Consecutive runs of `msgs` of at most `budget` bytes of values (a larger message alone). */
function chunks(msgs: SpooledMessage[], budget = CHUNK_BYTES): SpooledMessage[][] {
  const out: SpooledMessage[][] = [];
  let current: SpooledMessage[] = [];
  let bytes = 0;
  for (const m of msgs) {
    if (current.length > 0 && bytes + m.value.length > budget) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(m);
    bytes += m.value.length;
  }
  if (current.length > 0) out.push(current);
  return out;
}

export interface ShipperStats {
  sentMessages: number;
  spooledMessages: number;
  sendErrors: number;
}

export class Shipper {
  private readonly producer: Producer;
  private connected = false;
  private draining: Promise<void> | null = null;
  private closed = false;
  /** Ends the current wait between retries early. */
  private wake: () => void = () => undefined;
  readonly stats: ShipperStats = { sentMessages: 0, spooledMessages: 0, sendErrors: 0 };

  constructor(private readonly opts: ShipperOptions) {
    // Few, quick retries inside kafkajs: a dead broker must send us to the spool within
    // seconds, not stall the sweep loop for kafkajs' default half minute.
    this.producer = opts.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    });
  }

  get retryMs(): number {
    return this.opts.retryMs ?? 2000;
  }

  /** Never throws: a message is either in Kafka or in the spool when this resolves. */
  async send(msgs: SpooledMessage[]): Promise<void> {
    if (msgs.length === 0) return;
    if (!this.opts.spool.empty || !(await this.ensureConnected())) {
      this.spool(msgs);
      return;
    }
    let sent = 0;
    try {
      await this.deliverInChunks(msgs, (n) => (sent += n));
    } catch (err) {
      this.failed(err);
      this.spool(msgs.slice(sent), true);
    }
  }

  private async ensureConnected(): Promise<boolean> {
    if (this.connected) return true;
    try {
      await this.producer.connect();
      this.connected = true;
      return true;
    } catch (err) {
      this.failed(err);
      return false;
    }
  }

  private async deliverInChunks(msgs: SpooledMessage[], shipped: (n: number) => void): Promise<void> {
    for (const chunk of chunks(msgs)) {
      const byTopic = new Map<string, { partition: number; value: Buffer }[]>();
      for (const m of chunk) {
        const list = byTopic.get(m.topic);
        if (list) list.push({ partition: m.partition, value: m.value });
        else byTopic.set(m.topic, [{ partition: m.partition, value: m.value }]);
      }
      // The broker's wait for replicas ends before our request timeout: a slow ISR comes
      // back as an error from the broker instead of a timeout on our side.
      await this.producer.sendBatch({ timeout: REQUEST_TIMEOUT_MS - 2000, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
      this.stats.sentMessages += chunk.length;
      shipped(chunk.length);
    }
  }

  private failed(err: unknown): void {
    this.stats.sendErrors += 1;
    this.opts.log.warn({ err: (err as Error).message }, 'kafka unavailable; spooling');
  }

  /** `alone`: msgs were offered to Kafka, so their replay must offer the same chunks. */
  private spool(msgs: SpooledMessage[], alone = false): void {
    const refused = this.opts.spool.stats.writeErrors;
    this.opts.spool.append(msgs, alone);
    if (this.opts.spool.stats.writeErrors > refused)
      this.opts.log.error({ err: this.opts.spool.lastWriteError, messages: this.opts.spool.stats.writeErrors - refused }, 'spool write failed; messages dropped (counted)');
    this.stats.spooledMessages += msgs.length;
    this.draining ??= this.drainLoop().finally(() => {
      this.draining = null;
    });
  }

  /** Replays the spool oldest segment first, waiting retryMs between failed attempts. */
  private async drainLoop(): Promise<void> {
    let replayed = 0;
    while (!this.opts.spool.empty && !this.closed) {
      try {
        if (!(await this.ensureConnected())) throw new Error('not connected');
        await this.opts.spool.replayOldest((msgs, shipped) =>
          this.deliverInChunks(msgs, (n) => {
            shipped(n);
            replayed += n;
          }),
        );
      } catch (err) {
        if (this.connected) this.failed(err); // a failed connect counted itself
        this.connected = false;
        await this.producer.disconnect().catch(() => undefined);
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, this.retryMs).unref();
        });
      }
    }
    if (this.opts.spool.empty) this.opts.log.info({ messages: replayed }, 'spool drained');
  }

  /**
   * Tries to empty the spool now (shutdown, tests); true if it is empty within timeoutMs.
   * Whatever is still spooled stays on disk for the next run.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    if (!this.opts.spool.empty) {
      this.wake();
      this.draining ??= this.drainLoop().finally(() => {
        this.draining = null;
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.draining, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    }
    return this.opts.spool.empty;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await this.draining;
    await this.producer.disconnect().catch(() => undefined);
  }
}
