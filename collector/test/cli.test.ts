// `pnpm meshlens collector` as a process: it serves /healthz, and on SIGTERM it stops
// gracefully, delivering what it had before exiting 0; a bad inventory is one clear line.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { TestInfra } from './support/infra.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../examples/inventory.yaml', import.meta.url));

function runCollector(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'collector', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
  return { child, exited };
}

describe('meshlens collector (CLI)', () => {
  const infra = new TestInfra();
  const dir = mkdtempSync(join(tmpdir(), 'meshlens-cli-'));

  after(async () => {
    await infra.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /healthz and flushes everything on SIGTERM before exiting 0', async () => {
    const { child, exited } = runCollector(['--inventory', EXAMPLE, '--topic', infra.topic, '--database', infra.database, '--listen', '127.0.0.1:0']);
    try {
      let url: string | undefined;
      for await (const line of createInterface(child.stdout)) {
        const entry = JSON.parse(line) as { msg: string; http?: string };
        if (entry.msg === 'collector synced') {
          url = entry.http;
          break;
        }
      }
      assert.ok(url, 'the collector logged where it listens');
      const health = await fetch(`${url}/healthz`);
      assert.equal(health.status, 200);
      child.kill('SIGTERM');
      const { code } = await exited;
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    assert.equal((await infra.messages()).length, 9, 'the graceful stop delivered every record');
  });

  it('rejects an invalid inventory with one line naming file, line and field', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'version: 1\nservices:\n  - name: web\n    ports: [{ port: 70000 }]\n');
    const { exited } = runCollector(['--inventory', bad, '--topic', infra.topic, '--database', infra.database, '--listen', '127.0.0.1:0']);
    const { code, stderr } = await exited;
    assert.equal(code, 1);
    assert.equal(stderr, `meshlens collector: ${bad}:4:21: services[0].ports[0].port: Too big: expected number to be <=65535\n`);
  });
});
