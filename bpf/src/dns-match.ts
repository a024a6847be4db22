/**
 * Pairs DNS queries with their answers from the client's point of view: a query is a
 * packet a socket sent (egress, QR=0), its answer arrives at the same socket (ingress,
 * QR=1) from the same server with the same id. Server-side copies of the same exchange
 * (seen when both ends are on this host) are ignored, so each exchange counts once.
 */
import type { DnsPacketEvent } from './decode.js';

export interface DnsExchange {
  query: DnsPacketEvent;
  response: DnsPacketEvent | null;
  /** response.tsUs - query.tsUs; null when it timed out. */
  latencyUs: number | null;
  timedOut: boolean;
}

export interface DnsMatcherOptions {
  /** A query without an answer after this long is reported as timed out. Default 5 s. */
  timeoutUs?: number;
  /** Bound on outstanding queries; beyond it new queries are counted in `dropped`. */
  maxPending?: number;
}

const keyOf = (e: DnsPacketEvent) =>
  `${e.netns}|${e.transport}|${e.local.ip}|${e.local.port}|${e.remote.ip}|${e.remote.port}|${e.message!.id}`;

export class DnsMatcher {
  private readonly pending = new Map<string, DnsPacketEvent>();
  private readonly timeoutUs: number;
  private readonly maxPending: number;
  dropped = 0;

  constructor(opts: DnsMatcherOptions = {}) {
    this.timeoutUs = opts.timeoutUs ?? 5_000_000;
    this.maxPending = opts.maxPending ?? 65_536;
  }

  get outstanding(): number {
    return this.pending.size;
  }

  /** Feeds one packet; returns the exchange it completes, if any. */
  add(e: DnsPacketEvent): DnsExchange | null {
    if (!e.message) return null;
    if (e.egress && !e.message.response) {
      const k = keyOf(e);
      // A resend with the same id keeps the first send time: that is what the caller waited from.
      if (this.pending.has(k)) return null;
      if (this.pending.size >= this.maxPending) {
        this.dropped++;
        return null;
      }
      this.pending.set(k, e);
      return null;
    }
    if (!e.egress && e.message.response) {
      const k = keyOf(e);
      const query = this.pending.get(k);
      if (!query) return null;
      this.pending.delete(k);
      return { query, response: e, latencyUs: e.tsUs - query.tsUs, timedOut: false };
    }
    return null;
  }

  /** Removes and returns the queries that have waited longer than the timeout at `nowUs`. */
  expire(nowUs: number): DnsExchange[] {
    const out: DnsExchange[] = [];
    for (const [k, q] of this.pending) {
      if (nowUs - q.tsUs < this.timeoutUs) continue;
      this.pending.delete(k);
      out.push({ query: q, response: null, latencyUs: null, timedOut: true });
    }
    return out;
  }
}
