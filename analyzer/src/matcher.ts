/**
 * Per-partition matching of the two ends of a connection. Pure and deterministic: the same
 * messages fed from the same restored state emit the same groups in the same order, which
 * is what lets a replay after a crash reproduce an insert exactly (and ClickHouse drop it by
 * its token). No I/O, no clocks; time is the slots the records carry.
 */
import { isLoopback } from './enrich.js';
import { plainIPv4 } from './fast-validate.js';
import { HeldSide } from './held-side.js';

export interface FlowGroup {
  /** Where the matcher held the group (see `find`); unique within its slot. */
  key: string | number;
  slotStartMs: number;
  slotMs: number;
  client: HeldSide | null;
  server: HeldSide | null;
  /** Arrived after the watermark had passed its slot: stored as is, never matched. */
  late: boolean;
  /** Emitted before its grace period ended because the partition held too many records. */
  capFlushed: boolean;
}

interface HeldGroup extends FlowGroup {
  /** The other end of a connection between plain IPv4 addresses (see `numericEnds`), -1 for any other. */
  readonly peer: number;
}

/** Every group is made by this one literal: held ones are allocated in the old generation once V8 sees them live long (held-side.ts). */
function group(key: string | number, r: HeldSide, peer: number, late: boolean): HeldGroup {
  return {
    key,
    slotStartMs: r.slot_start_ms,
    slotMs: r.slot_ms,
    client: late && r.role === 'client' ? r : null,
    server: late && r.role === 'server' ? r : null,
    late,
    capFlushed: false,
    peer,
  };
}

interface Slot {
  groups: Map<string | number, HeldGroup>;
  minOffset: number;
  /** Whether a connection between plain IPv4 addresses was ever held by its string key here (see `find`). */
  spilled: boolean;
}

/**
 * Both endpoints, sorted, as connectionKey orders them, in one string built at once: the
 * matcher's key never leaves the process, so it needs no printable address form (`|` is in
 * no address). Loopback addresses repeat in every network namespace; only the netns tells
 * connections apart.
 */
function keyOf(r: HeldSide): string {
  const a = r.local_ip;
  const b = r.remote_ip;
  const key = a < b || (a === b && r.local_port <= r.remote_port) ? `${a}|${r.local_port}|${b}|${r.remote_port}` : `${b}|${r.remote_port}|${a}|${r.local_port}`;
  return isLoopback(a) ? `${key}@${r.owner.node}/${r.owner.netns}` : key;
}

/** `numericEnds`' answer (`ok`: whether it had one), in place: it runs for every record, and an object per answer would be garbage. */
const ends = { ok: false, end: 0, peer: 0 };

/**
 * A connection between two plain IPv4 addresses, not on loopback, as two numbers (address *
 * 2^16 + port, exact in a double): `end`, the end with the higher port (the ephemeral one as a
 * rule, which few connections of a slot share; equal ports: the lower value), and `peer`. False
 * for any other connection. Both sides of a connection give the same two numbers.
 */
function numericEnds(r: HeldSide): boolean {
  ends.ok = false;
  const a = plainIPv4(r.local_ip);
  // Loopback (127.0.0.0/8) goes by keyOf, which adds the netns.
  if (a < 0 || (a >= 127 * 2 ** 24 && a < 128 * 2 ** 24)) return false;
  const b = plainIPv4(r.remote_ip);
  if (b < 0) return false;
  ends.ok = true;
  const x = a * 65536 + r.local_port;
  const y = b * 65536 + r.remote_port;
  const localFirst = r.local_port > r.remote_port || (r.local_port === r.remote_port && x <= y);
  ends.end = localFirst ? x : y;
  ends.peer = localFirst ? y : x;
  return true;
}

/**
 * The group of `r`'s connection in `slot`. A connection between plain IPv4 addresses is held
 * by the number of one end, checked against the other (no key string is made and hashed per
 * record, which was most of the matcher's time); when another connection already holds that
 * number in the slot it is held by its string key instead, and from then on every lookup in
 * the slot that misses the number tries the string too. Any other connection goes by its
 * string key.
 */
function find(slot: Slot, r: HeldSide): HeldGroup | undefined {
  if (!numericEnds(r)) return slot.groups.get(keyOf(r));
  const g = slot.groups.get(ends.end);
  if (g !== undefined && g.peer === ends.peer) return g;
  return slot.spilled ? slot.groups.get(keyOf(r)) : undefined;
}

