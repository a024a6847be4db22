/**
 * Drains one outbox into one sink, retrying failed batches with backoff for as long as it
 * takes: the collector keeps running through Kafka or ClickHouse outages and delivers the
 * final state once they answer again.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Backoff, type BackoffOptions } from './backoff.js';
import type { CollectorMetrics } from './metrics.js';
import { Outbox, type Entry } from './outbox.js';

export interface Sink {
  readonly name: string;
  deliver(batch: readonly Entry[]): Promise<void>;
  close(): Promise<void>;
}

// Keeps one Kafka request under the broker's default 1 MiB batch limit: a one-record frame
// is ~350 bytes for a typical pod and rarely above 1 KiB even with many labels.
const MAX_KEYS_PER_BATCH = 500;

/** Emits 'idle' whenever the outbox is empty and nothing is in flight, 'failure' per failed batch. */
export class Delivery extends EventEmitter {
  private readonly outbox = new Outbox();
  private readonly backoff: Backoff;
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;
  private inFlight = false;
  private loop: Promise<void> | undefined;

  constructor(
    readonly sink: Sink,
    backoff: BackoffOptions,
    private readonly metrics: CollectorMetrics,
    private readonly log: Logger,
  ) {
    super();
    this.backoff = new Backoff(backoff);
  }

  get idle(): boolean {
    return this.outbox.size === 0 && !this.inFlight;
  }

  start(): void {
    this.loop = this.run();
  }

  push(entry: Entry): void {
    this.outbox.push(entry);
    this.metrics.pending.set({ sink: this.sink.name }, this.outbox.size);
    this.wake?.();
  }

  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => this.once('idle', resolve));
  }

  /**
   * Gives pending entries up to `graceMs` to get through, then stops retrying; a batch in
   * flight is allowed to finish, then the sink is closed.
   */
  async stop(graceMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.whenIdle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    this.abort.abort();
    this.wake?.();
    await this.loop;
    await this.sink.close();
  }

  private async run(): Promise<void> {
    const name = this.sink.name;
    while (!this.abort.signal.aborted) {
      if (this.outbox.size === 0) {
        this.emit('idle');
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      const batch = this.outbox.take(MAX_KEYS_PER_BATCH);
      this.inFlight = true;
      try {
        await this.sink.deliver(batch);
        this.backoff.reset();
        const tombstones = batch.filter((e) => e.value === null).length;
        this.metrics.published.inc({ sink: name, entry: 'record' }, batch.length - tombstones);
        if (tombstones > 0) this.metrics.published.inc({ sink: name, entry: 'tombstone' }, tombstones);
      } catch (err) {
        this.outbox.requeue(batch);
        this.metrics.sinkErrors.inc({ sink: name });
        this.emit('failure', err);
        this.log.warn({ sink: name, pending: this.outbox.size, err: (err as Error).message }, 'delivery failed; retrying');
        await this.backoff.wait(this.abort.signal);
      } finally {
        this.inFlight = false;
        this.metrics.pending.set({ sink: name }, this.outbox.size);
      }
    }
    if (this.outbox.size > 0) this.log.warn({ sink: name, pending: this.outbox.size }, 'stopped with undelivered entries');
  }
}
