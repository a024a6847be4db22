/**
 * A bounded on-disk queue of Kafka messages for when the broker is away. Messages are
 * appended to segment files and replayed oldest first; a whole segment is deleted once
 * shipped. Past the size limit the oldest segments are dropped, and what that loses is
 * counted (messages and the records inside them), never silent. It survives a restart:
 * segments left by a previous run are replayed first. A torn write at the end of a
 * segment (a crash mid-append) is detected by length and CRC and cut off, counted.
 * A message the disk refuses (full, read-only, failing) is dropped and counted as well;
 * what it wrote of itself is cut off again, or if that fails too its segment is closed, so
 * that nothing appended later sits behind a torn entry, where a replay would not reach it.
 *
 * A segment handed out for replay is never appended to again, and a replay offers it again
 * without what was shipped, in order: a delivery whose outcome is unknown (the broker hung)
 * is retried with the same messages, which the idempotent producer needs to recognise a
 * batch the broker did write and not write it twice.
 *
 * Entry layout: u32 length of the rest | u32 crc32 of the rest | u16 topic length | topic |
 *               i32 partition | frame bytes
 */
import { appendFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { readFrameHeader } from '@meshlens/schemas';

export interface SpooledMessage {
  topic: string;
  partition: number;
  value: Buffer;
}

export interface SpoolStats {
  bytes: number;
  messages: number;
  droppedMessages: number;
  droppedRecords: number;
  corruptEntries: number;
  writeErrors: number;
}

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  segmentBytes?: number;
}

const SEGMENT = /^(\d{12})\.seg$/;

function recordsIn(frame: Buffer): number {
  try {
    return readFrameHeader(frame).count;
  } catch {
    return 0;
  }
}

export class Spool {
  private readonly segmentBytes: number;
  /** Segment numbers, oldest first. */
  private segments: number[] = [];
  private readonly sizes = new Map<number, number>();
  /** Messages not yet shipped, per segment. */
  private readonly counts = new Map<number, number>();
  /** Indexes of the messages of a segment already shipped (this run only). */
  private readonly shipped = new Map<number, Set<number>>();
  /** The segment appends may extend: never a previous run's, a replayed or a sealed one. */
  private appendTo: number | null = null;
  private replaying: number | null = null;
  /** Segments whose torn tail is already counted: a segment is read again at every replay attempt. */
  private readonly tornCounted = new Set<number>();
  /** The last refused write's error, for the log. */
  lastWriteError: string | null = null;
  readonly stats: SpoolStats = { bytes: 0, messages: 0, droppedMessages: 0, droppedRecords: 0, corruptEntries: 0, writeErrors: 0 };

  constructor(private readonly opts: SpoolOptions) {
    this.segmentBytes = opts.segmentBytes ?? Math.max(64 * 1024, Math.floor(opts.maxBytes / 8));
    mkdirSync(opts.dir, { recursive: true });
    for (const f of readdirSync(opts.dir).sort()) {
      const m = SEGMENT.exec(f);
      if (!m) continue;
      const n = Number(m[1]);
      this.segments.push(n);
      this.sizes.set(n, this.sizeOnDisk(n));
      this.counts.set(n, this.read(n).length);
    }
    this.recount();
  }

  get empty(): boolean {
    return this.stats.messages === 0;
  }

  private path(n: number): string {
    return join(this.opts.dir, `${String(n).padStart(12, '0')}.seg`);
  }

  private recount(): void {
    this.stats.bytes = [...this.sizes.values()].reduce((a, b) => a + b, 0);
    this.stats.messages = [...this.counts.values()].reduce((a, b) => a + b, 0);
  }

