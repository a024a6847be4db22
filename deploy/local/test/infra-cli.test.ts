// The real CLI, as a user runs it, against its own state dir and ports so it cannot
// disturb the infrastructure the other tests share.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { repoRoot } from '@meshlens/deploy/local';

const stateDir = mkdtempSync(join(tmpdir(), 'meshlens-infra-'));
const ports = { kafka: 29092, controller: 29093, clickhouse: 28123 };
const env = {
  ...process.env,
  MESHLENS_STATE_DIR: stateDir,
  MESHLENS_KAFKA_PORT: String(ports.kafka),
  MESHLENS_KAFKA_CONTROLLER_PORT: String(ports.controller),
  MESHLENS_CLICKHOUSE_PORT: String(ports.clickhouse),
};

function pnpm(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync('pnpm', ['-s', 'meshlens', ...args], { cwd: repoRoot, env, encoding: 'utf8', timeout: 180_000 });
}

/** Runs the CLI with node directly, so PATH can be emptied to hide java. */
function cliWith(extraEnv: NodeJS.ProcessEnv, ...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', ...args], {
    cwd: repoRoot,
    env: { ...env, ...extraEnv },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function pidsIn(out: string): number[] {
  return [...out.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
}

/** A zombie counts as ended: it holds no port and init reaps it in its own time. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('meshlens infra (CLI)', () => {
  after(() => {
    pnpm('infra', 'down');
    rmSync(stateDir, { recursive: true, force: true });
  });

  for (const round of [1, 2]) {
    it(`up, up again, status, down leaves nothing behind (round ${round})`, async () => {
      const up = pnpm('infra', 'up');
      assert.equal(up.status, 0, up.stderr);
      const pids = pidsIn(up.stdout);
      assert.equal(pids.length, 2, up.stdout);
      assert.match(up.stdout, new RegExp(`127\\.0\\.0\\.1:${ports.kafka}`));
      assert.match(up.stdout, new RegExp(`http://127\\.0\\.0\\.1:${ports.clickhouse}`));

      const again = pnpm('infra', 'up');
      assert.equal(again.status, 0, again.stderr);
      assert.deepEqual(pidsIn(again.stdout), pids, 'a second up must reuse the running services');

      const status = pnpm('infra', 'status', '--json');
      assert.equal(status.status, 0, status.stdout + status.stderr);
      assert.deepEqual(
        (JSON.parse(status.stdout) as { name: string; answers: boolean }[]).map((s) => [s.name, s.answers]),
        [['kafka', true], ['clickhouse', true]],
      );

      const down = pnpm('infra', 'down');
      assert.equal(down.status, 0, down.stderr);
      for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} still alive after down`);
      for (const port of Object.values(ports)) assert.equal(await listening(port), false, `port ${port} still listening`);

      const after = pnpm('infra', 'status');
      assert.equal(after.status, 1, 'status must fail when nothing answers');
    });
  }

  it('fails fast with one clear line when a port is taken, and starts nothing', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(ports.kafka, '127.0.0.1', r));
    try {
      const up = cliWith({}, 'infra', 'up');
      assert.equal(up.status, 1);
      assert.equal(up.stderr.trim(), `meshlens: port ${ports.kafka} on 127.0.0.1 (Kafka) is already in use; free it or set MESHLENS_KAFKA_PORT`);
      assert.equal(await listening(ports.clickhouse), false);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('says what is missing when Java or the downloads are not there', async () => {
    const noJava = cliWith({ PATH: mkdtempSync(join(tmpdir(), 'meshlens-empty-path-')) }, 'infra', 'up');
    assert.equal(noJava.status, 1);
    assert.match(noJava.stderr, /^meshlens: no working Java found .*run scripts\/setup\.sh/);
    assert.equal(noJava.stderr.trim().split('\n').length, 1);
    pnpm('infra', 'down');

    const emptyCache = mkdtempSync(join(tmpdir(), 'meshlens-empty-cache-'));
    try {
      const noDownloads = cliWith({ MESHLENS_CACHE: emptyCache }, 'infra', 'up');
      assert.equal(noDownloads.status, 1);
      assert.match(noDownloads.stderr, /^meshlens: .* is missing.*; run scripts\/setup\.sh/);
      assert.equal(noDownloads.stderr.trim().split('\n').length, 1);
    } finally {
      rmSync(emptyCache, { recursive: true, force: true });
    }
    for (const port of Object.values(ports)) assert.equal(await listening(port), false, `port ${port} left listening`);
  });
});
