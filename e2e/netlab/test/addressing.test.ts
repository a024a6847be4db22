import assert from 'node:assert/strict';
import { BlockList, isIPv6 } from 'node:net';
import { test } from 'node:test';
import { linkAddresses, MAX_HOSTS_PER_ZONE, MAX_NAMED_ZONES, serviceAddress, zoneCidrs } from '../src/addressing.js';

function inCidr(ip: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/');
  const family = isIPv6(ip) ? 'ipv6' : 'ipv4';
  const list = new BlockList();
  list.addSubnet(net!, Number(bits), family);
  return list.check(ip, family);
}

function canonical6(ip: string): string {
  // The URL parser prints IPv6 hosts in RFC 5952 form.
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

test('every host address lies in its own subnet and its zone, nowhere else, in canonical form', () => {
  const seen = new Set<string>();
  for (let zone = 0; zone <= MAX_NAMED_ZONES; zone++) {
    const z = zoneCidrs(zone);
    for (let host = 0; host < MAX_HOSTS_PER_ZONE; host++) {
      const l = linkAddresses(zone, host);
      for (const ip of [l.host4, l.router4, l.unowned4]) {
        assert.ok(inCidr(ip, l.subnet.v4) && inCidr(ip, z.v4) && inCidr(ip, '198.18.0.0/15'), `${ip} ${l.subnet.v4} ${z.v4}`);
      }
      for (const ip of [l.host6, l.router6, l.unowned6]) {
        assert.equal(ip, canonical6(ip));
        assert.ok(inCidr(ip, l.subnet.v6) && inCidr(ip, z.v6) && inCidr(ip, 'fd6d:6c00::/48'), `${ip} ${l.subnet.v6} ${z.v6}`);
      }
      for (const ip of [l.host4, l.host6]) {
        assert.ok(!seen.has(ip), `${ip} given twice`);
        seen.add(ip);
      }
      if (zone > 0) assert.ok(!inCidr(l.host4, zoneCidrs(zone - 1).v4) && !inCidr(l.host6, zoneCidrs(zone - 1).v6));
    }
  }
  assert.throws(() => linkAddresses(MAX_NAMED_ZONES + 1, 0), RangeError);
  assert.throws(() => linkAddresses(0, MAX_HOSTS_PER_ZONE), RangeError);
});

test('service addresses never fall in a zone', () => {
  for (const n of [0, 1, 255]) {
    const s = serviceAddress(n);
    assert.equal(s.ip6, canonical6(s.ip6));
    for (let zone = 0; zone <= MAX_NAMED_ZONES; zone++) {
      assert.ok(!inCidr(s.ip4, zoneCidrs(zone).v4) && !inCidr(s.ip6, zoneCidrs(zone).v6), `${s.ip4} ${s.ip6} in zone ${zone}`);
    }
  }
  assert.throws(() => serviceAddress(256), RangeError);
});
