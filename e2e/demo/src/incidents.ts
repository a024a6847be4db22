/**
 * What `demo --incident` breaks, each in its own part of the topology so that all four can
 * run at once and every zone's triage has a known answer.
 */
import { DNS_NAMES, NODES, POD_PORT, VIP_SERVICE, ZONE_DELAY_MS, zonePairKey, type ZoneKey } from './topology.js';
import type { DemoLab } from './demo-lab.js';

export const INCIDENT_KINDS = ['latency', 'loss', 'blackhole', 'dns'] as const;
export type IncidentKind = (typeof INCIDENT_KINDS)[number];

/** Where each incident strikes: the ground truth the tests check triage against. */
export const INCIDENT = {
  /** Extra one-way delay on one zone pair, on top of its usual one. */
  latency: { zones: ['a', 'b'] as [ZoneKey, ZoneKey], extraMsEachWay: 15 },
  /**
   * Per-packet loss in each direction on all of one node's traffic: enough for a retransmit
   * rate well above triage's 1-point floor, too little for two lost SYNs in a row to fail
   * more than a few % of connections (the connectivity floor is 5 points).
   */
  loss: { host: 'c2', probability: 0.07 },
  /** Every packet to the service's only pod dropped: connections to it time out. */
  blackhole: { service: VIP_SERVICE, host: NODES.find((n) => n.service === VIP_SERVICE)!.host },
  /** A name the lab DNS server starts answering SERVFAIL. */
  dns: { name: DNS_NAMES.flaky },
} as const;

export function describeIncident(kind: IncidentKind): string {
  switch (kind) {
    case 'latency':
      return `+${INCIDENT.latency.extraMsEachWay} ms each way between zones ${INCIDENT.latency.zones.join(' and ')}`;
    case 'loss':
      return `${INCIDENT.loss.probability * 100}% packet loss on node ${INCIDENT.loss.host}`;
    case 'blackhole':
      return `service ${INCIDENT.blackhole.service} blackholed (node ${INCIDENT.blackhole.host}, port ${POD_PORT})`;
    case 'dns':
      return `${INCIDENT.dns.name} answers SERVFAIL`;
  }
}

export async function injectIncident(demo: DemoLab, kind: IncidentKind): Promise<void> {
  const lab = demo.lab;
  switch (kind) {
    case 'latency': {
      const [x, y] = INCIDENT.latency.zones;
      await lab.setDelay({ zone: x }, { zone: y }, ZONE_DELAY_MS[zonePairKey(x, y)]! + INCIDENT.latency.extraMsEachWay);
      return;
    }
    case 'loss':
      return lab.setLoss(INCIDENT.loss.host, INCIDENT.loss.probability);
    case 'blackhole':
      await lab.blackhole(INCIDENT.blackhole.host, POD_PORT);
      return;
    case 'dns': {
      const cfg = lab.dns.config;
      const records = { ...cfg.records };
      delete records[INCIDENT.dns.name];
      await lab.dns.update({ ...cfg, records, servfail: [...(cfg.servfail ?? []), INCIDENT.dns.name] });
      return;
    }
  }
}
