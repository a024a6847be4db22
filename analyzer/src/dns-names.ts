/**
 * Names learnt from DNS answers that agents observed: an IP nobody in the cluster owns is
 * labelled with the name a client looked up to reach it. Kept per IP, newest last, a few
 * per IP, because CDNs and cloud APIs reuse addresses across names over time.
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
      this.byIp.set(a, list);
      learnt++;
    }
    return learnt;
  }

  /** The name most recently resolved to `ip` no later than `untilMs`. */
  nameOf(ip: string, untilMs: number): string | null {
    const list = this.byIp.get(ip);
    if (!list) return null;
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.atMs < untilMs) return list[i]!.name;
    return null;
  }
}
