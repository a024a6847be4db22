// NAT translation read from a real conntrack table: a kube-proxy-style DNAT service IP in a
// lab namespace, real connections through it, and the backend the kernel chose.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createLab, pollUntil, serviceAddress, Lines, type Lab } from '@meshlens/e2e/netlab';
import type { TcpRecord } from '@meshlens/schemas';
import { NatTable, parseConntrackLine } from '../src/nat.js';
import { scrapeMetrics, startScopedAgent } from './support/socket-lab.js';

/** PIDs of `parent`'s live children whose command line has `arg`, from /proc. */
function childrenWith(parent: number, arg: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      // The command name may hold spaces and parentheses: the fields after its last ')'.
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === parent && state !== 'Z' && readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes(arg)) out.push(Number(d));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

describe('conntrack NAT table', () => {
  let lab: Lab;
  const vip = serviceAddress(7);

  before(async () => {
    lab = await createLab({ prefix: 'agnat', hosts: [{ name: 'client' }, { name: 'pod' }] });
    const server = lab
      .host('pod')
      .spawn(process.execPath, ['-e', "require('http').createServer((q, s) => s.end('ok')).listen(8080, '::', () => console.log('listening'))"]);
    await new Lines(server, server.stdout!).next((l) => l === 'listening');
    await lab.addServiceIp({ vip4: vip.ip4, vip6: vip.ip6, port: 80, backend: 'pod', backendPort: 8080, clients: ['client'] });
  });

  const agents: ChildProcess[] = [];
  /** Followers a test stopped (SIGSTOP): continued at the end whatever happened, so they can exit. */
  const paused: number[] = [];
  after(async () => {
    for (const pid of paused) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    for (const a of agents) if (a.exitCode === null) a.kill('SIGKILL');
    await lab?.destroy();
  });

  const curlFrom = (localPort: number, url: string) =>
    lab.host('client').exec('curl', ['-sS', '-g', '--max-time', '5', '--local-port', String(localPort), url]);

  it('parses listing and event lines, and ignores untranslated entries', () => {
    const listed = 'ipv4     2 tcp      6 118 TIME_WAIT src=198.18.0.2 dst=198.19.0.7 sport=40000 dport=80 src=198.18.1.2 dst=198.18.0.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1';
    assert.deepEqual(parseConntrackLine(listed), {
      client: { ip: '198.18.0.2', port: 40000 },
      dialled: { ip: '198.19.0.7', port: 80 },
      backend: { ip: '198.18.1.2', port: 8080 },
    });
    const event = '    [NEW] ipv6     10 tcp      6 120 SYN_SENT src=fd6d:6c00::2 dst=fd6d:6cff::7 sport=40001 dport=80 [UNREPLIED] src=fd6d:6c00:0:1::2 dst=fd6d:6c00::2 sport=8080 dport=40001';
    assert.deepEqual(parseConntrackLine(event)?.backend, { ip: 'fd6d:6c00:0:1::2', port: 8080 });
    const plain = 'ipv4     2 tcp      6 10 CLOSE src=198.18.0.2 dst=198.18.1.2 sport=40002 dport=8080 src=198.18.1.2 dst=198.18.0.2 sport=8080 dport=40002 mark=0 use=1';
    assert.equal(parseConntrackLine(plain), null);
  });

  it('learns translations that existed before it started and ones made afterwards, IPv4 and IPv6', async () => {
    const client = lab.host('client');
    const pod = lab.host('pod');
    assert.equal((await curlFrom(41001, `http://${vip.ip4}/`)).stdout, 'ok');
    const nat = new NatTable({ netnsPath: `/run/netns/${client.ns}` });
    nat.start();
    try {
      assert.deepEqual(nat.translate({ ip: client.ip4, port: 41001 }, { ip: vip.ip4, port: 80 }), { ip: pod.ip4, port: 8080 });

      const learnt = once(nat, 'translation', { signal: AbortSignal.timeout(10_000) });
      assert.equal((await curlFrom(41002, `http://[${vip.ip6}]/`)).stdout, 'ok');
      await learnt;
      assert.deepEqual(nat.translate({ ip: client.ip6, port: 41002 }, { ip: vip.ip6, port: 80 }), { ip: pod.ip6, port: 8080 });
      // A direct connection is not translated.
      assert.equal(nat.translate({ ip: client.ip4, port: 41003 }, { ip: pod.ip4, port: 8080 }), null);
      nat.prune(Date.now() + 11 * 60_000);
      assert.equal(nat.size, 0, 'entries older than the retention are forgotten');
    } finally {
      nat.stop();
    }
  });

  it('resolves a service address it missed events for by asking conntrack for that one entry', async () => {
    const client = lab.host('client');
    const pod = lab.host('pod');
    const nat = new NatTable({ netnsPath: `/run/netns/${client.ns}` });
    nat.start();
    try {
      const learnt = once(nat, 'translation', { signal: AbortSignal.timeout(10_000) });
      assert.equal((await curlFrom(41011, `http://${vip.ip4}/`)).stdout, 'ok');
      await learnt;
      assert.ok(nat.isService({ ip: vip.ip4, port: 80 }));
      // From here on no event reaches the table, as when the kernel drops them under load.
      nat.stop();
      assert.equal((await curlFrom(41012, `http://${vip.ip4}/`)).stdout, 'ok');
      assert.equal(nat.translate({ ip: client.ip4, port: 41012 }, { ip: vip.ip4, port: 80 }), null, 'the event was not read');
      assert.deepEqual(await nat.lookup({ ip: client.ip4, port: 41012 }, { ip: vip.ip4, port: 80 }), { ip: pod.ip4, port: 8080 });
      // Not a service address: no lookup, untranslated.
      assert.equal(await nat.lookup({ ip: client.ip4, port: 41013 }, { ip: pod.ip4, port: 8080 }), null);
      // A service address without such a connection: the kernel has no entry either.
      assert.equal(await nat.lookup({ ip: client.ip4, port: 41014 }, { ip: vip.ip4, port: 80 }), null);
    } finally {
      nat.stop();
    }
  });

  it('an agent records a connection to a service address translated though it never read its conntrack event', async () => {
    const client = lab.host('client');
    const pod = lab.host('pod');
    // Made before the agent starts, so that its dump of the table teaches it the service address.
    assert.equal((await curlFrom(41021, `http://${vip.ip4}/`)).stdout, 'ok');
    const { agent, metricsUrl } = await startScopedAgent(client.ns, 'nat-node', 1000, 'pipe', agents);
    const out = new Lines(agent, agent.stdout!);
    // Its conntrack event follower paused: the events of the connection below wait unread
    // until after the sweep, as when the follower lags on a busy node.
    const [follower, ...more] = childrenWith(agent.pid!, '-E');
    assert.ok(follower !== undefined && more.length === 0, 'the agent follows conntrack events with one child');
    paused.push(follower);
    process.kill(follower, 'SIGSTOP');

    assert.equal((await curlFrom(41022, `http://${vip.ip4}/`)).stdout, 'ok');
    const records: TcpRecord[] = [];
    await out.next((l) => {
      const r = JSON.parse(l) as TcpRecord & { type: string };
      if (r.type !== 'tcp' || r.local.port !== 41022) return false;
      records.push(r);
      return r.closed;
    });
    const metrics = await scrapeMetrics(metricsUrl);
    process.kill(follower, 'SIGCONT');
    const exited = once(agent, 'exit');
    agent.kill('SIGTERM');
    await exited;
    assert.ok(records.some((r) => r.bytes_sent > 0), JSON.stringify(records));
    for (const r of records) assert.deepEqual([r.remote, r.remote_orig], [{ ip: pod.ip4, port: 8080 }, { ip: vip.ip4, port: 80 }], JSON.stringify(r));
    assert.ok((metrics.get('meshlens_agent_nat_lookups_total{result="resolved"}') ?? 0) >= 1, 'counted as a lookup that resolved');
  });

  it('starts its event follower again when it ends, and learns from it', async () => {
    const client = lab.host('client');
    const pod = lab.host('pod');
    const nat = new NatTable({ netnsPath: `/run/netns/${client.ns}` });
    nat.start();
    try {
      const [follower, ...more] = childrenWith(process.pid, '-E');
      assert.ok(follower !== undefined && more.length === 0, 'one follower');
      const exit = once(nat, 'followerExit', { signal: AbortSignal.timeout(5000) });
      process.kill(follower, 'SIGKILL');
      assert.match(String((await exit)[0]), /SIGKILL/);
      await pollUntil(async () => childrenWith(process.pid, '-E').length === 1, 5000, 'a new follower');
      assert.notEqual(childrenWith(process.pid, '-E')[0], follower);
      // Learnt from the new follower's event: no lookup involved (translate never asks).
      const learnt = once(nat, 'translation', { signal: AbortSignal.timeout(10_000) });
      assert.equal((await curlFrom(41031, `http://${vip.ip4}/`)).stdout, 'ok');
      await learnt;
      assert.deepEqual(nat.translate({ ip: client.ip4, port: 41031 }, { ip: vip.ip4, port: 80 }), { ip: pod.ip4, port: 8080 });
    } finally {
      nat.stop();
    }
    await pollUntil(async () => childrenWith(process.pid, '-E').length === 0, 5000, 'no follower left after stop');
  });

  it('refuses to start, and leaves nothing running, where conntrack cannot run', async () => {
    const nat = new NatTable({ netnsPath: '/run/netns/meshlens-no-such-namespace' });
    const exits: string[] = [];
    nat.on('followerExit', (why: string) => exits.push(why));
    assert.throws(() => nat.start(), /conntrack -L failed/);
    await pollUntil(async () => childrenWith(process.pid, '-E').length === 0, 5000, 'no follower left');
    // Nothing signals that nothing happens: wait out one restart delay (1 s) and a half.
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(exits, [], 'a table that never started is not started again');
  });
});
