// Kafka stopped for a minute while traffic flows, then restarted: every record the agent
// produced in that time must arrive exactly once. The broker is the test's own, so the
// shared one is never disturbed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { localInfraConfig, repoRoot, startKafka, stopProcess } from '@meshlens/deploy/local';
import { createLab, Lines, type Lab } from '@meshlens/e2e/netlab';
import { consumeRecords } from '@meshlens/e2e/kafka';
import { Topics, type TcpRecord } from '@meshlens/schemas';

const OUTAGE_MS = Number(process.env.MESHLENS_TEST_KAFKA_OUTAGE_MS ?? 60_000);
const SLOT_MS = 2000;
const SEND_BYTES = 2000;
const ANSWER_BYTES = 1000;
const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/${f}`, import.meta.url));
const stateDir = mkdtempSync(join(tmpdir(), 'meshlens-outage-kafka-'));
const spoolDir = mkdtempSync(join(tmpdir(), 'meshlens-outage-spool-'));
const cfg = localInfraConfig({ ...process.env, MESHLENS_STATE_DIR: stateDir, MESHLENS_KAFKA_PORT: '25292', MESHLENS_KAFKA_CONTROLLER_PORT: '25293' });
const brokers = [`127.0.0.1:${cfg.kafkaPort}`];

describe('agent while Kafka is away', () => {
  let lab: Lab;
  let brokerPid = 0;

  before(async () => {
    brokerPid = (await startKafka(cfg)).pid;
    // Packets spread over CPUs as on a real host (RPS): only then did the kernel skip the state
    // tracepoint's program now and then (a run nested on a CPU, bpf/README.md), and ~1 in
    // 1,000 server ends went missing, more closes with their bytes (issue 4).
    lab = await createLab({ prefix: 'agout', hosts: [{ name: 'a' }, { name: 'b' }], flowsInOrder: true });
  });

  after(async () => {
    if (brokerPid) await stopProcess(brokerPid);
    await lab?.destroy();
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(spoolDir, { recursive: true, force: true });
  });

  it(`delivers every record produced during a ${OUTAGE_MS / 1000} s outage exactly once`, async () => {
    const node = `outage-${randomUUID().slice(0, 8)}`;
    const agent = spawn(
      process.execPath,
      ['--import', 'tsx', 'cli/src/main.ts', 'agent', '--netns', lab.host('a').ns, '--netns', lab.host('b').ns, '--node', node,
        '--slot-ms', String(SLOT_MS), '--brokers', brokers.join(','), '--spool-dir', spoolDir, '--metrics-port', '0'],
      { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const log = new Lines(agent, agent.stderr!);
    try {
      await log.next((l) => l.includes('"agent running"'), 30_000);
      const server = lab.host('b').spawn(process.execPath, [fixture('server.mjs'), '8080', String(ANSWER_BYTES)]);
      await new Lines(server, server.stdout!).next((l) => l === 'listening');
      const traffic = (n: number) => lab.host('a').exec(process.execPath, [fixture('client.mjs'), lab.host('b').ip4, '8080', String(n), String(SEND_BYTES)]);

      await traffic(5);
      await stopProcess(brokerPid);
      brokerPid = 0;
      // Connections keep coming for the whole outage; each slot's records go to the spool.
      const until = Date.now() + OUTAGE_MS;
      let made = 5;
      while (Date.now() < until) {
        await traffic(5);
        made += 5;
      }
      brokerPid = (await startKafka(cfg)).pid;
      await log.next((l) => l.includes('"spool drained"'), 60_000);
      await traffic(5);
      made += 5;

      agent.kill('SIGTERM');
      const stopped = JSON.parse(await log.next((l) => l.includes('"agent stopped"'), 15_000)) as { produced: { tcp: number } };
      assert.ok(stopped.produced.tcp >= 2 * made, `produced ${stopped.produced.tcp} tcp records for ${made} connections`);

      const got = (
        await consumeRecords<TcpRecord>({ brokers, topic: Topics.tcp, keep: (r) => r.owner.node === node, done: (xs) => xs.length >= stopped.produced.tcp })
      ).map((x) => x.record);
      assert.equal(got.length, stopped.produced.tcp, 'every produced record arrives');
      const ids = new Set(got.map((r) => `${r.sock_cookie}@${r.slot_start_ms}`));
      assert.equal(ids.size, got.length, 'no record arrives twice');
      // `opened` is set once per socket (`closed` is not: a close alone makes no record).
      const opened = (role: TcpRecord['role']) => got.filter((r) => r.role === role && r.opened).length;
      assert.equal(opened('client'), made, 'every connection made during the run is in Kafka');
      assert.equal(opened('server'), made, 'and so is its server end');
      // And all of their bytes: a socket whose close went unrecorded kept the counters of its
      // last reading, often none (received counts no retransmission: these sums are exact).
      const received = (role: TcpRecord['role']) => got.reduce((n, r) => n + (r.role === role ? r.bytes_received : 0), 0);
      assert.equal(received('server'), made * SEND_BYTES, 'bytes the servers received');
      assert.equal(received('client'), made * ANSWER_BYTES, 'bytes the clients received');
    } finally {
      if (agent.exitCode === null) agent.kill('SIGKILL');
    }
  });
});
