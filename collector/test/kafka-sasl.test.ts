// The collector against a Kafka that demands SASL/PLAIN, as production clusters do, configured
// the way users configure it (MESHLENS_KAFKA_SASL_* in the environment of the real CLI): with
// the right password every inventory record arrives; with a wrong one nothing is published, the
// failures are counted and the process keeps serving; a half-set SASL config is refused at start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { localInfraConfig, startKafka, stopProcess } from '@meshlens/deploy/local';
import { TestInfra } from './support/infra.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../examples/inventory.yaml', import.meta.url));
const USER = { username: 'meshlens', password: 'pa"ss\\word' };
const stateDir = mkdtempSync(join(tmpdir(), 'meshlens-collector-sasl-'));
const cfg = {
  ...localInfraConfig({ ...process.env, MESHLENS_STATE_DIR: stateDir, MESHLENS_KAFKA_PORT: '29492', MESHLENS_KAFKA_CONTROLLER_PORT: '29493' }),
  kafkaSasl: USER,
};
const brokers = [`127.0.0.1:${cfg.kafkaPort}`];

function runCollector(infra: TestInfra, sasl: Record<string, string>) {
  const env = { ...process.env, MESHLENS_KAFKA_BROKERS: brokers.join(','), MESHLENS_CLICKHOUSE_URL: infra.conn.clickhouseUrl, ...sasl };
  const args = ['--inventory', EXAMPLE, '--topic', infra.topic, '--database', infra.database, '--listen', '127.0.0.1:0'];
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'collector', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { child, exited, stderr: () => stderr };
}

/** The collector's log lines until one matches (bounded by the process's own output). */
async function logLine(child: ReturnType<typeof runCollector>['child'], pred: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for await (const line of createInterface(child.stdout!)) {
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (pred(entry)) return entry;
  }
  throw new Error('collector exited before the expected log line');
}

describe('collector: Kafka with SASL/PLAIN', () => {
  let brokerPid = 0;
  const infra = new TestInfra(brokers, { mechanism: 'plain', ...USER });

  before(async () => {
    brokerPid = (await startKafka(cfg)).pid;
  });

  after(async () => {
    try {
      if (brokerPid) await infra.cleanup();
    } finally {
      if (brokerPid) await stopProcess(brokerPid);
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('publishes with the right credentials from the environment', async () => {
    const run = runCollector(infra, { MESHLENS_KAFKA_SASL_MECHANISM: 'plain', MESHLENS_KAFKA_SASL_USERNAME: USER.username, MESHLENS_KAFKA_SASL_PASSWORD: USER.password });
    try {
      await logLine(run.child, (e) => e.msg === 'collector synced');
      run.child.kill('SIGTERM');
      assert.equal(await run.exited, 0, run.stderr());
    } finally {
      if (run.child.exitCode === null) run.child.kill('SIGKILL');
    }
    // The example inventory is 9 objects; all of them, read back over SASL.
    assert.equal((await infra.messages()).length, 9);
  });

  it('counts authentication failures, publishes nothing and keeps running with a wrong password', async () => {
    const other = new TestInfra(brokers, { mechanism: 'plain', ...USER });
    const run = runCollector(other, { MESHLENS_KAFKA_SASL_MECHANISM: 'plain', MESHLENS_KAFKA_SASL_USERNAME: USER.username, MESHLENS_KAFKA_SASL_PASSWORD: 'wrong' });
    try {
      const started = await logLine(run.child, (e) => e.msg === 'collector synced');
      const url = started.http as string;
      let failures = 0;
      for (let i = 0; i < 200 && failures === 0; i++) {
        const text = await (await fetch(`${url}/metrics`)).text();
        failures = Number(/^meshlens_collector_sink_errors_total\{[^}]*sink="kafka"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
        if (failures === 0) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(failures > 0, 'the refused deliveries are counted');
      // Liveness: a Kafka that refuses us is not a reason for the kubelet to restart the collector.
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      assert.equal(run.child.exitCode, null, 'the collector did not crash');
    } finally {
      run.child.kill('SIGKILL');
      await run.exited;
    }
    const admin = other.kafka.admin();
    await admin.connect();
    assert.ok(!(await admin.listTopics()).includes(other.topic), 'nothing was published, not even the topic');
    await admin.disconnect();
    await other.cleanup();
  });

  it('refuses a SASL mechanism without credentials at start, naming the field', async () => {
    const run = runCollector(infra, { MESHLENS_KAFKA_SASL_MECHANISM: 'scram-sha-256' });
    assert.equal(await run.exited, 1);
    assert.match(run.stderr(), /Kafka security settings .*sasl\.username/);
  });
});
