/**
 * A known synthetic cluster written into the raw tables (the materialized views fill the
 * rollups, as with the analyzer's inserts). Three zones of two nodes; frontend (zone-a)
 * calls cart (zone-b, both nodes), payments (only on node-b2) and catalog (zone-c); cart
 * calls catalog. Baseline: the 15 minutes before `incidentStart`; incident: the 15 after
 * (or `incidentMs`: a short incident shows whether a window of a few slots is diluted).
 * Injected in the incident: zone-a -> zone-c RTT x4 (every node), node-b2 refuses every
 * connection (no flows, connect failures), and zone-c's DNS server answers 40% SERVFAIL.
 * Every generated sample is kept so tests derive expected numbers, never hard-code them.
 */
import { seededRandom, toBucketRun } from '@meshlens/schemas';

/** DateTime64(3) text for the JSONEachRow inserts below. */
const chTime = (ms: number): string => new Date(ms).toISOString().slice(0, 23).replace('T', ' ');

export const SLOT_MS = 10_000;
export const WINDOW_MS = 15 * 60_000;
const SAMPLES_PER_FLOW = 8;
const SEGMENTS = 1000;
const RETRANS = 2;
const FAILURES_PER_SLOT = 1;

export interface Pod { name: string; node: string; zone: string; ip: string }
const pod = (name: string, node: string, zone: string, ip: string): Pod => ({ name, node, zone, ip });
export const PODS = {
  frontend: [pod('frontend-1', 'node-a1', 'zone-a', '10.1.1.1'), pod('frontend-2', 'node-a2', 'zone-a', '10.1.2.1')],
  cart: [pod('cart-1', 'node-b1', 'zone-b', '10.2.1.1'), pod('cart-2', 'node-b2', 'zone-b', '10.2.2.1')],
  payments: [pod('payments-1', 'node-b2', 'zone-b', '10.2.2.2')],
  catalog: [pod('catalog-1', 'node-c1', 'zone-c', '10.3.1.1'), pod('catalog-2', 'node-c2', 'zone-c', '10.3.2.1')],
} as const;
export type Service = keyof typeof PODS;
export const NAMESPACE = 'shop';
export const CALLS: [Service, Service][] = [['frontend', 'cart'], ['frontend', 'payments'], ['frontend', 'catalog'], ['cart', 'catalog']];
/** Median path RTT (us) between zones; a pair not listed is same-zone. */
const ZONE_RTT: Record<string, number> = { 'zone-a>zone-b': 900, 'zone-a>zone-c': 1500, 'zone-b>zone-c': 700 };
export const DEGRADED = { src: 'zone-a', dst: 'zone-c', factor: 4 };
export const FAILING_NODE = 'node-b2';
export const DNS_SERVERS = { 'zone-a': '10.9.0.1', 'zone-b': '10.9.0.2', 'zone-c': '10.9.0.3' } as Record<string, string>;
export const FAILING_DNS = { zone: 'zone-c', servfailEvery: 5, servfailPerCycle: 2 };

export interface FlowSample { incident: boolean; client: Service; server: Service; clientPod: Pod; serverPod: Pod; rttUs: number[]; slotMs: number }
export interface FailureSample { incident: boolean; client: Service; server: Service; clientPod: Pod; serverPod: Pod }
export interface DnsSample { incident: boolean; zone: string; client: Service; server: string; rcode: string; latencyUs: number; qname: string; tsMs: number }

export interface Fixture {
  incidentStart: number;
  incidentMs: number;
  flows: FlowSample[];
  failures: FailureSample[];
  dns: DnsSample[];
  constants: { segments: number; retrans: number };
}


const baseRtt = (c: Pod, s: Pod) => (c.zone === s.zone ? 150 : (ZONE_RTT[`${c.zone}>${s.zone}`] ?? 0));

export function generate(incidentStart: number, seed = 7, incidentMs = WINDOW_MS): Fixture {
  const rand = seededRandom(seed);
  const fx: Fixture = { incidentStart, incidentMs, flows: [], failures: [], dns: [], constants: { segments: SEGMENTS, retrans: RETRANS } };
  for (let t = incidentStart - WINDOW_MS; t < incidentStart + incidentMs; t += SLOT_MS) {
    const incident = t >= incidentStart;
    for (const [client, server] of CALLS) {
      for (const cp of PODS[client]) {
        for (const sp of PODS[server]) {
          if (incident && sp.node === FAILING_NODE) {
            for (let k = 0; k < FAILURES_PER_SLOT; k++) fx.failures.push({ incident, client, server, clientPod: cp, serverPod: sp });
            continue;
          }
          const factor = incident && cp.zone === DEGRADED.src && sp.zone === DEGRADED.dst ? DEGRADED.factor : 1;
          const rttUs = Array.from({ length: SAMPLES_PER_FLOW }, () => Math.round(baseRtt(cp, sp) * factor * (0.8 + 0.4 * rand())));
          fx.flows.push({ incident, client, server, clientPod: cp, serverPod: sp, rttUs, slotMs: t });
        }
      }
    }
    let n = 0;
    for (const client of ['frontend', 'cart', 'catalog'] as Service[]) {
      const zone = PODS[client][0].zone;
      const failing = incident && zone === FAILING_DNS.zone;
      const rcode = failing && n++ % FAILING_DNS.servfailEvery < FAILING_DNS.servfailPerCycle ? 'SERVFAIL' : 'NOERROR';
      fx.dns.push({ incident, zone, client, server: DNS_SERVERS[zone]!, rcode, latencyUs: Math.round(300 + 400 * rand()), qname: `${client}.example.com`, tsMs: t });
    }
  }
  return fx;
}

