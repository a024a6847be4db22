/**
 * The demo cluster, as data: three zones of two nodes, one pod per node (its address is the
 * node's, as for a CNI that routes pod IPs to the node), services over those pods, who calls
 * whom, the delays between zones, and the DNS names each pod asks. Tests derive their
 * expectations from this, not from restated constants.
 */
export const ZONE_KEYS = ['a', 'b', 'c'] as const;
export type ZoneKey = (typeof ZONE_KEYS)[number];

export interface NodeSpec {
  /** Lab host name, also the suffix of the node name. */
  host: string;
  zone: ZoneKey;
  service: string;
}

/** One pod per node; ledger has a single pod and is reached only through its service IP. */
export const NODES: readonly NodeSpec[] = [
  { host: 'a1', zone: 'a', service: 'web' },
  { host: 'a2', zone: 'a', service: 'api' },
  { host: 'b1', zone: 'b', service: 'ledger' },
  { host: 'b2', zone: 'b', service: 'web' },
  { host: 'c1', zone: 'c', service: 'api' },
  { host: 'c2', zone: 'c', service: 'db' },
];

export const POD_PORT = 8080;
export const VIP_PORT = 80;
export const VIP_SERVICE = 'ledger';
/** Clients of the service IP: they are the ones whose node programs the DNAT. */
export const VIP_CLIENTS = ['a1', 'a2'] as const;

/** Milliseconds each way between zones (differ per pair, so the matrix has something to show). */
export const ZONE_DELAY_MS: Record<string, number> = { 'a-b': 3, 'a-c': 5, 'b-c': 8 };
/** Milliseconds each way between every zone and the DNS server. */
export const DNS_DELAY_MS = 1.5;

export const DNS_NAMES = {
  ok: 'db.svc.lab',
  missing: 'missing.svc.lab',
  /** Resolves until the dns incident makes it SERVFAIL. */
  flaky: 'payments.ext.lab',
} as const;

/** Names each pod looks up in turn: zone a depends on payments; the loss node asks nothing, so its DNS stays out of the loss incident. */
export function dnsNamesOf(host: string): string[] {
  const n = NODES.find((x) => x.host === host)!;
  if (n.host === 'c2') return [];
  return n.zone === 'a' ? [DNS_NAMES.ok, DNS_NAMES.flaky] : [DNS_NAMES.ok, DNS_NAMES.missing];
}

export interface Target {
  /** The lab host that serves it. */
  server: string;
  viaVip: boolean;
}

/** Every pod calls every pod in the other zones directly, except ledger, which zone a reaches through the service IP only. */
export function targetsOf(host: string): Target[] {
  const me = NODES.find((n) => n.host === host)!;
  const direct = NODES.filter((n) => n.zone !== me.zone && n.service !== VIP_SERVICE).map((n) => ({ server: n.host, viaVip: false }));
  const vip = (VIP_CLIENTS as readonly string[]).includes(host) ? [{ server: NODES.find((n) => n.service === VIP_SERVICE)!.host, viaVip: true }] : [];
  return [...direct, ...vip];
}

export function zonePairKey(x: ZoneKey, y: ZoneKey): string {
  return x < y ? `${x}-${y}` : `${y}-${x}`;
}

/**
 * Names as the product sees them. The same for every lab prefix: labs reuse the same
 * addresses, and an inventory that named them differently per run would leave the
 * collector's earlier objects claiming the same IPs under other names.
 */
export const NAMES = {
  namespace: 'demo',
  zone: (z: ZoneKey) => `zone-${z}`,
  node: (host: string) => `node-${host}`,
  pod: (host: string) => `${NODES.find((n) => n.host === host)!.service}-${host}`,
  service: (name: string) => `demo/${name}`,
};

export interface Addresses {
  ip4: (host: string) => string;
  dns4: string;
  vip4: string;
}

/** The collector's inventory (collector/README.md) for this lab, as the object its YAML holds. */
export function inventory(addr: Addresses): object {
  const n = NAMES;
  const pod = (name: string, workload: { kind: string; name: string }, ip: string) => ({
    name,
    namespace: n.namespace,
    workload,
    ips: [ip],
    labels: { app: workload.name },
  });
  const hosts = [
    ...NODES.map((node) => ({
      name: n.node(node.host),
      zone: n.zone(node.zone),
      pods: [pod(n.pod(node.host), { kind: 'Deployment', name: node.service }, addr.ip4(node.host))],
    })),
    { name: n.node('dns'), pods: [pod('dnsmasq-0', { kind: 'StatefulSet', name: 'dns' }, addr.dns4)] },
  ];
  const services = [...new Set(NODES.map((x) => x.service)), 'dns'].map((s) => ({
    name: s,
    namespace: n.namespace,
    ...(s === VIP_SERVICE ? { cluster_ips: [addr.vip4] } : {}),
    ports: s === 'dns' ? [{ port: 53, protocol: 'UDP' }] : [{ port: s === VIP_SERVICE ? VIP_PORT : POD_PORT }],
    selector: { app: s },
  }));
  return { version: 1, hosts, services };
}
