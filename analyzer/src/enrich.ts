/**
 * Labels for one end of a connection as of a time window: the local end from the socket
 * owner the agent captured (pod UID beats IP: it survives hostNetwork and IP reuse), the
 * remote end from the IP index, then from DNS answers (`external:<name>`), then the bare IP.
 */
import type { Owner } from '@meshlens/schemas';
import type { DnsNames } from './dns-names.js';
import type { Identity, MetadataIndex } from './metadata-index.js';

/** An Identity from the cluster index, or a remote the cluster does not know: named by DNS (external) or a bare IP. */
export type SideLabel = Omit<Identity, 'kind'> & { kind: Identity['kind'] | 'external' | 'ip' };

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.');
}

export type PathKind = 'network' | 'same_node' | 'same_pod' | 'loopback';

/** More nodes than any cluster has: past it the labels below are dropped and made again. */
const MAX_NODE_LABELS = 10_000;

export class Enricher {
  /**
   * The label of an instrumented socket whose pod is not known, by node: one object per node
   * for all its rows instead of an object and a `node:` string per row (a new string that
   * the row encoder would flatten first). Labels are read, never changed, by their users.
   */
  private readonly nodeLabels = new Map<string, SideLabel>();

  constructor(
    private readonly index: MetadataIndex,
    private readonly names: DnsNames,
  ) {}

  /** `ip` is the local address; the window is the record's time (epoch ms, `toMs` exclusive). */
  local(owner: Owner, ip: string, fromMs: number, toMs: number): SideLabel {
    const byUid = owner.pod_uid ? this.index.podByUid(owner.pod_uid) : null;
    const found = byUid ?? this.index.resolve(ip, fromMs, toMs);
    if (found) return found.node && found.zone ? found : { ...found, node: found.node || owner.node, zone: found.zone || this.index.zoneOf(owner.node) };
    return this.nodeLabel(owner);
  }

  /** An instrumented socket always has a node, even when its pod is not (yet) known. */
  private nodeLabel(owner: Owner): SideLabel {
    const zone = this.index.zoneOf(owner.node);
    const podUid = owner.pod_uid ?? '';
    const known = this.nodeLabels.get(owner.node);
    if (known && known.zone === zone && known.podUid === podUid) return known;
    const label: SideLabel = { kind: 'node', node: owner.node, zone, namespace: '', workload: `node:${owner.node}`, service: '', pod: '', podUid };
    if (this.nodeLabels.size >= MAX_NODE_LABELS) this.nodeLabels.clear();
    this.nodeLabels.set(owner.node, label);
    return label;
  }

  /** `dialledIp` is the pre-NAT address (a service IP), '' for none: it names the service when the pod behind it is unknown. */
  remote(ip: string, fromMs: number, toMs: number, dialledIp = ''): SideLabel {
    const found = this.index.resolve(ip, fromMs, toMs) ?? (dialledIp ? this.index.resolve(dialledIp, fromMs, toMs) : null);
    if (found) return found;
    const name = this.names.nameOf(ip, toMs) ?? (dialledIp ? this.names.nameOf(dialledIp, toMs) : null);
    const workload = name ? `external:${name}` : ip;
    return { kind: name ? 'external' : 'ip', node: '', zone: '', namespace: '', workload, service: '', pod: '', podUid: '' };
  }

  static path(clientIp: string, serverIp: string, client: SideLabel, server: SideLabel, sameNetns: boolean): PathKind {
    if (isLoopback(clientIp) || isLoopback(serverIp)) return 'loopback';
    if (sameNetns || (client.podUid !== '' && client.podUid === server.podUid)) return 'same_pod';
    if (client.node !== '' && client.node === server.node) return 'same_node';
    return 'network';
  }
}

export { isLoopback };