function sparse(samples: number[], bucketOf: (us: number) => number): { b: number[]; c: number[] } {
  const m = new Map<number, number>();
  for (const s of samples) m.set(bucketOf(s), (m.get(bucketOf(s)) ?? 0) + 1);
  const b = [...m.keys()].sort((x, y) => x - y);
  return { b, c: b.map((k) => m.get(k)!) };
}

/** `histogramsBefore0008`: tcp_flows rows in the form tables had before migration 0008 (sparse arrays). */
export function rows(
  fx: Fixture,
  bucketOf: (us: number) => number,
  { histogramsBefore0008 = false } = {},
): { tcp_flows: object[]; tcp_events: object[]; dns_queries: object[] } {
  let port = 30000;
  const side = (prefix: 'client' | 'server', p: Pod, svc: Service) => ({
    [`${prefix}_ip`]: p.ip, [`${prefix}_node`]: p.node, [`${prefix}_zone`]: p.zone, [`${prefix}_namespace`]: NAMESPACE,
    [`${prefix}_workload`]: svc, [`${prefix}_service`]: svc, [`${prefix}_pod`]: p.name,
  });
  const tcp_flows = fx.flows.map((f) => {
    const h = sparse(f.rttUs, bucketOf);
    const run = toBucketRun({ idx: h.b, cnt: h.c });
    const histograms = histogramsBefore0008
      ? { client_rtt_buckets: h.b, client_rtt_counts: h.c, server_rtt_buckets: [], server_rtt_counts: [] }
      : { client_rtt_first_bucket: run.first, client_rtt_bucket_counts: run.counts, server_rtt_first_bucket: 0, server_rtt_bucket_counts: [] };
    return {
      slot_start: chTime(f.slotMs), slot_ms: SLOT_MS, observed: 'both', late: false, path: 'network',
      client_port: port++ % 65536, server_port: 8080, service_ip: '', ...side('client', f.clientPod, f.client), ...side('server', f.serverPod, f.server),
      bytes_c2s: 1000, bytes_s2c: 5000, segs_c2s: SEGMENTS / 2, segs_s2c: SEGMENTS / 2, client_retrans: RETRANS, server_retrans: 0,
      client_rto: 0, server_rto: 0, resets_by_client: 0, resets_by_server: 0,
      client_srtt_us: f.rttUs[0], server_srtt_us: f.rttUs[0], client_min_rtt_us: Math.min(...f.rttUs), server_min_rtt_us: Math.min(...f.rttUs),
      ...histograms, opened: true, closed: true, attrs: {},
    };
  });
  const tcp_events = fx.failures.map((f, i) => ({
    ts: chTime(fx.incidentStart + (i % (fx.incidentMs / 1000)) * 1000), kind: 'connect_failed', errno: 111, errno_class: 'refused', syn_retrans: 0, role: 'client',
    local_ip: f.clientPod.ip, local_port: 40000, remote_ip: f.serverPod.ip, remote_port: 8080, service_ip: '',
    node: f.clientPod.node, zone: f.clientPod.zone, namespace: NAMESPACE, workload: f.client, pod: f.clientPod.name, comm: 'app',
    remote_node: f.serverPod.node, remote_zone: f.serverPod.zone, remote_namespace: NAMESPACE, remote_workload: f.server, remote_service: f.server,
  }));
  const dns_queries = fx.dns.map((d) => ({
    ts: chTime(d.tsMs), client_ip: PODS[d.client][0].ip, client_port: 50000, server_ip: d.server, server_port: 53,
    transport: 'udp', qname: d.qname, qtype: 'A', rcode: d.rcode, latency_us: d.latencyUs, latency_bucket: bucketOf(d.latencyUs), answers: [], ttl_min_s: 30,
    node: PODS[d.client][0].node, zone: d.zone, namespace: NAMESPACE, workload: d.client, pod: PODS[d.client][0].name, comm: 'app', server_name: `dns-${d.zone}`,
  }));
  return { tcp_flows, tcp_events, dns_queries };
}
