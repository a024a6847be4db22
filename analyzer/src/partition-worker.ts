/**
 * One (topic, partition): feeds its processor in offset order and turns the output into
 * units of work that are stored exactly once in effect:
 *
 *   process messages -> close unit -> [commit intent] -> dead letters acked -> inserts acked
 *   (same token on every retry) -> commit the offset the held records allow.
 *
 * All of a worker's steps run on one promise chain, so the idle-flush timer and incoming
 * batches never interleave. Workers share nothing mutable with each other.
 */
import type { KafkaMessage } from 'kafkajs';
import type { Logger } from 'pino';
import { encodeCommitState, unitToken, type CommitState } from './commit-state.js';
import type { DeadLetterQueue, PendingDeadLetter } from './dead-letter.js';
import { ingest } from './ingest.js';
import type { Metrics } from './metrics.js';
import type { PartitionProcessor } from './processors.js';
import { UnitRows, type ClickHouseSink } from './sink.js';

export interface WorkerDeps {
  log: Logger;
  metrics: Metrics;
  sink: ClickHouseSink;
  deadLetters: DeadLetterQueue;
  commit: (topic: string, partition: number, offset: number, metadata: string) => Promise<void>;
  pause: (topic: string, partition: number) => void;
  resume: (topic: string, partition: number) => void;
  /** Called after a unit's inserts were acknowledged and before its offsets are committed. */
  afterInsert: () => Promise<void>;
  idleFlushMs: number;
}

/** The worker was replaced after a rebalance: whatever it was doing must not be committed. */
export class RetiredError extends Error {
  override name = 'RetiredError';
}

export class PartitionWorker {
  private chain: Promise<void> = Promise.resolve();
  private retired = false;
  private rows: UnitRows;
  private dead: PendingDeadLetter[] = [];
  private heartbeat: () => Promise<void> = async () => {};
  private idleTimer: NodeJS.Timeout | null = null;
  /** Last offset handed to the processor. */
  private last: number;
  private committedOffset: number | null;
  private committed: CommitState;
  private replay: { end: number; wm: number } | null;

  constructor(
    private readonly deps: WorkerDeps,
    readonly topic: string,
    readonly partition: number,
    private readonly processor: PartitionProcessor,
    start: { offset: number | null; state: CommitState | null },
  ) {
    this.rows = new UnitRows(deps.sink);
    this.committedOffset = start.offset;
    this.committed = start.state ?? { v: 1, wm: 0, through: (start.offset ?? 0) - 1, next: null };
    this.replay = this.committed.next;
    this.last = (start.offset ?? 0) - 1;
  }

  retire(): void {
    this.retired = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.deps.metrics.held.set({ partition: `${this.topic}/${this.partition}` }, 0);
  }

  get isRetired(): boolean {
    return this.retired;
  }

  /** Serializes `task` after everything this worker is already doing. */
  private run(task: () => Promise<void>): Promise<void> {
    const next = this.chain.then(task);
    this.chain = next.catch(() => {});
    return next;
  }

  handleBatch(messages: KafkaMessage[], heartbeat: () => Promise<void>): Promise<void> {
    this.heartbeat = heartbeat;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    return this.run(async () => {
      for (const m of messages) {
        const offset = Number(m.offset);
        if (offset <= this.last) continue;
        if (this.committedOffset === null) {
          this.committedOffset = offset;
          this.committed = { ...this.committed, through: offset - 1 };
        }
        this.consume(offset, m);
        if (this.replay && offset >= this.replay.end) await this.closeUnit({ idle: false, watermarkMs: this.replay.wm });
      }
      if (!this.replay) await this.closeUnit({ idle: false, watermarkMs: null });
      this.armIdleFlush();
    });
  }

  private consume(offset: number, m: KafkaMessage): void {
    const { records, dead } = ingest(this.processor.recordType, m.value);
    this.deps.metrics.records.inc({ topic: this.topic }, records.length);
    // Dead letters of messages a committed unit already covered were sent before that commit.
    if (offset > this.committed.through) {
      for (const d of dead) this.dead.push({ dead: d, key: m.key, source: { topic: this.topic, partition: this.partition, offset: m.offset } });
    }
    this.processor.onMessage(offset, records, this.rows);
    this.last = offset;
    this.deps.metrics.held.set({ partition: `${this.topic}/${this.partition}` }, this.processor.held());
  }

  private armIdleFlush(): void {
    if (this.retired || this.replay || this.processor.held() === 0) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      this.run(() => this.closeUnit({ idle: true, watermarkMs: null })).catch((err: Error) => {
        if (!(err instanceof RetiredError)) this.deps.log.error({ err, topic: this.topic, partition: this.partition }, 'idle flush failed');
      });
    }, this.deps.idleFlushMs);
  }

  private async closeUnit(opts: { idle: boolean; watermarkMs: number | null }): Promise<void> {
    this.processor.endUnit(this.rows, opts);
    this.replay = null;
    const end = this.last;
    const from = this.committed.through + 1;
    const wm = this.processor.watermarkMs();
    if (end < from && this.rows.size === 0 && wm === this.committed.wm) return;
    const rows = this.rows;
    const dead = this.dead;
    this.rows = new UnitRows(this.deps.sink);
    this.dead = [];
    const offset = this.committedOffset!;
    if (rows.size > 0) await this.commit(offset, { ...this.committed, next: { end, wm } });
    await this.deps.deadLetters.send(dead);
    const token = unitToken(this.topic, this.partition, from, end, wm);
    for (const batch of rows.values()) {
      await this.deps.sink.insert(batch, token, {
        beforeRetry: async () => {
          this.assertActive();
          await this.heartbeat();
        },
        onStall: (stalled) => (stalled ? this.deps.pause(this.topic, this.partition) : this.deps.resume(this.topic, this.partition)),
      });
    }
    if (rows.size > 0) await this.deps.afterInsert();
    const state: CommitState = { v: 1, wm, through: end, next: null };
    const nextOffset = this.processor.heldFromOffset() ?? end + 1;
    await this.commit(nextOffset, state);
    this.committedOffset = nextOffset;
    this.committed = state;
    this.deps.metrics.held.set({ partition: `${this.topic}/${this.partition}` }, this.processor.held());
  }

  private assertActive(): void {
    if (this.retired) throw new RetiredError(`${this.topic}/${this.partition} was reassigned`);
  }

  private async commit(offset: number, state: CommitState): Promise<void> {
    this.assertActive();
    await this.deps.commit(this.topic, this.partition, offset, encodeCommitState(state));
  }
}
