/**
 * Sends frames to Kafka, one message per (topic, partition) per flush. While Kafka is away
 * (or the spool still holds older messages) everything goes to the spool, so order is kept;
 * a background loop replays the spool as soon as the broker answers again.
 *
 * Messages go out in requests that carry at most one batch per partition, each under Kafka's
 * limit on a batch (the broker's `message.max.bytes`, 1 MiB by default; kafkajs puts all of
 * a request's messages for a partition in one batch), so that a spool filled during a long
 * outage can be replayed at all. A partition's batches are cut from its own messages alone,
 * so they come out the same whatever happened to the other partitions. That matters when a
 * request fails: what the brokers that answered wrote counts as shipped (kafkajs reports it
 * with the error, see patches/), the rest is spooled, alone in its segment, and replayed in
 * the same batches. A batch whose outcome is unknown is thus sent again identical, with the
 * same sequence number, and the broker recognises the idempotent producer's batch if it had
 * written it; a batch a broker did write is never sent again (with a cluster, one broker can
 * fail while another writes its share of the same request).
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

const partitionOf = (topic: string, partition: number) => `${topic}\0${partition}`;

/** Below the broker's default 1 MiB, with room for the batch's and records' headers. */
const BATCH_BYTES = 768 * 1024;

/**
 * The requests that deliver `msgs`, each a list of batches: every (topic, partition)'s
 * messages in order, cut into consecutive runs of at most `budget` bytes of values (a larger
 * message alone); request i carries every partition's i-th batch. A partition's batches
 * depend on its own messages only.
 */
export function requestsFor(msgs: SpooledMessage[], budget = BATCH_BYTES): SpooledMessage[][][] {
  const batchesOf = new Map<string, SpooledMessage[][]>();
  const bytes = new Map<string, number>();
  for (const m of msgs) {
    const k = partitionOf(m.topic, m.partition);
    let batches = batchesOf.get(k);
    if (!batches) batchesOf.set(k, (batches = []));
    const last = batches.at(-1);
    if (last && bytes.get(k)! + m.value.length <= budget) {
      last.push(m);
      bytes.set(k, bytes.get(k)! + m.value.length);
    } else {
      batches.push([m]);
      bytes.set(k, m.value.length);
    }
  }
  const out: SpooledMessage[][][] = [];
  for (const batches of batchesOf.values()) batches.forEach((b, i) => (out[i] ??= []).push(b));
  return out;
}

/** The partitions the brokers that answered wrote of a failed send, as kafkajs (patched) says. */
function deliveredWith(err: unknown): Set<string> {
  const delivered = (err as { delivered?: { topicName: string; partition: number }[] } | null)?.delivered ?? [];
  return new Set(delivered.map((d) => partitionOf(d.topicName, d.partition)));
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
    const shipped = new Set<SpooledMessage>();
    try {
      await this.deliver(msgs, (done) => done.forEach((m) => shipped.add(m)));
    } catch (err) {
      this.failed(err);
      this.spool(msgs.filter((m) => !shipped.has(m)), true);
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

  /**
   * Sends `msgs` request by request, reporting each batch written as it is known to be; stops
   * at the first request that fails, with that failure.
   */
  private async deliver(msgs: SpooledMessage[], shipped: (msgs: SpooledMessage[]) => void): Promise<void> {
    for (const request of requestsFor(msgs)) {
      const byTopic = new Map<string, { partition: number; value: Buffer }[]>();
      for (const m of request.flat()) {
        const list = byTopic.get(m.topic);
        if (list) list.push({ partition: m.partition, value: m.value });
        else byTopic.set(m.topic, [{ partition: m.partition, value: m.value }]);
      }
      const report = (batches: SpooledMessage[][]) => {
        const done = batches.flat();
        this.stats.sentMessages += done.length;
        if (done.length > 0) shipped(done);
      };
      try {
        // The broker's wait for replicas ends before our request timeout: a slow ISR comes
        // back as an error from the broker instead of a timeout on our side.
        await this.producer.sendBatch({ timeout: REQUEST_TIMEOUT_MS - 2000, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
      } catch (err) {
        const delivered = deliveredWith(err);
        report(request.filter((b) => delivered.has(partitionOf(b[0]!.topic, b[0]!.partition))));
        throw err;
      }
      report(request);
    }
  }

  private failed(err: unknown): void {
    this.stats.sendErrors += 1;
    this.opts.log.warn({ err: (err as Error).message }, 'kafka unavailable; spooling');
  }

  /** `alone`: msgs were offered to Kafka, so their replay must start their partitions' batches where they were. */
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
          this.deliver(msgs, (done) => {
            shipped(done);
            replayed += done.length;
          }),
        );
      } catch (err) {
        if (this.connected) this.failed(err); // a failed connect counted itself
        this.connected = false;
        await this.producer.disconnect().catch(() => undefined);
        // close() may have come while this disconnected: its wake() is spent already.
        if (this.closed) break;
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
