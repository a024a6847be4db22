/**
 * The CLI end to end: `meshlens api` serves the fixture cluster from real ClickHouse, and the
 * query commands (top, triage, matrix, dns) are run as real processes against it. Their
 * --json output must be exactly what the API answers; their tables must carry its numbers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ClickHouseClient } from '@clickhouse/client';
import { connectionsFor, localInfraConfig, repoRoot } from '@meshlens/deploy/local';
import { bucketOf } from '@meshlens/schemas';
import { clickhouseClient, migrate } from '@meshlens/schemas/clickhouse';
import { DNS_SERVERS, FAILING_DNS, FAILING_NODE, generate, rows, WINDOW_MS } from './support/cluster-fixture.js';

const TOKEN = `t-${randomUUID()}`;
const INCIDENT = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000;
const fx = generate(INCIDENT);
const RANGE = ['--from', new Date(INCIDENT).toISOString(), '--to', new Date(INCIDENT + WINDOW_MS).toISOString()];
const database = `meshlens_test_cli_${randomUUID().replaceAll('-', '')}`;
const MAIN = join(repoRoot, 'cli/src/main.ts');

let ch: ClickHouseClient;
let server: ChildProcess;
let baseUrl = '';

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: repoRoot, env: { ...process.env, MESHLENS_API_TOKEN: TOKEN, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return once(child, 'close').then(([code]) => ({ code: code as number | null, stdout, stderr }));
}

async function api(path: string): Promise<unknown> {
  const res = await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200, path);
  return res.json();
}

before(async () => {
  const conn = connectionsFor(localInfraConfig());
  const target = { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database };
  await migrate(target);
  ch = clickhouseClient(target);
  for (const [table, values] of Object.entries(rows(fx, bucketOf))) await ch.insert({ table, values, format: 'JSONEachRow' });
  server = spawn(process.execPath, ['--import', 'tsx', MAIN, 'api', '--port', '0', '--database', database], {
    cwd: repoRoot,
    env: { ...process.env, MESHLENS_API_TOKENS: `other,${TOKEN}` },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // The server's "listening on" line is its readiness signal; an early exit fails the suite.
  const exited = once(server, 'exit').then(([code]) => Promise.reject(new Error(`meshlens api exited with ${String(code)}`)));
  const listening = (async () => {
    for await (const line of createInterface({ input: server.stdout! })) {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) return m[1]!;
    }
    throw new Error('meshlens api closed its output before listening');
  })();
  baseUrl = await Promise.race([listening, exited]);
});

after(async () => {
  if (server?.exitCode === null) {
    const gone = once(server, 'exit');
    process.kill(server.pid!, 'SIGTERM');
    await gone;
  }
  await ch?.command({ query: `DROP DATABASE IF EXISTS ${database}` });
  await ch?.close();
});

describe('cli against a served api', () => {
  it('prints exactly the API answer with --json', async () => {
    const q = `from=${encodeURIComponent(RANGE[1]!)}&to=${encodeURIComponent(RANGE[3]!)}`;
    const cases: [string[], string][] = [
      [['top'], `/api/v1/services?${q}`],
      [['triage', '--zone', 'zone-b'], `/api/v1/triage?${q}&zone=zone-b`],
      [['matrix', '--metric', 'rtt_p99'], `/api/v1/zones/matrix?${q}&metric=rtt_p99`],
      [['dns', '--by', 'client'], `/api/v1/dns?${q}&by=client`],
    ];
    for (const [args, path] of cases) {
      const r = await cli([...args, ...RANGE, '--url', baseUrl, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), await api(path), args.join(' '));
    }
  });

  it('prints readable tables carrying the API numbers', async () => {
    const triage = await cli(['triage', '--zone', 'zone-b', ...RANGE, '--url', baseUrl]);
    assert.equal(triage.code, 0, triage.stderr);
    assert.match(triage.stdout, new RegExp(`connectivity .* nodes ${FAILING_NODE} `));

    const matrix = await cli(['matrix', '--metric', 'rtt_p50', ...RANGE, '--url', baseUrl]);
    assert.equal(matrix.code, 0, matrix.stderr);
    const m = (await api(`/api/v1/zones/matrix?from=${RANGE[1]}&to=${RANGE[3]}&metric=rtt_p50`)) as { zones: string[]; matrix: (number | null)[][] };
    const lines = matrix.stdout.trim().split('\n');
    assert.deepEqual(lines[0]!.split(/\s+/).slice(1), m.zones);
    for (const [i, z] of m.zones.entries()) assert.deepEqual(lines[i + 1]!.split(/\s+/), [z, ...m.matrix[i]!.map((v) => (v === null ? '-' : v.toFixed(2)))]);

    const dns = await cli(['dns', ...RANGE, '--url', baseUrl]);
    assert.equal(dns.code, 0, dns.stderr);
    const servfails = fx.dns.filter((d) => d.incident && d.zone === FAILING_DNS.zone && d.rcode === 'SERVFAIL').length;
    assert.match(dns.stdout, new RegExp(`${DNS_SERVERS[FAILING_DNS.zone]!.replaceAll('.', '\\.')} .*SERVFAIL=${servfails}`));

    const top = await cli(['top', ...RANGE, '--url', baseUrl]);
    assert.equal(top.code, 0, top.stderr);
    assert.match(top.stdout, /^SERVICE\s+IN FLOWS/);
  });

  it('fails with the API message on a bad token or parameter', async () => {
    const unauthorized = await cli(['top', '--url', baseUrl, '--token', 'wrong']);
    assert.equal(unauthorized.code, 1);
    assert.match(unauthorized.stderr, /401/);
    const bad = await cli(['matrix', '--metric', 'jitter', '--url', baseUrl]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /400 .*metric/);
  });
});
