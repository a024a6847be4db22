/**
 * Names learnt from DNS answers that agents observed: an IP nobody in the cluster owns is
 * labelled with the name a client looked up to reach it. Kept per IP, newest last, a few
 * per IP, because CDNs and cloud APIs reuse addresses across names over time.
 *
 * Bounded: at most `maxIps` addresses, the least recently learnt or looked up evicted first
 * (a Map iterates in insertion order, so re-inserting on use keeps the oldest in front).
 */
import { isIP } from 'node:net';
import type { DnsRecord } from '@meshlens/schemas';

const PER_IP = 8;

interface Learnt {
  name: string;
  atMs: number;
}

export class DnsNames {
  private readonly byIp = new Map<string, Learnt[]>();

  constructor(
    private readonly maxIps = Number.POSITIVE_INFINITY,
    private readonly onEvict: () => void = () => {},
  ) {}

  get size(): number {
    return this.byIp.size;
  }

  learn(r: DnsRecord): number {
    if (r.rcode !== 0 || r.answers.length === 0) return 0;
    const name = r.qname.endsWith('.') ? r.qname.slice(0, -1) : r.qname;
    let learnt = 0;
    for (const a of r.answers) {
      if (isIP(a) === 0) continue;
      const list = this.byIp.get(a) ?? [];
      list.push({ name, atMs: r.ts_ms });
      list.sort((x, y) => x.atMs - y.atMs);
      if (list.length > PER_IP) list.shift();
      this.touch(a, list);
      learnt++;
    }
    return learnt;
  }

  /** The name most recently resolved to `ip` no later than `untilMs`. */
  nameOf(ip: string, untilMs: number): string | null {
    const list = this.byIp.get(ip);
    if (!list) return null;
    this.touch(ip, list);
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.atMs < untilMs) return list[i]!.name;
    return null;
  }

  private touch(ip: string, list: Learnt[]): void {
    this.byIp.delete(ip);
    this.byIp.set(ip, list);
    if (this.byIp.size <= this.maxIps) return;
    this.byIp.delete(this.byIp.keys().next().value!);
    this.onEvict();
  }
}
