/**
 * What each agent topic turns into, per partition. Processors are the sharded stages of the
 * pipeline: one instance per (topic, partition), state owned by that instance alone, fed
 * messages in offset order by its PartitionWorker.
 */
import type { DnsRecord, RecordTypeName, TcpEvent } from '@meshlens/schemas';
import type { Enricher } from './enrich.js';
import type { HeldSide } from './held-side.js';
import { Matcher, type FlowGroup, type MatcherLimits, type MatcherState } from './matcher.js';
import type { Metrics } from './metrics.js';
import { dnsRow, eventRow, FlowRows } from './rows.js';

/** The `observed` value of a group with a client only, a server only, both (index: client 1 + server 2, less 1). */
const OBSERVED = ['client', 'server', 'both'] as const;

/** Where a unit of work's rows go, by table, in emission order (the sink's UnitRows encodes each at once). */
export interface UnitRows {
  /** Must not keep `row`: a processor may overwrite it for its next row. */
  add(table: string, row: Record<string, unknown>): void;
}

export interface PartitionProcessor {
  readonly recordType: RecordTypeName;
  onMessage(offset: number, records: unknown[], out: UnitRows): void;
  /** At a unit boundary. `idle` flushes everything held; `watermarkMs` replays a recorded unit end. */
  endUnit(out: UnitRows, opts: { idle: boolean; watermarkMs: number | null }): void;
  heldFromOffset(): number | null;
  held(): number;
  watermarkMs(): number;
}

export class FlowProcessor implements PartitionProcessor {
  readonly recordType = 'tcp';
  private readonly matcher: Matcher;
  private readonly rows: FlowRows;

  constructor(
    enrich: Enricher,
    private readonly metrics: Metrics,
    limits: MatcherLimits,
    state: MatcherState,
  ) {
    this.matcher = new Matcher(limits, state);
    this.rows = new FlowRows(enrich);
  }

  onMessage(offset: number, records: unknown[], out: UnitRows): void {
    const groups: FlowGroup[] = [];
    for (const r of records as HeldSide[]) this.matcher.add(r, offset, groups);
    this.matcher.advance(groups);
    this.emit(groups, out);
  }

  endUnit(out: UnitRows, opts: { idle: boolean; watermarkMs: number | null }): void {
    const groups: FlowGroup[] = [];
    const target = opts.watermarkMs ?? (opts.idle ? this.matcher.closeAllWatermark() : null);
    if (target !== null) this.matcher.advanceTo(target, groups);
    this.emit(groups, out);
  }

  private emit(groups: FlowGroup[], out: UnitRows): void {
    // Counted per call, not per row: a labelled prom-client increment hashes its labels.
    // Flows by (observed, late), indexed without building a label string per row.
    const flows = [0, 0, 0, 0, 0, 0];
    const unmatched = new Map<string, number>();
    let capFlushed = 0;
    for (const g of groups) {
      if (g.capFlushed) capFlushed += (g.client ? 1 : 0) + (g.server ? 1 : 0);
      const unmatchedReason = this.rows.build(g);
      flows[(g.client ? 1 : 0) + (g.server ? 2 : 0) - 1 + (g.late ? 3 : 0)]!++;
      if (unmatchedReason) unmatched.set(unmatchedReason, (unmatched.get(unmatchedReason) ?? 0) + 1);
      out.add('tcp_flows', this.rows.row);
    }
    for (let i = 0; i < flows.length; i++) {
      if (flows[i]! > 0) this.metrics.flows.inc({ observed: OBSERVED[i % 3]!, late: String(i >= 3) }, flows[i]!);
    }
    for (const [reason, n] of unmatched) this.metrics.unmatched.inc({ reason }, n);
    if (capFlushed > 0) this.metrics.capFlushedRecords.inc(capFlushed);
  }

  heldFromOffset(): number | null {
    return this.matcher.heldFromOffset();
  }

  held(): number {
    return this.matcher.held;
  }

  watermarkMs(): number {
    return this.matcher.watermarkMs;
  }
}

/** Events and DNS queries need no partner: every message's records become rows at once. */
export class PassThroughProcessor<T extends 'tcp_event' | 'dns'> implements PartitionProcessor {
  constructor(
    readonly recordType: T,
    private readonly table: string,
    private readonly toRow: (r: T extends 'dns' ? DnsRecord : TcpEvent) => Record<string, unknown>,
  ) {}

  onMessage(_offset: number, records: unknown[], out: UnitRows): void {
    for (const r of records as (T extends 'dns' ? DnsRecord : TcpEvent)[]) out.add(this.table, this.toRow(r));
  }

  endUnit(): void {}

  heldFromOffset(): null {
    return null;
  }

  held(): number {
    return 0;
  }

  watermarkMs(): number {
    return 0;
  }
}

export function eventProcessor(enrich: Enricher): PassThroughProcessor<'tcp_event'> {
  return new PassThroughProcessor('tcp_event', 'tcp_events', (e: TcpEvent) => eventRow(e, enrich));
}

export function dnsProcessor(enrich: Enricher): PassThroughProcessor<'dns'> {
  return new PassThroughProcessor('dns', 'dns_queries', (d: DnsRecord) => dnsRow(d, enrich));
}
