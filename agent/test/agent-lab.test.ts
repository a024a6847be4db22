// Two agents, each scoped to one lab "node", shipping to the real Kafka: both ends of every
// connection (direct and through a DNAT service IP) must land on one partition with one
// canonical key and slot, and their byte counts must equal what the applications counted.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connectionsFor, localInfraConfig, repoRoot } from '@meshlens/deploy/local';
import { createLab, serviceAddress, Lines, type Lab } from '@meshlens/e2e/netlab';
import { consumeRecords, type Consumed } from '@meshlens/e2e/kafka';
import { Topics, connectionKey, type TcpRecord } from '@meshlens/schemas';
import { msUntilNextSlot } from '../src/slots.js';

const SLOT_MS = 3000;
const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/${f}`, import.meta.url));

describe('agents on two lab nodes -> Kafka', () => {
  const run = randomUUID().slice(0, 8);
  const nodes = { client: `client-${run}`, server: `server-${run}` };
  const brokers = connectionsFor(localInfraConfig()).kafkaBrokers;
  const spool = mkdtempSync(join(tmpdir(), 'meshlens-agent-spool-'));
  const vip = serviceAddress(9);
  let lab: Lab;
  const agents: ChildProcess[] = [];

  before(async () => {
    lab = await createLab({ prefix: 'agkafka', hosts: [{ name: 'client' }, { name: 'server' }] });
    await lab.addServiceIp({ vip4: vip.ip4, vip6: vip.ip6, port: 80, backend: 'server', backendPort: 8080, clients: ['client'] });
    for (const host of ['client', 'server'] as const) {
      const agent = spawn(
        process.execPath,
        ['--import', 'tsx', 'cli/src/main.ts', 'agent', '--netns', lab.host(host).ns, '--node', nodes[host], '--slot-ms', String(SLOT_MS),
          '--output', 'kafka', '--brokers', brokers.join(','), '--spool-dir', join(spool, host), '--metrics-port', '0'],
        { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      agents.push(agent);
      await new Lines(agent, agent.stderr!).next((l) => l.includes('"agent running"'), 30_000);
    }
  });

  after(async () => {
    for (const a of agents) if (a.exitCode === null) a.kill('SIGKILL');
    await lab?.destroy();
    rmSync(spool, { recursive: true, force: true });
  });

  it('matches both ends on one partition, key and slot, with the applications\' byte counts', async () => {
    const server = lab.host('server').spawn(process.execPath, [fixture('server.mjs'), '8080', '3000']);
    const serverLines = new Lines(server, server.stdout!);
    await serverLines.next((l) => l === 'listening');

    // Start right after a slot boundary so the short connections finish inside one slot.
    await new Promise((r) => setTimeout(r, msUntilNextSlot(Date.now(), SLOT_MS) + 50));
    const client = lab.host('client');
    const truth = new Map<number, { sent: number; received: number; dialled: string }>();
    for (const [target, n] of [[lab.host('server').ip4, 4], [vip.ip4, 4], [lab.host('server').ip6, 2], [vip.ip6, 2]] as const) {
      const port = target === vip.ip4 || target === vip.ip6 ? 80 : 8080;
      const r = await client.exec(process.execPath, [fixture('client.mjs'), target, String(port), String(n), '5000']);
      for (const line of r.stdout.trim().split('\n').filter((l) => l.startsWith('{'))) {
        const c = JSON.parse(line) as { localPort: number; sent: number; received: number };
        truth.set(c.localPort, { sent: c.sent, received: c.received, dialled: target });
      }
    }
    assert.equal(truth.size, 12);
    const serverTruth = new Map<number, { received: number; sent: number }>();
    while (serverTruth.size < truth.size) {
      const s = JSON.parse(await serverLines.next((l) => l.startsWith('{'))) as { remotePort: number; received: number; sent: number };
      serverTruth.set(s.remotePort, s);
    }

    // Stop both agents: SIGTERM must flush the current slot and exit within 5 s.
    for (const a of agents) {
      const t0 = Date.now();
      a.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => a.once('exit', (c) => r(c)));
      assert.equal(code, 0);
      assert.ok(Date.now() - t0 < 5000, `agent took ${Date.now() - t0} ms to stop`);
    }

    const isOurs = (r: TcpRecord) => r.owner.node === nodes.client || r.owner.node === nodes.server;
    // Both agents have stopped, so everything is in Kafka: read until each side of every
    // connection has at least the bytes its application sent (the exact check follows).
    const sentBy = (xs: Consumed<TcpRecord>[], port: number, server: boolean) =>
      xs.filter((x) => (server ? x.record.remote.port === port && x.record.owner.node === nodes.server : x.record.local.port === port && x.record.owner.node === nodes.client))
        .reduce((n, x) => n + x.record.bytes_sent, 0);
    const seen = await consumeRecords<TcpRecord>({
      brokers,
      topic: Topics.tcp,
      keep: isOurs,
      done: (xs) => [...truth].every(([port, t]) => sentBy(xs, port, false) >= t.sent && sentBy(xs, port, true) >= serverTruth.get(port)!.sent),
    });

    for (const [port, t] of truth) {
      const clientSide = seen.filter((x) => x.record.owner.node === nodes.client && x.record.local.port === port);
      const serverSide = seen.filter((x) => x.record.owner.node === nodes.server && x.record.remote.port === port);
      assert.ok(clientSide.length >= 1 && serverSide.length >= 1, `connection from port ${port}: both sides`);
      const c = clientSide[0]!.record;
      const s = serverSide[0]!.record;
      assert.equal(c.role, 'client');
      assert.equal(s.role, 'server');
      assert.equal(connectionKey(c.local, c.remote), connectionKey(s.local, s.remote), `port ${port}: same key after NAT`);
      assert.deepEqual(new Set([...clientSide, ...serverSide].map((x) => x.partition)).size, 1, `port ${port}: one partition`);
      assert.equal(c.slot_start_ms, s.slot_start_ms, `port ${port}: same slot`);
      const sum = (xs: typeof seen, f: (r: TcpRecord) => number) => xs.reduce((n, x) => n + f(x.record), 0);
      assert.equal(sum(clientSide, (r) => r.bytes_sent), t.sent, `port ${port}: client bytes sent`);
      assert.equal(sum(clientSide, (r) => r.bytes_received), t.received, `port ${port}: client bytes received`);
      assert.equal(sum(serverSide, (r) => r.bytes_received), serverTruth.get(port)!.received, `port ${port}: server bytes received`);
      assert.equal(sum(serverSide, (r) => r.bytes_sent), serverTruth.get(port)!.sent, `port ${port}: server bytes sent`);
      const viaVip = t.dialled === vip.ip4 || t.dialled === vip.ip6;
      assert.deepEqual(c.remote_orig, viaVip ? { ip: t.dialled, port: 80 } : null, `port ${port}: service address kept`);
      assert.equal(c.remote.port, 8080, `port ${port}: remote is the backend`);
    }
  });
});
