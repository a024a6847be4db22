import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLab, serviceAddress, type Lab } from '../src/index.js';
import { requireRoot, startHttpServer } from './helpers.js';

let lab: Lab;
before(async () => {
  requireRoot();
  lab = await createLab({ prefix: 'tsvc', hosts: [{ name: 'client' }, { name: 'pod' }, { name: 'outsider' }] });
});
after(() => lab?.destroy());

test("a service IP reaches its backend from client hosts, and the client's conntrack holds the DNAT", async () => {
  const [client, pod, outsider] = [lab.host('client'), lab.host('pod'), lab.host('outsider')];
  const vip = serviceAddress(1);
  await startHttpServer(pod, 8080, 'hello from pod');
  await lab.addServiceIp({ vip4: vip.ip4, vip6: vip.ip6, port: 80, backend: 'pod', backendPort: 8080, clients: ['client'] });

  const url4 = `http://${vip.ip4}:80/`;
  const url6 = `http://[${vip.ip6}]:80/`;
  for (const url of [url4, url6]) {
    const r = await client.exec('curl', ['-sS', '-g', '--max-time', '5', url]);
    assert.equal(r.stdout, 'hello from pod', url);
  }

  // The translation lives in the client's namespace: original tuple to the VIP, reply from the pod.
  const ct4 = await client.exec('conntrack', ['-L', '-p', 'tcp', '--orig-dst', vip.ip4]);
  assert.match(ct4.stdout, new RegExp(`src=${client.ip4} dst=${vip.ip4} sport=\\d+ dport=80 .*src=${pod.ip4} dst=${client.ip4} sport=8080`));
  const ct6 = await client.exec('conntrack', ['-L', '-f', 'ipv6', '-p', 'tcp', '--orig-dst', vip.ip6]);
  assert.match(ct6.stdout, new RegExp(`src=${client.ip6} dst=${vip.ip6} sport=\\d+ dport=80 .*src=${pod.ip6} dst=${client.ip6} sport=8080`));

  // Only the listed clients get the rule; elsewhere the VIP leads nowhere.
  const r = await outsider.exec('curl', ['-sS', '--max-time', '3', url4], { allowFailure: true });
  assert.notEqual(r.code, 0, `outsider reached the service: ${r.stdout}`);
});
