// A connection whose two ends its agents read on either side of its close: one agent reads
// its end open, with all its bytes, in the slot the traffic was in; the other reads the same
// slot only after the close, so its whole end goes to the next slot (agent.ts leaves a close
// after the slot's end to the next sweep). Agents -> Kafka -> analyzer -> ClickHouse must
// store the connection with every byte once. The order is forced, not waited for: the late
// agent is stopped (SIGSTOP) across the slot boundary and continued after the close. Ground
// truth: the applications' own byte counts.
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { startComponent, stopComponents, type Running } from '@meshlens/cli/stack';
import { consumeRecords } from '@meshlens/e2e/kafka';
import { createLab, Lines, pollUntil, type Lab } from '@meshlens/e2e/netlab';
import { freePort } from '@meshlens/e2e/tcp-proxy';
import { clickhouseClient } from '@meshlens/schemas/clickhouse';
import { Topics, type TcpRecord } from '@meshlens/schemas';

const SLOT_MS = 3000;
// The sizes of the demo's requests and answers, whose connections were seen counted twice.
const REQUEST = 61;
const ANSWER = 2097;
const PORT = 8080;
const FIXTURE = fileURLToPath(new URL('./fixtures/held-connection.mjs', import.meta.url));
const ROLES = ['client', 'server'] as const;
type Role = (typeof ROLES)[number];

const slotOf = (ms: number) => Math.floor(ms / SLOT_MS) * SLOT_MS;
const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

/** The sum of a metric's samples on a /metrics page, of those whose labels include `label` if given. */
async function metric(url: string, name: string, label = ''): Promise<number> {
  const text = await (await fetch(url)).text();
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) if ((m[1] ?? '').includes(label)) sum += Number(m[2]);
  return sum;
}

