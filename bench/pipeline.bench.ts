/**
 * The whole pipeline on the demo topology (6 lab nodes, 6 agents with eBPF, Kafka, analyzer,
 * ClickHouse, API) at increasing connection rates, in one run:
 *  - agent CPU: CPU-seconds of the six agent processes (utime+stime from /proc/<pid>/stat)
 *    per wall second, and per 1,000 connections;
 *  - analyzer records/s: meshlens_analyzer_records_total over the agent topics;
 *  - Kafka bytes per record: growth of the agent topics' log segments on disk / records;
 *  - freshness: marked connections, one after another, from the close to the first row of
 *    that connection in tcp_flows (what the API's raw queries read), median.
 *   node --import tsx bench/pipeline.bench.ts [seconds=30] [rates=50,200,800] [slotMs=3000]
 * Needs root and the embedded infra (`pnpm meshlens infra up`) or configured external infra.
 */
import { readdirSync, readFileSync, statSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { localInfraConfig } from '@meshlens/deploy/local';
import { clickhouseClient } from '@meshlens/schemas/clickhouse';
import { DemoLab, NODES } from '@meshlens/e2e/demo';
import { startDemoStack } from '@meshlens/cli/demo-stack';

const [secondsArg, ratesArg, slotArg] = process.argv.slice(2);
const seconds = Number(secondsArg ?? 30);
const rates = (ratesArg ?? '50,200,800').split(',').map(Number);
const slotMs = Number(slotArg ?? 3000);
const CLK_TCK = 100;
const AGENT_TOPICS = /^meshlens\.agent\.(tcp|tcp_event|dns)-\d+$/;

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Bytes in the agent topics' log segments: what the brokers store for the agents' records. */
function kafkaLogBytes(dataDir: string): number {
  let sum = 0;
  for (const d of readdirSync(dataDir)) {
    if (!AGENT_TOPICS.test(d)) continue;
    for (const f of readdirSync(join(dataDir, d))) if (f.endsWith('.log')) sum += statSync(join(dataDir, d, f)).size;
  }
  return sum;
}

async function counter(url: string, name: string, filter: (labels: string) => boolean = () => true): Promise<number> {
  const text = await (await fetch(url)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+]+)$`).exec(line);
    if (m && filter(m[1] ?? '')) sum += Number(m[2]);
  }
  return sum;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const infra = localInfraConfig();
const kafkaData = join(infra.stateDir, 'kafka', 'data');
const dir = mkdtempSync(join(tmpdir(), 'meshlens-pipeline-bench-'));
const demo = await DemoLab.create({ prefix: 'hde2' });
const stack = await startDemoStack(demo, { slotMs, dir });
const c = stack.connections;
const ch = clickhouseClient({ url: c.clickhouseUrl, username: c.clickhouseUser, password: c.clickhousePassword, database: 'meshlens' });
const agentMetrics = stack.running.filter((r) => r.spec.name.startsWith('agent-')).map((r) => r.spec.healthUrl.replace('/healthz', '/metrics'));
const analyzerRecords = () => counter(stack.analyzerMetricsUrl, 'meshlens_analyzer_records_total', (l) => /topic="meshlens\.agent\./.test(l));
const agentRecords = async () => (await Promise.all(agentMetrics.map((u) => counter(u, 'meshlens_agent_records_total')))).reduce((a, b) => a + b, 0);
const agentCpu = () => [...stack.agents.values()].reduce((s, pid) => s + cpuSeconds(pid), 0);
const attempts = async () => [...(await demo.stats()).values()].reduce((s, p) => s + Object.values(p.tcp).reduce((x, t) => x + t.ok + t.failed, 0), 0);

/** From a marked connection's close to its first row in tcp_flows; null when the request itself failed or no row came within 2 minutes. */
async function freshnessMs(): Promise<number | null> {
  const m = await demo.mark('a1', 'a2');
  if (!m.ok || m.port === null) return null;
  for (;;) {
    const r = await (
      await ch.query({
        // a1 -> a2 carries only marks, so a reused client port cannot match another connection.
        query: `SELECT count() AS n FROM tcp_flows
                WHERE client_ip = {ip:String} AND client_port = {port:UInt16} AND server_ip = {server:String} AND slot_start >= {t:DateTime64(3)}`,
        query_params: { ip: demo.ip4('a1'), port: m.port, server: demo.ip4('a2'), t: new Date(m.at - 2 * slotMs).toISOString().replace('Z', '') },
        format: 'JSONEachRow',
      })
    ).json<{ n: string }>();
    if (Number(r[0]!.n) > 0) return Date.now() - m.at;
    if (Date.now() - m.at > 120_000) return null;
    await sleep(200);
  }
}

const results: string[] = [];
try {
  for (const rate of rates) {
    demo.setRate(rate);
    await sleep(2 * slotMs); // the new rate reaches every stage
    const t0 = Date.now();
    const [cpu0, an0, ag0, kb0, at0] = [agentCpu(), await analyzerRecords(), await agentRecords(), kafkaLogBytes(kafkaData), await attempts()];
    const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    const fresh: number[] = [];
    let lostMarks = 0;
    // Marks spread over the window, each a full round trip through the pipeline.
    while (Date.now() - t0 < seconds * 1000) {
      const f = await freshnessMs();
      if (f === null) lostMarks++;
      else fresh.push(f);
    }
    const wall = (Date.now() - t0) / 1000;
    const [cpu1, an1, ag1, kb1, at1] = [agentCpu(), await analyzerRecords(), await agentRecords(), kafkaLogBytes(kafkaData), await attempts()];
    const achieved = (at1 - at0) / wall;
    const line = `| ${rate} | ${achieved.toFixed(0)} | ${((cpu1 - cpu0) / wall).toFixed(3)} | ${(((cpu1 - cpu0) / (at1 - at0)) * 1000).toFixed(2)} | ${((an1 - an0) / wall).toFixed(0)} | ${((ag1 - ag0) / wall).toFixed(0)} | ${((kb1 - kb0) / (ag1 - ag0)).toFixed(1)} | ${fresh.length ? `${(median(fresh) / 1000).toFixed(1)} (${fresh.length}; max ${(Math.max(...fresh) / 1000).toFixed(1)})` : '-'} | ${lostMarks} | ${load0} |`;
    results.push(line);
    process.stdout.write(`${line}\n`);
  }
} finally {
  await ch.close();
  await stack.stop();
  await demo.destroy();
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(
  [
    '',
    `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString()}; slot ${slotMs} ms, ${seconds} s per rate, ${NODES.length} agents`,
    '| target conn/s | achieved conn/s | agent CPU (cores, sum of 6) | agent CPU-s per 1k conn | analyzer records/s | agent records/s | Kafka bytes/record | freshness s, median (marks; max) | marks failed or never stored | loadavg at start |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results,
    '',
  ].join('\n'),
);