/** A new group for `r`'s connection in `slot`, where `find(slot, r)` just found none (and left `ends` set). */
function hold(slot: Slot, r: HeldSide): HeldGroup {
  const numeric = ends.ok;
  let g: HeldGroup;
  if (numeric && !slot.groups.has(ends.end)) {
    g = group(ends.end, r, ends.peer, false);
  } else {
    if (numeric) slot.spilled = true;
    g = group(keyOf(r), r, numeric ? ends.peer : -1, false);
  }
  slot.groups.set(g.key, g);
  return g;
}

export interface MatcherLimits {
  graceMs: number;
  /**
   * Most records held for matching at once. Past it the oldest slot is closed early, exactly
   * as if the watermark had passed it: its groups come out (one-sided where the other end has
   * not arrived) and later records for it are stored as late. The decision depends only on
   * the records fed, so a replay from a restored state closes the same slots at the same place.
   */
  maxHeld: number;
}

export interface MatcherState {
  /** Slots starting before this are closed. */
  watermarkMs: number;
  /** Records at offsets up to here in closed slots, or completing a group, were emitted before a restart: skip them. */
  emittedThrough: number;
}

export class Matcher {
  private readonly slots = new Map<number, Slot>();
  private maxSlotMs = Number.NEGATIVE_INFINITY;
  private heldCount = 0;
  watermarkMs: number;
  private readonly emittedThrough: number;

  private readonly graceMs: number;
  private readonly maxHeld: number;

  constructor(limits: MatcherLimits, state: MatcherState) {
    this.graceMs = limits.graceMs;
    this.maxHeld = limits.maxHeld;
    this.watermarkMs = state.watermarkMs;
    this.emittedThrough = state.emittedThrough;
  }

  get held(): number {
    return this.heldCount;
  }

  /**
   * Adds one record. A late one comes straight out in `out`, and so does a group the record
   * completes: each end sends one record per socket per slot, so once both ends of a
   * connection are in, its slot has nothing more to wait for (a 4-tuple reused within the slot
   * is another connection and makes another group), and holding it to the watermark would
   * only delay it by two slots; except where one end closed and the other was read open, whose
   * close is still to come. Returns false when the record was already emitted before a
   * restore: a record of a closed slot at or before `emittedThrough`, or one that completes a
   * group there (the group came out then, at this same record, in a committed unit).
   */
  add(r: HeldSide, offset: number, out: FlowGroup[]): boolean {
    if (r.slot_start_ms < this.watermarkMs) {
      if (offset <= this.emittedThrough) return false;
      out.push(numericEnds(r) ? group(ends.end, r, ends.peer, true) : group(keyOf(r), r, -1, true));
      return true;
    }
    if (r.slot_start_ms > this.maxSlotMs) this.maxSlotMs = r.slot_start_ms;
    let slot = this.slots.get(r.slot_start_ms);
    if (!slot) {
      slot = { groups: new Map(), minOffset: offset, spilled: false };
      this.slots.set(r.slot_start_ms, slot);
    }
    const g = find(slot, r) ?? hold(slot, r);
    const prev = r.role === 'client' ? g.client : g.server;
    const side = prev ? HeldSide.merge(prev, r) : r;
    if (r.role === 'client') g.client = side;
    else g.server = side;
    if (prev) return true;
    if (g.client !== null && g.server !== null) {
      const joined = this.joinEarlierEnd(g);
      if (joined === null && g.client.closed !== g.server.closed) {
        // One end closed and the other was read open: its close may come alone in a later
        // slot, and is taken in when this slot closes (`adoptFromLater`).
        if (++this.heldCount > this.maxHeld) this.closeOldestSlot(out);
        return true;
      }
      // The slot stays (with its first offset) until the watermark passes it: a replay must
      // start where its first record is, and meets this group again to drop it.
      slot.groups.delete(g.key);
      this.heldCount--;
      if (offset <= this.emittedThrough) return false;
      out.push(joined ?? g);
      return true;
    }
    if (++this.heldCount > this.maxHeld) this.closeOldestSlot(out);
    return true;
  }

  private closeOldestSlot(out: FlowGroup[]): void {
    let oldest = Number.POSITIVE_INFINITY;
    for (const s of this.slots.keys()) if (s < oldest) oldest = s;
    const from = out.length;
    this.advanceTo(oldest + 1, out);
    for (let i = from; i < out.length; i++) out[i]!.capFlushed = true;
  }

  /** After each message: moves the watermark to the newest slot minus grace and emits closed slots. */
  advance(out: FlowGroup[]): void {
    this.advanceTo(this.maxSlotMs - this.graceMs, out);
  }