describe("a connection closed between its two agents' reads of a slot", () => {
  const run = randomUUID().slice(0, 8);
  const dir = mkdtempSync(join(tmpdir(), 'meshlens-slot-edge-'));
  const conn = connectionsFor(localInfraConfig());
  const ch = clickhouseClient({ url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database: 'meshlens' });
  const running: Running[] = [];
  const agents = new Map<Role, { pid: number; metrics: string; node: string }>();
  const apps: ChildProcess[] = [];
  let analyzerMetrics = '';
  let lab: Lab;
  let server: Lines;

  before(async () => {
    lab = await createLab({ prefix: 'pedge', hosts: [{ name: 'client' }, { name: 'server' }] });
    const start = async (name: string, args: string[], port: number) => {
      const r = await startComponent({ name, args, healthUrl: `http://127.0.0.1:${port}/healthz` }, join(dir, `${name}.log`));
      running.push(r);
      return r;
    };
    const analyzerPort = await freePort();
    await start('analyzer', ['analyzer', '--grace-ms', String(SLOT_MS), '--idle-flush-ms', String(2 * SLOT_MS), '--http-port', String(analyzerPort)], analyzerPort);
    analyzerMetrics = `http://127.0.0.1:${analyzerPort}/metrics`;
    for (const role of ROLES) {
      const port = await freePort();
      const node = `${role}-${run}`;
      const args = ['agent', '--netns', lab.host(role).ns, '--node', node, '--slot-ms', String(SLOT_MS), '--spool-dir', join(dir, `spool-${role}`), '--metrics-port', String(port)];
      const r = await start(`agent-${role}`, args, port);
      agents.set(role, { pid: r.child.pid!, metrics: `http://127.0.0.1:${port}/metrics`, node });
    }
    const app = lab.host('server').spawn(process.execPath, [FIXTURE, 'server', String(PORT), String(REQUEST), String(ANSWER)], { stdio: ['ignore', 'pipe', 'inherit'] });
    apps.push(app);
    server = new Lines(app, app.stdout!);
    await server.next((l) => l === 'listening');
  });

  after(async () => {
    // A failed case may leave an agent stopped: it could not act on SIGTERM.
    for (const { pid } of agents.values()) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    for (const a of apps) if (a.exitCode === null) a.kill('SIGKILL');
    await stopComponents(running);
    await ch.close();
    await lab?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Whether a TCP socket with `port` at either end is in `host`'s namespace and not yet closed (TIME_WAIT is closed). */
  async function open(host: Role, port: number): Promise<boolean> {
    const states = ['syn-sent', 'syn-recv', 'established', 'fin-wait-1', 'fin-wait-2', 'close-wait', 'last-ack', 'closing'].flatMap((s) => ['state', s]);
    const { stdout } = await lab.host(host).exec('ss', ['-Htn', ...states]);
    return new RegExp(`:${port}\\s`).test(stdout);
  }

  for (const late of ROLES) {
    const early: Role = late === 'client' ? 'server' : 'client';
    it(`the ${late}'s agent reads the slot after the close, the ${early}'s before: one row, every byte once`, async () => {
      const sweeps = (role: Role) => metric(agents.get(role)!.metrics, 'meshlens_agent_sweeps_total');
      // The connection opens in a slot whose predecessor both agents have swept, so that
      // neither read it before that slot ends.
      const before = await Promise.all(ROLES.map(sweeps));
      const slot = slotOf(Date.now()) + SLOT_MS;
      await sleepUntil(slot);
      await pollUntil(async () => (await Promise.all(ROLES.map(sweeps))).every((n, i) => n > before[i]!), SLOT_MS, 'both agents swept the previous slot');
      const client = lab.host('client').spawn(process.execPath, [FIXTURE, 'client', lab.host('server').ip4, String(PORT), String(REQUEST), String(ANSWER)], { stdio: ['pipe', 'pipe', 'inherit'] });
      apps.push(client);
      const clientLines = new Lines(client, client.stdout!);
      const { localPort } = JSON.parse(await clientLines.next((l) => l.includes('"exchanged"'))) as { localPort: number };
      assert.equal(slotOf(Date.now()), slot, 'the request and its answer fit in one slot');

      const end = slot + SLOT_MS;
      await sleepUntil(end - 300);
      const earlySweeps = await sweeps(early);
      const { pid } = agents.get(late)!;
      process.kill(pid, 'SIGSTOP');
      let truth: { sent: number; received: number };
      try {
        await pollUntil(async () => (await sweeps(early)) > earlySweeps, SLOT_MS, `the ${early}'s agent's sweep of the slot`);
        client.stdin!.write('close\n');
        truth = JSON.parse(await clientLines.next((l) => l.includes('"closed"'))) as { sent: number; received: number };
        const atServer = JSON.parse(await server.next((l) => l.includes(`"remotePort":${localPort},`))) as { sent: number; received: number };
        assert.deepEqual([atServer.received, atServer.sent], [truth.sent, truth.received], 'both applications counted the same bytes');
        await pollUntil(async () => !(await open('client', localPort)) && !(await open('server', localPort)), SLOT_MS, 'both sockets closed');
        assert.equal(slotOf(Date.now()), end, "closed before the late agent's sweep of the slot could run");
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      assert.deepEqual([truth.sent, truth.received], [REQUEST, ANSWER]);

      // What the agents sent: the pattern this case is about, or it proves nothing.
      const ours = (r: TcpRecord, role: Role) =>
        r.owner.node === agents.get(role)!.node && r.role === role && (role === 'client' ? r.local.port : r.remote.port) === localPort;
      const records = await consumeRecords<TcpRecord>({
        brokers: conn.kafkaBrokers,
        topic: Topics.tcp,
        keep: (r) => ROLES.some((role) => ours(r, role)),
        done: (xs) => ROLES.every((role) => xs.filter((x) => ours(x.record, role)).reduce((n, x) => n + x.record.bytes_sent, 0) === (role === 'client' ? REQUEST : ANSWER)),
      });
      const slots = (role: Role) => records.filter((x) => ours(x.record, role)).map((x) => [x.record.slot_start_ms - slot, x.record.bytes_sent, x.record.closed]);
      assert.deepEqual(slots(late), [[SLOT_MS, late === 'client' ? REQUEST : ANSWER, true]], `the ${late}'s end, whole, in the next slot`);
      assert.deepEqual(slots(early)[0], [0, early === 'client' ? REQUEST : ANSWER, false], `the ${early}'s end read open, with its bytes, in the slot`);

      // Stored: once the analyzer holds nothing more and ClickHouse has every row it made.
      await pollUntil(
        async () =>
          (await metric(analyzerMetrics, 'meshlens_analyzer_held_records')) === 0 &&
          (await metric(analyzerMetrics, 'meshlens_analyzer_flows_total')) === (await metric(analyzerMetrics, 'meshlens_analyzer_rows_inserted_total', 'table="tcp_flows"')),
        // The lone row of a connection stored wrongly comes out at the idle flush (two slots).
        30_000,
        'the analyzer has stored every row it made',
      );
      const rows = await (
        await ch.query({
          query: `SELECT toUnixTimestamp64Milli(slot_start) - {slot:Int64} AS at, observed, bytes_c2s, bytes_s2c FROM tcp_flows
                  WHERE client_ip = {ip:String} AND client_port = {port:UInt16} AND server_port = {server:UInt16} AND slot_start >= fromUnixTimestamp64Milli({slot:Int64})
                  ORDER BY slot_start`,
          query_params: { slot, ip: lab.host('client').ip4, port: localPort, server: PORT },
          format: 'JSONEachRow',
        })
      ).json<{ at: string; observed: string; bytes_c2s: string; bytes_s2c: string }>();
      assert.deepEqual(
        rows.map((r) => [Number(r.at), r.observed, Number(r.bytes_c2s), Number(r.bytes_s2c)]),
        [[0, 'both', truth.sent, truth.received]],
        'one row, at the slot of the traffic, with both ends and the bytes the applications counted',
      );
    });
  }
});
