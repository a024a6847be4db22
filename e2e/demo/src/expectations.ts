/**
 * What triage should report for each zone when every incident runs at once, derived from
 * who calls whom (topology.ts) and where each incident strikes (incidents.ts).
 */
import { INCIDENT } from './incidents.js';
import { dnsNamesOf, NAMES, NODES, targetsOf, type ZoneKey } from './topology.js';

export interface ExpectedFinding {
  symptom: 'latency' | 'loss' | 'connectivity' | 'dns';
  scope: 'zone' | 'nodes';
  nodes: string[];
  /** "src->dst" zone names, sorted; empty for DNS. */
  zonePairs: string[];
  services: string[];
}

interface Call {
  client: string;
  server: string;
}

const zoneOf = (host: string) => NODES.find((n) => n.host === host)!.zone;
const serviceOf = (host: string) => NODES.find((n) => n.host === host)!.service;
const calls: Call[] = NODES.flatMap((n) => targetsOf(n.host).map((t) => ({ client: n.host, server: t.server })));

/**
 * Findings triage may add without being wrong, as envelopes (a tolerated finding has the
 * symptom, scope and nodes, and a subset of the zone pairs and services): a blackholed pod
 * makes its clients retransmit SYNs (loss on the same node), and a lossy node loses SYNs,
 * which the agent reports as SYN timeouts even when a retry then connects (connectivity on
 * the same node, near triage's 5-point floor, so present in some runs and not in others).
 */
export function toleratedTriage(zone: ZoneKey): ExpectedFinding[] {
  const want = expectedTriage(zone);
  return [
    ...want.filter((f) => f.symptom === 'connectivity').map((f) => ({ ...f, symptom: 'loss' as const })),
    ...want.filter((f) => f.symptom === 'loss').map((f) => ({ ...f, symptom: 'connectivity' as const })),
  ];
}

/** Whether `f` fits in envelope `e` (see toleratedTriage). */
export function fitsTolerated(f: ExpectedFinding, e: ExpectedFinding): boolean {
  const subset = (xs: string[], ys: string[]) => xs.length > 0 && xs.every((x) => ys.includes(x));
  return f.symptom === e.symptom && f.scope === e.scope && f.nodes.join() === e.nodes.join() && subset(f.zonePairs, e.zonePairs) && subset(f.services, e.services);
}

export function expectedTriage(zone: ZoneKey): ExpectedFinding[] {
  const n = NAMES;
  const pair = (c: Call) => `${n.zone(zoneOf(c.client))}->${n.zone(zoneOf(c.server))}`;
  const touches = (c: Call) => zoneOf(c.client) === zone || zoneOf(c.server) === zone;
  const services = (cs: Call[]) => [...new Set(cs.flatMap((c) => [n.service(serviceOf(c.client)), n.service(serviceOf(c.server))]))].sort();
  const pairs = (cs: Call[]) => [...new Set(cs.map(pair))].sort();
  const dead = INCIDENT.blackhole.host;
  const out: ExpectedFinding[] = [];

  // Latency: each direction of the slowed zone pair is its own zone-wide finding; calls to the
  // blackholed pod never complete a handshake, so they have no RTT to be slow with.
  const [x, y] = INCIDENT.latency.zones;
  for (const [from, to] of [[x, y], [y, x]] as const) {
    if (zone !== from && zone !== to) continue;
    const cs = calls.filter((c) => zoneOf(c.client) === from && zoneOf(c.server) === to && c.server !== dead);
    out.push({ symptom: 'latency', scope: 'zone', nodes: [], zonePairs: pairs(cs), services: services(cs) });
  }
  // Loss on one node: one finding confined to it, across every zone pair it talks over.
  const lossy = calls.filter((c) => (c.client === INCIDENT.loss.host || c.server === INCIDENT.loss.host) && c.server !== dead && touches(c));
  if (lossy.length) out.push({ symptom: 'loss', scope: 'nodes', nodes: [n.node(INCIDENT.loss.host)], zonePairs: pairs(lossy), services: services(lossy) });
  // The blackholed service: connection failures confined to its node.
  const failing = calls.filter((c) => c.server === dead && touches(c));
  if (failing.length) out.push({ symptom: 'connectivity', scope: 'nodes', nodes: [n.node(dead)], zonePairs: pairs(failing), services: services(failing) });
  // The SERVFAIL name: a DNS finding in the zones whose pods ask it, naming those pods' workloads.
  const askers = NODES.filter((p) => p.zone === zone && dnsNamesOf(p.host).includes(INCIDENT.dns.name));
  if (askers.length) out.push({ symptom: 'dns', scope: 'zone', nodes: [], zonePairs: [], services: [...new Set(askers.map((p) => n.service(p.service)))].sort() });
  return out;
}
