/**
 * Who owned an IP when: built from every metadata record of the compacted topic. Pod IPs
 * are reused, so an IP maps to a list of validity intervals, and lookups ask about a time
 * window (a slot), not about "now". Deleted objects keep their intervals: flows from
 * before the deletion still have to resolve to them.
 */
import type { Metadata } from '@meshlens/schemas';

type Pod = Extract<Metadata, { kind: 'pod' }>;
type NodeLike = Extract<Metadata, { kind: 'node' | 'host' }>;
type Service = Extract<Metadata, { kind: 'service' }>;

interface Binding {
  from: number;
  to: number;
  uid: string;
}

/** What the rest of the pipeline needs to know about one end of a connection. */
export interface Identity {
  kind: 'pod' | 'node' | 'service';
  node: string;
  zone: string;
  namespace: string;
  workload: string;
  service: string;
  pod: string;
  podUid: string;
}

function overlaps(b: Binding, from: number, to: number): boolean {
  return b.from < to && b.to > from;
}

export class MetadataIndex {
  private readonly objects = new Map<string, Metadata>();
  private readonly bindings = new Map<string, Binding[]>();
  private readonly bindingIpsByUid = new Map<string, string[]>();
  private readonly zoneByNode = new Map<string, string>();
  private readonly serviceByClusterIp = new Map<string, Service>();
  /** From endpoint slices: which service a pod backs (the first one wins for labelling). */
  private readonly serviceByPodUid = new Map<string, string>();
  private readonly serviceByEndpointIp = new Map<string, string>();

  apply(m: Metadata): void {
    const prev = this.objects.get(m.uid);
    this.objects.set(m.uid, m);
    if (prev?.kind === 'service') for (const ip of prev.cluster_ips) this.serviceByClusterIp.delete(ip);
    switch (m.kind) {
      case 'pod':
      case 'node':
      case 'host':
        this.rebind(m.uid, m.ips, m.deleted_ms);
        if (m.kind !== 'pod' && m.zone) this.zoneByNode.set(m.name, m.zone);
        break;
      case 'service':
        if (m.deleted_ms === null) for (const ip of m.cluster_ips) this.serviceByClusterIp.set(ip, m);
        break;
      case 'endpoint':
        for (const a of m.addresses) {
          const name = `${m.namespace}/${m.service}`;
          if (a.pod_uid && !this.serviceByPodUid.has(a.pod_uid)) this.serviceByPodUid.set(a.pod_uid, name);
          if (!this.serviceByEndpointIp.has(a.ip)) this.serviceByEndpointIp.set(a.ip, name);
        }
        break;
    }
  }

  /** A tombstone: the object is gone. Its open intervals end now; closed ones stay. */
  tombstone(uid: string, atMs: number): void {
    const m = this.objects.get(uid);
    if (m && (m.kind === 'pod' || m.kind === 'node' || m.kind === 'host')) this.rebind(uid, m.ips, m.deleted_ms ?? atMs);
    if (m?.kind === 'service') for (const ip of m.cluster_ips) this.serviceByClusterIp.delete(ip);
  }

  private rebind(uid: string, ips: { ip: string; from_ms: number; to_ms: number | null }[], endMs: number | null): void {
    for (const ip of this.bindingIpsByUid.get(uid) ?? []) {
      const list = this.bindings.get(ip)?.filter((b) => b.uid !== uid);
      if (list?.length) this.bindings.set(ip, list);
      else this.bindings.delete(ip);
    }
    for (const b of ips) {
      const to = b.to_ms ?? endMs ?? Number.POSITIVE_INFINITY;
      const list = this.bindings.get(b.ip) ?? [];
      list.push({ from: b.from_ms, to, uid });
      this.bindings.set(b.ip, list);
    }
    this.bindingIpsByUid.set(uid, ips.map((b) => b.ip));
  }

  podByUid(uid: string): Identity | null {
    const m = this.objects.get(uid);
    return m?.kind === 'pod' ? this.podIdentity(m) : null;
  }

  zoneOf(node: string): string {
    return this.zoneByNode.get(node) ?? '';
  }

  /**
   * The object that held `ip` during [fromMs, toMs). When several did (a pod IP handed over
   * mid-slot), the latest one wins; a pod wins over the node whose IP a hostNetwork pod shares.
   */
  resolve(ip: string, fromMs: number, toMs: number): Identity | null {
    let best: { b: Binding; m: Pod | NodeLike } | null = null;
    for (const b of this.bindings.get(ip) ?? []) {
      if (!overlaps(b, fromMs, toMs)) continue;
      const m = this.objects.get(b.uid);
      if (!m || (m.kind !== 'pod' && m.kind !== 'node' && m.kind !== 'host')) continue;
      const rank = (x: Pod | NodeLike) => (x.kind === 'pod' ? (x.host_network ? 1 : 2) : 1);
      if (!best || rank(m) > rank(best.m) || (rank(m) === rank(best.m) && b.from > best.b.from)) best = { b, m };
    }
    if (best) return best.m.kind === 'pod' ? this.podIdentity(best.m) : this.nodeIdentity(best.m);
    const svc = this.serviceByClusterIp.get(ip);
    if (svc) return { kind: 'service', node: '', zone: '', namespace: svc.namespace, workload: svc.name, service: `${svc.namespace}/${svc.name}`, pod: '', podUid: '' };
    return null;
  }

  private podIdentity(p: Pod): Identity {
    const node = p.node ?? '';
    const service = this.serviceByPodUid.get(p.uid) ?? p.ips.map((b) => this.serviceByEndpointIp.get(b.ip)).find((s) => s !== undefined) ?? '';
    return {
      kind: 'pod',
      node,
      zone: this.zoneOf(node),
      namespace: p.namespace,
      workload: p.workload_name ?? p.name,
      service,
      pod: p.name,
      podUid: p.uid,
    };
  }

  private nodeIdentity(n: NodeLike): Identity {
    return { kind: 'node', node: n.name, zone: n.zone ?? '', namespace: '', workload: `${n.kind}:${n.name}`, service: '', pod: '', podUid: '' };
  }
}
