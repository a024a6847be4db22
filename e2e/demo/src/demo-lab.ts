/**
 * The demo's network lab with its pods running: namespaces, zone delays, the lab DNS
 * server, the service IP, one pod process per node driving steady traffic, and the
 * incidents. Knows nothing about meshlens itself: the CLI puts the product around it.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createLab, Lines, serviceAddress, type Lab } from '@meshlens/e2e/netlab';
import {
  DNS_DELAY_MS,
  DNS_NAMES,
  dnsNamesOf,
  inventory,
  NAMES,
  NODES,
  POD_PORT,
  targetsOf,
  VIP_CLIENTS,
  VIP_PORT,
  VIP_SERVICE,
  ZONE_DELAY_MS,
  ZONE_KEYS,
  type ZoneKey,
} from './topology.js';

const POD_APP = fileURLToPath(new URL('../app/pod.mjs', import.meta.url));

export interface DemoLabOptions {
  prefix: string;
  /** DNS lookups per second per pod that asks names. */
  dnsPerSecond?: number;
  bodyBytes?: number;
}

export interface TcpCount {
  ok: number;
  failed: number;
  sent: number;
  received: number;
}

export interface DnsCount {
  rcodes: Record<string, number>;
  latencyMs: number[];
}

export interface PodStats {
  /** Keyed by the address:port the pod dialled. */
  tcp: Record<string, TcpCount>;
  dns: Record<string, DnsCount>;
  served: { requests: number };
  inFlight: number;
}

/** One connection a pod made: its local port, the "address:port" dialled, whether its request completed (1), and its socket's byte counts (0 when it failed). */
export type PodConnection = [port: number, target: string, ok: 0 | 1, sent: number, received: number];

/** A pod's counts once its traffic stopped, with every connection it made. */
export interface FinalPodStats extends PodStats {
  connections: PodConnection[];
}

interface Pod {
  host: string;
  child: ChildProcess;
  lines: Lines;
}

export class DemoLab {
  readonly vip = serviceAddress(1);
  private readonly pods: Pod[] = [];

  private constructor(
    readonly lab: Lab,
    readonly prefix: string,
  ) {}

  static async create(o: DemoLabOptions): Promise<DemoLab> {
    const lab = await createLab({
      prefix: o.prefix,
      hosts: NODES.map((n) => ({ name: n.host, zone: n.zone })),
      dns: { records: { [DNS_NAMES.ok]: ['198.18.255.10'], [DNS_NAMES.flaky]: ['198.18.255.11'] }, nxdomain: [DNS_NAMES.missing] },
    });
    const demo = new DemoLab(lab, o.prefix);
    try {
      await demo.build(o);
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return demo;
  }

  private async build(o: DemoLabOptions): Promise<void> {
    for (const [pair, ms] of Object.entries(ZONE_DELAY_MS)) {
      const [x, y] = pair.split('-') as [ZoneKey, ZoneKey];
      await this.lab.setDelay({ zone: x }, { zone: y }, ms);
    }
    for (const z of ZONE_KEYS) await this.lab.setDelay('dns', { zone: z }, DNS_DELAY_MS);
    const backend = NODES.find((n) => n.service === VIP_SERVICE)!.host;
    await this.lab.addServiceIp({ vip4: this.vip.ip4, port: VIP_PORT, backend, backendPort: POD_PORT, clients: [...VIP_CLIENTS] });
    for (const n of NODES) {
      const cfg = {
        ip: this.ip4(n.host),
        port: POD_PORT,
        bodyBytes: o.bodyBytes ?? 2000,
        // Long enough for four SYNs (0, 1, 3, 7 s): on the lossy node a connection then fails
        // only when the network really is unusable, not after two unlucky drops.
        timeoutMs: 8000,
        targets: targetsOf(n.host).map((t) => ({ host: t.viaVip ? this.vip.ip4 : this.ip4(t.server), port: t.viaVip ? VIP_PORT : POD_PORT })),
        dnsServer: this.lab.dns.ip4,
        dnsNames: dnsNamesOf(n.host),
        dnsPerSecond: o.dnsPerSecond ?? 2,
        dnsTimeoutMs: 2000,
      };
      const child = this.lab.host(n.host).spawn(process.execPath, [POD_APP, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'inherit'] });
      const pod = { host: n.host, child, lines: new Lines(child, child.stdout!) };
      this.pods.push(pod);
      await pod.lines.next((l) => l === 'ready');
    }
  }

  nodeName(host: string): string {
    return NAMES.node(host);
  }

  ip4(host: string): string {
    return this.lab.host(host).ip4;
  }

  inventory(): object {
    return inventory({ ip4: (h) => this.ip4(h), dns4: this.lab.dns.ip4, vip4: this.vip.ip4 });
  }

  /** Network namespace of each node, for the agents. */
  nodes(): { host: string; ns: string }[] {
    return NODES.map((n) => ({ host: n.host, ns: this.lab.host(n.host).ns }));
  }

  /** Starts (or changes) the traffic: new connections per second over all pods; DNS lookups run while it is above 0. */
  setRate(connectionsPerSecond: number): void {
    for (const p of this.pods) p.child.stdin!.write(`rate ${connectionsPerSecond / NODES.length}\n`);
  }

  async stats(): Promise<Map<string, PodStats>> {
    const out = new Map<string, PodStats>();
    for (const p of this.pods) {
      p.child.stdin!.write('stats\n');
      out.set(p.host, JSON.parse((await p.lines.next((l) => l.startsWith('stats '))).slice(6)) as PodStats);
    }
    return out;
  }

  /** Stops new requests and DNS lookups; resolves with each pod's final counts once nothing is in flight. */
  async stopTraffic(): Promise<Map<string, FinalPodStats>> {
    for (const p of this.pods) p.child.stdin!.write('stop\n');
    const out = new Map<string, FinalPodStats>();
    for (const p of this.pods) out.set(p.host, JSON.parse((await p.lines.next((l) => l.startsWith('stopped '), 30_000)).slice(8)) as FinalPodStats);
    return out;
  }

  /** One extra request from `client` to `server`'s pod; resolves with the time its connection closed and its client port. */
  async mark(client: string, server: string): Promise<{ ok: boolean; at: number; port: number | null }> {
    const p = this.pods.find((x) => x.host === client)!;
    p.child.stdin!.write(`mark ${this.ip4(server)} ${POD_PORT}\n`);
    return JSON.parse((await p.lines.next((l) => l.startsWith('marked '))).slice(7)) as { ok: boolean; at: number; port: number | null };
  }

  /**
   * Median ping RTT (ms) between two hosts: the network's own round trip, as ground truth.
   * 40 pings over 4 s: when the VM's host takes its CPUs away for a fraction of a second, the
   * lab's delays run late for that long, and a burst must not cover half the samples (10 over
   * 0.5 s read 17.0 ms for a 16.1 ms path in a CI run with 9% steal).
   */
  async pingRttMs(from: string, to: string, count = 40): Promise<number> {
    const r = await this.lab.host(from).exec('ping', ['-n', '-c', String(count), '-i', '0.1', this.ip4(to)]);
    const rtts = r.stdout
      .split('\n')
      .map((l) => /time=([\d.]+) ms/.exec(l)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    if (rtts.length === 0) throw new Error(`ping ${from} -> ${to}: ${r.stdout}`);
    return rtts[Math.floor(rtts.length / 2)]!;
  }

  destroy(): Promise<void> {
    return this.lab.destroy();
  }
}
