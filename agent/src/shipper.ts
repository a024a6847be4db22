/**
 * Sends frames to Kafka, one message per (topic, partition) per flush. While Kafka is away
 * (or the spool still holds older messages) everything goes to the spool, so order is kept;
 * a background loop replays the spool as soon as the broker answers again.
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
    try {
      await this.deliver(msgs);
    } catch (err) {
      this.failed(err);
      this.spool(msgs);
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

  private async deliver(msgs: SpooledMessage[]): Promise<void> {
    const byTopic = new Map<string, { partition: number; value: Buffer }[]>();
    for (const m of msgs) byTopic.set(m.topic, [...(byTopic.get(m.topic) ?? []), { partition: m.partition, value: m.value }]);
    await this.producer.sendBatch({ topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
    this.stats.sentMessages += msgs.length;
  }

  private failed(err: unknown): void {
    this.stats.sendErrors += 1;
    this.opts.log.warn({ err: (err as Error).message }, 'kafka unavailable; spooling');
  }

  private spool(msgs: SpooledMessage[]): void {
    this.opts.spool.append(msgs);
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
        await this.opts.spool.replayOldest(async (msgs) => {
          await this.deliver(msgs);
          replayed += msgs.length;
        });
      } catch {
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
