/**
 * Remembers every IP an object held and since when. Pod IPs are reused by later pods, so
 * a binding is only useful with its interval: opened when the IP first appears on the
 * object, closed when it disappears (a finished pod keeps its IP in status but the node
 * already gave it away) or when the object is deleted.
 */
import type { IpBinding } from '@meshlens/schemas';

export class IpTracker {
  private readonly bindings = new Map<string, IpBinding[]>();
  /** When each IP was last let go of: no later holder can have had it before that. */
  private readonly released = new Map<string, number>();

  /**
   * @param sinceMs when the IP appeared, if we saw it appear (a watch event: now). For an
   *   object found by a list its IPs existed before we looked, and the caller passes the
   *   best estimate it has (pod start, node creation).
   */
  observe(key: string, ips: readonly string[], nowMs: number, sinceMs: number): IpBinding[] {
    const next = (this.bindings.get(key) ?? []).map((b) => (b.to_ms === null && !ips.includes(b.ip) ? this.release(b, nowMs) : b));
    for (const ip of ips) {
      if (next.some((b) => b.ip === ip && b.to_ms === null)) continue;
      next.push({ ip, from_ms: Math.min(nowMs, Math.max(sinceMs, this.released.get(ip) ?? 0)), to_ms: null });
    }
    this.bindings.set(key, next);
    return next;
  }

  /** Closes every open binding and forgets the object. */
  close(key: string, nowMs: number): IpBinding[] {
    const known = this.bindings.get(key) ?? [];
    this.bindings.delete(key);
    return known.map((b) => (b.to_ms === null ? this.release(b, nowMs) : b));
  }

  private release(b: IpBinding, nowMs: number): IpBinding {
    this.released.set(b.ip, nowMs);
    return { ...b, to_ms: nowMs };
  }
}
