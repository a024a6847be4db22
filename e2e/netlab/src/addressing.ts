// The lab's address plan. Zones are aggregates (one /19 and one /56 each) so a per-zone-pair rule
// in the router is one match on the subnet rather than one rule per host pair.
//
//   zone slot z (0 = hosts without a zone, 1..14 named zones, 15 = service addresses)
//   host slot h (0..31 within its zone)
//   IPv4 host subnet 198.18.0.0/15 + z*32 /24s + h -> router .1, host .2, unowned .254
//   IPv6 host subnet fd6d:6c00:0:ZZHH::/64       -> router ::1, host ::2, unowned ::fe

export const MAX_NAMED_ZONES = 14;
export const MAX_HOSTS_PER_ZONE = 32;
const SERVICE_SLOT = 15;
const V4_BASE = 198 * 2 ** 24 + 18 * 2 ** 16;

export interface Cidrs {
  v4: string;
  v6: string;
}

export interface LinkAddresses {
  subnet: Cidrs;
  router4: string;
  router6: string;
  host4: string;
  host6: string;
  /** Addresses in the subnet nobody owns: the router's ARP/NDP for them is never answered. */
  unowned4: string;
  unowned6: string;
}

function v4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

// Canonical text (RFC 5952), as dig, ss and conntrack print it, so addresses compare as strings.
function v6(zone: number, host: number, suffix: string): string {
  const group = (zone << 8) | host;
  return group === 0 ? `fd6d:6c00::${suffix}` : `fd6d:6c00:0:${group.toString(16)}::${suffix}`;
}

export function zoneCidrs(zone: number): Cidrs {
  return { v4: `${v4(V4_BASE + zone * MAX_HOSTS_PER_ZONE * 256)}/19`, v6: `${v6(zone, 0, '')}/56` };
}

export function linkAddresses(zone: number, host: number): LinkAddresses {
  if (zone < 0 || zone > MAX_NAMED_ZONES || host < 0 || host >= MAX_HOSTS_PER_ZONE) {
    throw new RangeError(`no addresses for zone slot ${zone}, host slot ${host}`);
  }
  const net4 = V4_BASE + (zone * MAX_HOSTS_PER_ZONE + host) * 256;
  return {
    subnet: { v4: `${v4(net4)}/24`, v6: `${v6(zone, host, '')}/64` },
    router4: v4(net4 + 1),
    router6: v6(zone, host, '1'),
    host4: v4(net4 + 2),
    host6: v6(zone, host, '2'),
    unowned4: v4(net4 + 254),
    unowned6: v6(zone, host, 'fe'),
  };
}

/**
 * The n-th address (0..255) of the range no host is ever given, for service VIPs. Any address
 * would do (the DNAT happens before routing), but one from here cannot collide with a host.
 */
export function serviceAddress(n: number): { ip4: string; ip6: string } {
  if (!Number.isInteger(n) || n < 0 || n > 255) throw new RangeError(`service address index ${n} not in 0..255`);
  return {
    ip4: v4(V4_BASE + SERVICE_SLOT * MAX_HOSTS_PER_ZONE * 256 + n),
    ip6: v6(SERVICE_SLOT, 0, n === 0 ? '' : n.toString(16)),
  };
}
