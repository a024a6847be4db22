// `meshlens analyzer` stops on SIGTERM even when its broker stopped answering: kafkajs'
// disconnect waits for a hung broker, so before cli/src/signals.ts the analyzer waited until
// the broker came back or a SIGKILL. The broker is the test's own, hung with SIGSTOP (not
// the shared one); ClickHouse is the suite's.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectionsFor, localInfraConfig, repoRoot, startKafka, stopProcess } from '@meshlens/deploy/local';
import { Lines } from '@meshlens/e2e/netlab';
import { clickhouseClient } from '@meshlens/schemas/clickhouse';

/** Shorter than the analyzer's default (20 s), and than the ~10 s its stop took with a hung broker here. */
const STOP_GRACE_MS = 3_000;
const stateDir = mkdtempSync(join(tmpdir(), 'meshlens-stop-kafka-'));
const cfg = localInfraConfig({ ...process.env, MESHLENS_STATE_DIR: stateDir, MESHLENS_KAFKA_PORT: '30592', MESHLENS_KAFKA_CONTROLLER_PORT: '30593' });
const database = `meshlens_test_stop_${randomUUID().replaceAll('-', '')}`;

describe('stopping a daemon whose broker hangs', () => {
  let brokerPid = 0;
  let analyzer: ChildProcess | undefined;

  before(async () => {
    brokerPid = (await startKafka(cfg)).pid;
  });

  after(async () => {
    if (analyzer && analyzer.exitCode === null && analyzer.signalCode === null) {
      const exited = once(analyzer, 'exit');
      analyzer.kill('SIGKILL');
      await exited;
    }
    if (brokerPid) {
      process.kill(brokerPid, 'SIGCONT');
      await stopProcess(brokerPid);
    }
    rmSync(stateDir, { recursive: true, force: true });
    const conn = connectionsFor(localInfraConfig());
    const ch = clickhouseClient({ url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database: 'default' });
    await ch.command({ query: `DROP DATABASE IF EXISTS ${database}` });
    await ch.close();
  });

  it('the analyzer exits within its grace period, saying why', async () => {
    analyzer = spawn(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'analyzer', '--database', database, '--http-port', '0'], {
      cwd: repoRoot,
      env: { ...process.env, MESHLENS_KAFKA_PORT: String(cfg.kafkaPort), MESHLENS_KAFKA_CONTROLLER_PORT: String(cfg.kafkaControllerPort), MESHLENS_STOP_GRACE_MS: String(STOP_GRACE_MS) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    analyzer.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const running = JSON.parse(await new Lines(analyzer, analyzer.stdout!).next((l) => l.includes('"analyzer running"'), 90_000)) as { port: number };
    // Hang the broker only once the consumer group has given this analyzer its partitions: then
    // its fetches and the group's heartbeats are in flight, as in a running deployment.
    for (const deadline = Date.now() + 60_000; ; ) {
      const health = (await (await fetch(`http://127.0.0.1:${running.port}/healthz`)).json()) as { detail: { assigned: Record<string, number[]> } };
      if (Object.keys(health.detail.assigned).length > 0) break;
      assert.ok(Date.now() < deadline, 'no partitions assigned within 60 s');
      await new Promise((r) => setTimeout(r, 200));
    }

    process.kill(brokerPid, 'SIGSTOP');
    const exited = once(analyzer, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const t0 = Date.now();
    analyzer.kill('SIGTERM');
    const [code, signal] = await exited;
    const took = Date.now() - t0;

    assert.equal(signal, null, 'it ended by itself, not by a signal');
    assert.equal(code, 1, 'a stop cut short is not a clean exit');
    assert.match(stderr, /meshlens analyzer: did not stop within 3 s/);
    assert.ok(took < STOP_GRACE_MS + 2_000, `exited ${took} ms after SIGTERM`);
  });
});