  /**
   * `alone`: the messages get a segment of their own, whatever its size, so that a replay
   * offers them again as they were first sent (a delivery that failed half-way).
   */
  append(msgs: SpooledMessage[], alone = false): void {
    if (alone && msgs.length > 0) this.appendTo = null;
    for (const m of msgs) {
      const topic = Buffer.from(m.topic);
      const rest = Buffer.alloc(2 + topic.length + 4 + m.value.length);
      rest.writeUInt16LE(topic.length, 0);
      topic.copy(rest, 2);
      rest.writeInt32LE(m.partition, 2 + topic.length);
      m.value.copy(rest, 6 + topic.length);
      const head = Buffer.alloc(8);
      head.writeUInt32LE(rest.length, 0);
      head.writeUInt32LE(crc32(rest), 4);
      let current = this.appendTo;
      if (current === null || (!alone && this.sizes.get(current)! + head.length + rest.length > this.segmentBytes)) {
        current = (this.segments.at(-1) ?? 0) + 1;
        this.segments.push(current);
        this.sizes.set(current, 0);
        this.counts.set(current, 0);
        this.appendTo = current;
      }
      try {
        appendFileSync(this.path(current), Buffer.concat([head, rest]));
      } catch (err) {
        this.lastWriteError = (err as Error).message;
        this.stats.writeErrors += 1;
        this.stats.droppedMessages += 1;
        this.stats.droppedRecords += recordsIn(m.value);
        try {
          truncateSync(this.path(current), this.sizes.get(current));
        } catch {
          this.appendTo = null;
          this.sizes.set(current, this.sizeOnDisk(current));
        }
        continue;
      }
      this.sizes.set(current, this.sizes.get(current)! + head.length + rest.length);
      this.counts.set(current, this.counts.get(current)! + 1);
    }
    if (alone) this.appendTo = null;
    this.recount();
    this.enforceLimit();
  }

  /** Drops whole oldest segments until the spool fits; never the one being written or replayed. */
  private enforceLimit(): void {
    while (this.stats.bytes > this.opts.maxBytes && this.segments.length > 1 && this.segments[0] !== this.replaying) {
      const oldest = this.segments.shift()!;
      for (const m of this.unshipped(oldest).keys()) {
        this.stats.droppedMessages += 1;
        this.stats.droppedRecords += recordsIn(m.value);
      }
      rmSync(this.path(oldest), { force: true });
      this.forget(oldest);
    }
  }

  private forget(n: number): void {
    if (this.appendTo === n) this.appendTo = null;
    this.sizes.delete(n);
    this.counts.delete(n);
    this.shipped.delete(n);
    this.tornCounted.delete(n);
    this.recount();
  }

  private sizeOnDisk(n: number): number {
    try {
      return statSync(this.path(n)).size;
    } catch {
      return 0;
    }
  }

  private read(n: number): SpooledMessage[] {
    let buf: Buffer;
    try {
      buf = readFileSync(this.path(n));
    } catch {
      return [];
    }
    const out: SpooledMessage[] = [];
    let off = 0;
    while (off + 8 <= buf.length) {
      const len = buf.readUInt32LE(off);
      const crc = buf.readUInt32LE(off + 4);
      const rest = buf.subarray(off + 8, off + 8 + len);
      if (rest.length !== len || crc32(rest) !== crc) break;
      const tlen = rest.readUInt16LE(0);
      out.push({
        topic: rest.subarray(2, 2 + tlen).toString(),
        partition: rest.readInt32LE(2 + tlen),
        value: Buffer.from(rest.subarray(6 + tlen)),
      });
      off += 8 + len;
    }
    if (off !== buf.length && !this.tornCounted.has(n)) {
      this.tornCounted.add(n);
      this.stats.corruptEntries += 1;
    }
    return out;
  }

  /** The messages of segment n not shipped yet, in order, each with its index in the segment. */
  private unshipped(n: number): Map<SpooledMessage, number> {
    const shipped = this.shipped.get(n);
    return new Map(this.read(n).flatMap((m, i) => (shipped?.has(i) ? [] : [[m, i] as const])));
  }

  /**
   * Hands the oldest segment's unshipped messages to `ship`, which reports with `shipped(ms)`
   * each time some of them (the very objects it was given) are in Kafka; the segment is
   * deleted once `ship` resolves, and if it throws the next replay offers what was not
   * reported. Returns false when there is nothing to replay. The segment is sealed: appends
   * meanwhile and later go to a new one.
   */
  async replayOldest(ship: (msgs: SpooledMessage[], shipped: (msgs: SpooledMessage[]) => void) => Promise<void>): Promise<boolean> {
    const oldest = this.segments[0];
    if (oldest === undefined) return false;
    this.replaying = oldest;
    if (this.appendTo === oldest) this.appendTo = null;
    try {
      const pending = this.unshipped(oldest);
      const shipped = this.shipped.get(oldest) ?? new Set<number>();
      this.shipped.set(oldest, shipped);
      if (pending.size > 0)
        await ship([...pending.keys()], (done) => {
          for (const m of done) {
            const i = pending.get(m);
            if (i === undefined || shipped.has(i)) continue;
            shipped.add(i);
            this.counts.set(oldest, this.counts.get(oldest)! - 1);
          }
          this.recount();
        });
    } finally {
      this.replaying = null;
    }
    rmSync(this.path(oldest), { force: true });
    this.segments.shift();
    this.forget(oldest);
    return true;
  }
}
