/**
 * The inventory `up` hands the collector: this machine as one host in zone "local", with
 * its own addresses, so that flows between its processes are labelled with a node and zone.
 */
import { hostname, networkInterfaces } from 'node:os';
import { stringify } from 'yaml';

export function hostInventoryYaml(name = hostname()): string {
  const ips = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal && !a.address.startsWith('fe80:'))
    .map((a) => a!.address);
  const host = { name: dnsName(name), zone: 'local', ...(ips.length ? { ips } : {}), labels: { 'meshlens.dev/source': 'up' } };
  return stringify({ version: 1, hosts: [host] });
}

/** The collector wants a lowercase DNS-style host name. */
function dnsName(n: string): string {
  return n.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '') || 'localhost';
}
