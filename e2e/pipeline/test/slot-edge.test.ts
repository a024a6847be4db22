// Connections whose two ends their agents read on either side of a close, through agents ->
// Kafka -> analyzer -> ClickHouse: each must be stored once, in one row with both ends and
// every byte the applications counted (the ground truth).
//  - One agent reads its end open, with all its bytes, in the slot the traffic was in; the
//    other reads that slot only after the close, so its whole end goes to the next slot
//    (agent.ts leaves a close after the slot's end to the next sweep). The order is forced,
//    not waited for: the late agent is stopped (SIGSTOP) across the boundary and continued
//    after the close.
//  - The server closes within the slot, the client, read open in it, only after the boundary:
//    its close comes alone in the next slot.
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
import { consumeRecords, type Consumed } from '@meshlens/e2e/kafka';
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

describe('connections closed around a slot boundary, read by their two agents on either side of the close', () => {
  const run = randomUUID().slice(0, 8);
  const dir = mkdtempSync(join(tmpdir(), 'meshlens-slot-edge-'));
  const conn = connectionsFor(localInfraConfig());
  const ch = clickhouseClient({ url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database: 'meshlens' });
  const running: Running[] = [];
  const agents = new Map<Role, { pid: number; metrics: string; node: string }>();
  const apps: ChildProcess[] = [];
  let analyzerMetrics = '';
  let lab: Lab;
  let serverApp: ChildProcess;
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
    serverApp = lab.host('server').spawn(process.execPath, [FIXTURE, 'server', String(PORT), String(REQUEST), String(ANSWER)], { stdio: ['pipe', 'pipe', 'inherit'] });
    apps.push(serverApp);
    server = new Lines(serverApp, serverApp.stdout!);
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
    try {
      await stopComponents(running);
      await ch.close();
    } finally {
      await lab?.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /**
   * Whether a TCP socket with `port` at either end is open in `host`'s namespace. Closed: gone,
   * or a time-wait socket (the kernel's stand-in after a socket closed, shown with a
   * `timewait` timer, whatever its TCP state).
   */
  async function open(host: Role, port: number): Promise<boolean> {
    const { stdout } = await lab.host(host).exec('ss', ['-Htano']);
    const at = new RegExp(`:${port}\\s`);
    return stdout.split('\n').some((l) => at.test(l) && !/^(LISTEN|TIME-WAIT)\s/.test(l) && !l.includes('timer:(timewait'));
  }

  const sweeps = (role: Role) => metric(agents.get(role)!.metrics, 'meshlens_agent_sweeps_total');

  /**
   * A connection opened, and its request answered, in a slot whose predecessor both agents
   * have swept (so neither read it before this slot ends).
   */
  async function connect(): Promise<{ slot: number; localPort: number; client: ChildProcess; lines: Lines }> {
    const before = await Promise.all(ROLES.map(sweeps));
    const slot = slotOf(Date.now()) + SLOT_MS;
    await sleepUntil(slot);
    await pollUntil(async () => (await Promise.all(ROLES.map(sweeps))).every((n, i) => n > before[i]!), SLOT_MS, 'both agents swept the previous slot');
    const client = lab.host('client').spawn(process.execPath, [FIXTURE, 'client', lab.host('server').ip4, String(PORT), String(REQUEST), String(ANSWER)], { stdio: ['pipe', 'pipe', 'inherit'] });
    apps.push(client);
    const lines = new Lines(client, client.stdout!);
    const { localPort } = JSON.parse(await lines.next((l) => l.includes('"exchanged"'))) as { localPort: number };
    assert.equal(slotOf(Date.now()), slot, 'the request and its answer fit in one slot');
    return { slot, localPort, client, lines };
  }

  /** Both applications' counts of the connection once both ends have closed: the client's view. */
  async function counted(lines: Lines, localPort: number): Promise<{ sent: number; received: number }> {
    const atClient = JSON.parse(await lines.next((l) => l.includes('"closed"'))) as { sent: number; received: number };
    const atServer = JSON.parse(await server.next((l) => l.includes(`"remotePort":${localPort},`))) as { sent: number; received: number };
    assert.deepEqual([atServer.received, atServer.sent], [atClient.sent, atClient.received], 'both applications counted the same bytes');
    assert.deepEqual([atClient.sent, atClient.received], [REQUEST, ANSWER]);
    return atClient;
  }

  /** Each end's records as the agents sent them, [slot from `slot`, bytes sent, closed]: the pattern a case is about, or it proves nothing. */
  async function recordsOf(slot: number, localPort: number): Promise<Record<Role, [number, number, boolean][]>> {
    const ours = (r: TcpRecord, role: Role) =>
      r.owner.node === agents.get(role)!.node && r.role === role && (role === 'client' ? r.local.port : r.remote.port) === localPort;
    const closedEnds = (xs: Consumed<TcpRecord>[]) => ROLES.every((role) => xs.some((x) => ours(x.record, role) && x.record.closed));
    const records = await consumeRecords<TcpRecord>({ brokers: conn.kafkaBrokers, topic: Topics.tcp, keep: (r) => ROLES.some((role) => ours(r, role)), done: closedEnds });
    const of = (role: Role) => records.filter((x) => ours(x.record, role)).map((x): [number, number, boolean] => [x.record.slot_start_ms - slot, x.record.bytes_sent, x.record.closed]);
    return { client: of('client'), server: of('server') };
  }

  /** The connection's rows, [slot from `slot`, observed, bytes c2s, bytes s2c], once the analyzer holds nothing more and ClickHouse has every row it made. */
  async function stored(slot: number, localPort: number): Promise<[number, string, number, number][]> {
    await pollUntil(
      async () =>
        (await metric(analyzerMetrics, 'meshlens_analyzer_held_records')) === 0 &&
        (await metric(analyzerMetrics, 'meshlens_analyzer_flows_total')) === (await metric(analyzerMetrics, 'meshlens_analyzer_rows_inserted_total', 'table="tcp_flows"')),
      // A lone row comes out at the idle flush (two slots).
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
    return rows.map((r) => [Number(r.at), r.observed, Number(r.bytes_c2s), Number(r.bytes_s2c)]);
  }

  const BYTES: Record<Role, number> = { client: REQUEST, server: ANSWER };

  for (const late of ROLES) {
    const early: Role = late === 'client' ? 'server' : 'client';
    it(`the ${late}'s agent reads the slot after the close, the ${early}'s before: one row, every byte once`, async () => {
      const { slot, localPort, client, lines } = await connect();
      const end = slot + SLOT_MS;
      await sleepUntil(end - 300);
      const earlySweeps = await sweeps(early);
      const { pid } = agents.get(late)!;
      process.kill(pid, 'SIGSTOP');
      let truth: { sent: number; received: number };
      try {
        await pollUntil(async () => (await sweeps(early)) > earlySweeps, SLOT_MS, `the ${early}'s agent's sweep of the slot`);
        client.stdin!.write('close\n');
        truth = await counted(lines, localPort);
        await pollUntil(async () => !(await open('client', localPort)) && !(await open('server', localPort)), SLOT_MS, 'both sockets closed');
        assert.equal(slotOf(Date.now()), end, "closed before the late agent's sweep of the slot could run");
      } finally {
        process.kill(pid, 'SIGCONT');
      }

      const records = await recordsOf(slot, localPort);
      assert.deepEqual(records[late], [[SLOT_MS, BYTES[late], true]], `the ${late}'s end, whole, in the next slot`);
      assert.deepEqual(records[early][0], [0, BYTES[early], false], `the ${early}'s end read open, with its bytes, in the slot`);
      assert.deepEqual(await stored(slot, localPort), [[0, 'both', truth.sent, truth.received]], 'one row, at the slot of the traffic, with both ends and the bytes the applications counted');
    });
  }

  it('the server closes within the slot, the client, read open there, after it: one row, both ends', async () => {
    const { slot, localPort, client, lines } = await connect();
    serverApp.stdin!.write(`close ${localPort}\n`);
    await lines.next((l) => l.includes('"ended"'));
    await pollUntil(async () => !(await open('server', localPort)), SLOT_MS, 'the server socket closed');
    assert.ok(await open('client', localPort), 'the client socket waits open');
    assert.equal(slotOf(Date.now()), slot, 'the server closed within the slot');
    const swept = await Promise.all(ROLES.map(sweeps));
    await sleepUntil(slot + SLOT_MS);
    await pollUntil(async () => (await Promise.all(ROLES.map(sweeps))).every((n, i) => n > swept[i]!), SLOT_MS, 'both agents swept the slot');
    client.stdin!.write('close\n');
    const truth = await counted(lines, localPort);

    const records = await recordsOf(slot, localPort);
    assert.deepEqual(records.server, [[0, ANSWER, true]], 'the server end, closed, in the slot');
    assert.deepEqual(records.client, [[0, REQUEST, false], [SLOT_MS, 0, true]], 'the client end read open in the slot, its close in the next');
    assert.deepEqual(await stored(slot, localPort), [[0, 'both', truth.sent, truth.received]], 'one row, at the slot of the traffic, with both ends');
  });
});
