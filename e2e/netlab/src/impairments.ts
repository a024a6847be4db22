import type { Cidrs } from './addressing.js';
import type { Family, Rule } from './rules.js';

// Rules for the router's FORWARD path. Every packet between two hosts crosses the router exactly
// once, so a rule here affects exactly the traffic of the hosts or zones it names.

export interface Scope {
  cidrs: Cidrs;
  /** A single host, as opposed to a zone; host rules go first so they beat zone rules. */
  host: boolean;
}

const families: Family[] = [4, 6];
const cidr = (s: Scope, f: Family) => (f === 4 ? s.cidrs.v4 : s.cidrs.v6);

/** Both directions between a and b go through NFQUEUE `queue`; NFQUEUE ends the chain, so the first match wins. */
export function delayRules(a: Scope, b: Scope, queue: number): Rule[] {
  const verb = a.host || b.host ? '-I' : '-A';
  return families.flatMap((family) =>
    [
      [a, b],
      [b, a],
    ].map(([src, dst]) => ({
      family,
      table: 'mangle' as const,
      spec: `${verb} FORWARD -s ${cidr(src!, family)} -d ${cidr(dst!, family)} -j NFQUEUE --queue-num ${queue}`,
    })),
  );
}

/** Each packet between a and b (or, without b, to or from a) is dropped with `probability`. */
export function lossRules(a: Scope, b: Scope | undefined, probability: number): Rule[] {
  const drop = `-m statistic --mode random --probability ${probability} -j DROP`;
  return families.flatMap((family) => {
    const matches = b
      ? [`-s ${cidr(a, family)} -d ${cidr(b, family)}`, `-s ${cidr(b, family)} -d ${cidr(a, family)}`]
      : [`-s ${cidr(a, family)}`, `-d ${cidr(a, family)}`];
    return matches.map((m) => ({ family, table: 'filter' as const, spec: `-A FORWARD ${m} ${drop}` }));
  });
}

export function blackholeRules(host: { ip4: string; ip6: string }, port: number, proto: 'tcp' | 'udp'): Rule[] {
  return families.map((family) => ({
    family,
    table: 'filter' as const,
    spec: `-I FORWARD -d ${family === 4 ? `${host.ip4}/32` : `${host.ip6}/128`} -p ${proto} --dport ${port} -j DROP`,
  }));
}

export interface ServiceTarget {
  vip4: string;
  vip6?: string;
  port: number;
  backend4: string;
  backend6: string;
  backendPort: number;
  proto: 'tcp' | 'udp';
}

/** kube-proxy's rule for node-local clients: DNAT in nat OUTPUT, so the client's conntrack holds it. */
export function serviceRules(s: ServiceTarget): Rule[] {
  const rule = (family: Family, vip: string, to: string): Rule => ({
    family,
    table: 'nat',
    spec: `-A OUTPUT -d ${vip}/${family === 4 ? 32 : 128} -p ${s.proto} --dport ${s.port} -j DNAT --to-destination ${to}`,
  });
  const rules = [rule(4, s.vip4, `${s.backend4}:${s.backendPort}`)];
  if (s.vip6) rules.push(rule(6, s.vip6, `[${s.backend6}]:${s.backendPort}`));
  return rules;
}