  /** Moves the watermark to at least `watermarkMs` and emits every slot that closes. */
  advanceTo(watermarkMs: number, out: FlowGroup[]): void {
    if (watermarkMs <= this.watermarkMs) return;
    this.watermarkMs = watermarkMs;
    const closing = [...this.slots.keys()].filter((s) => s < watermarkMs).sort((a, b) => a - b);
    for (const s of closing) {
      // The held slots a lone end of this one may take its partner from, found once per slot.
      const later = [...this.slots.keys()].filter((x) => x > s && x <= s + this.graceMs).sort((a, b) => a - b);
      for (const g of this.slots.get(s)!.groups.values()) {
        this.heldCount -= (g.client ? 1 : 0) + (g.server ? 1 : 0);
        if (later.length) this.adoptFromLater(g, later);
        out.push(g);
      }
      this.slots.delete(s);
    }
  }

  /**
   * What of a closing group's connection a later held slot, within the grace period, holds
   * alone and belongs in the group's row, taken from there:
   *  - a one-sided group takes the other end. Each agent sweeps on its own clock: under CPU
   *    pressure a sweep runs late, and a short connection's two ends can land a slot or more
   *    apart although the connection lived in one.
   *  - a group held with one end closed (see `add`) takes the other end's close: its agent
   *    read it open, and its close, after the slot ended, went to the next sweep, while its
   *    peer had closed within the slot. A later end that opened there is another socket on the
   *    same 4-tuple: left apart.
   * Stored at the earlier slot, as one flow.
   */
  private adoptFromLater(g: HeldGroup, later: readonly number[]): void {
    const oneSided = !g.client !== !g.server;
    // Both closed since: a record of a 4-tuple reused within the slot was added to the open end.
    if (!oneSided && g.client!.closed === g.server!.closed) return;
    const role = oneSided ? (g.client ? 'server' : 'client') : g.client!.closed ? 'server' : 'client';
    for (const s of later) {
      const slot = this.slots.get(s);
      if (!slot) continue;
      const other = find(slot, (g.client ?? g.server)!);
      if (!other) continue;
      if (other.client && other.server) {
        if (oneSided) continue;
        return;
      }
      const taken = other[role];
      if (!taken || (!oneSided && taken.opened)) return;
      g[role] = oneSided ? taken : HeldSide.merge(g[role]!, taken);
      slot.groups.delete(other.key);
      this.heldCount--;
      return;
    }
  }

  /**
   * The lone end held in the slot before `g`'s, with `g` joined to it, if there is one and
   * `g` continues its socket: then that end's counters in `g` are not its whole part of the
   * connection. Each agent reads its ends once per slot, after the slot ended; an end that
   * closes between its peer's read and its own is left to the next slot whole (agent.ts),
   * while the peer's read already counted the same bytes in this one. Stored as two rows, a
   * lone one and then one with both ends, the connection's bytes would be in both (the row of
   * both ends takes the client's view, rows.ts). One row at the earlier slot, each end's
   * records added up, counts every byte once from either end's view. Only where the
   * connection ended in `g`'s slot: what agents leave to the next slot are closes, and
   * a connection that goes on keeps its later traffic in its own slot. A `g` end that opened,
   * or a held end that closed, is another socket on the same 4-tuple: left apart.
   */
  private joinEarlierEnd(g: HeldGroup): HeldGroup | null {
    if (!g.client!.closed && !g.server!.closed) return null;
    const slot = this.slots.get(g.slotStartMs - g.slotMs);
    if (!slot) return null;
    const earlier = find(slot, g.client!);
    if (!earlier || !earlier.client === !earlier.server) return null;
    const role = earlier.client ? 'client' : 'server';
    const before = earlier[role]!;
    const after = g[role]!;
    if (after.opened || before.closed) return null;
    earlier[role] = HeldSide.merge(before, after);
    if (role === 'client') earlier.server = g.server;
    else earlier.client = g.client;
    slot.groups.delete(earlier.key);
    this.heldCount--;
    return earlier;
  }

  /** A watermark past every held slot: what an idle partition flushes to. */
  closeAllWatermark(): number {
    let max = this.watermarkMs;
    for (const s of this.slots.keys()) if (s + 1 > max) max = s + 1;
    return max;
  }

  /** Oldest offset whose records are still held; the partition may not be committed past it. */
  heldFromOffset(): number | null {
    let min: number | null = null;
    for (const s of this.slots.values()) if (min === null || s.minOffset < min) min = s.minOffset;
    return min;
  }
}
