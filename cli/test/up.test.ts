// `meshlens up` as a user runs it: the whole pipeline on this host (own state dir and ports),
// real loopback HTTP traffic, and the live summary must show that traffic with its server
// port; the API it starts answers `meshlens top` with the token it generated, and refuses
// requests without it; afterwards nothing it started is left listening.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from '@meshlens/deploy/local';

const stateDir = mkdtempSync(join(tmpdir(), 'meshlens-up-'));
const ports = { MESHLENS_KAFKA_PORT: 29292, MESHLENS_KAFKA_CONTROLLER_PORT: 29293, MESHLENS_CLICKHOUSE_PORT: 28323 };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createTcpServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

describe('meshlens up', () => {
  let server: Server;
  let up: ChildProcess | undefined;
  after(async () => {
    // A failed assertion leaves `up` running: Ctrl-C it, as the test would have, so that it
    // stops everything it started before its state directory goes.
    if (up && up.exitCode === null && up.signalCode === null) {
      const exited = once(up, 'exit');
      up.kill('SIGINT');
      await exited;
    }
    await new Promise((r) => server?.close(r));
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('runs the pipeline and shows live traffic, then stops everything it started', async () => {
    server = createServer((_req, res) => res.end('x'.repeat(1000)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const httpPort = (server.address() as { port: number }).port;

    const apiPort = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, MESHLENS_STATE_DIR: stateDir, ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])) };
    delete env.MESHLENS_API_TOKENS;
    delete env.MESHLENS_API_TOKEN;
    // node directly rather than through pnpm, so that SIGINT reaches the CLI itself, as Ctrl-C would.
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'up', '--slot-ms', '2000', '--api-port', String(apiPort)], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    up = child;
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const shows = new RegExp(`node@\\S+:${httpPort}\\s+\\d+\\s+[\\d,]+\\s+\\d+\\.\\d+`);

    // Traffic until a summary shows the server's flows (bounded), then Ctrl-C.
    for (let i = 0; i < 900 && !shows.test(out) && child.exitCode === null; i++) {
      await fetch(`http://127.0.0.1:${httpPort}/`).then((r) => r.text());
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(out, shows, `the summary shows the HTTP server's flows with RTT:\n${out}`);

    assert.match(out, new RegExp(`api\\s+http://127\\.0\\.0\\.1:${apiPort}/api/v1`));
    const token = readFileSync(join(stateDir, 'api-token'), 'utf8').trim();
    assert.ok(token.length >= 24, 'a generated token, not an empty or guessable one');
    assert.equal((await fetch(`http://127.0.0.1:${apiPort}/api/v1/services`)).status, 401);
    // `top` finds the API token `up` wrote, as a user typing it in another terminal would rely on.
    const top = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'top', '--json', '--url', `http://127.0.0.1:${apiPort}`], { cwd: repoRoot, env });
    const services = (JSON.parse(top.stdout) as { services: unknown[] }).services;
    assert.ok(Array.isArray(services) && services.length > 0, `top lists the services up is watching: ${top.stdout}`);
    child.kill('SIGINT');
    assert.equal(await exited, 0, out);
    assert.match(out, /agent\s+running \(pid \d+/);
    assert.match(out, /stopped\n$/);
    for (const port of [...Object.values(ports), 9464, 9465, 9466, apiPort]) assert.equal(await listening(port), false, `port ${port} left listening`);
  });
});
