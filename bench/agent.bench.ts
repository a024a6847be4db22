/**
 * What the whole agent (probes + sweeps + records + output) costs, as root on this machine:
 *  1. user-space CPU and RSS of the agent process at 100 new connections/s with 1,000 open
 *     sockets, against the same agent idle in the same run (target: <= 0.25% of one core);
 *  2. RSS with 50k concurrent sockets and over a churn of many short connections (bounded?);
 *  3. loopback slowdown with the agent running vs. without, interleaved rounds, medians
 *     (target <= 3%), using bench/loadgen.c (BENCH_LOADGEN_CPU=n: on CPU n alone, see loadgen.ts).
 *   node --import tsx bench/agent.bench.ts [seconds=60] [churn=1000000] [rounds=5]
 * Output goes to /dev/null through --output stdout by default: the cost measured is the
 * agent's own, not a broker's. AGENT_BENCH_OUTPUT=kafka AGENT_BENCH_BROKERS=host:port runs
 * it with --output kafka instead (the production default: frames, zstd, kafkajs), against
 * brokers the bench is pointed at, e.g. an embedded `meshlens infra up`. AGENT_BENCH_PARTS
 * (default 1,2,3) picks which of the three parts run. CPU is the
 * CPU-seconds of the agent process, all its threads and all its child processes
 * (/proc/<pid>/stat), over whole slots after a warm-up; idle and loaded windows
 * interleaved, medians. The agent watches the whole host, so other processes' sockets
 * cost it too: each window reports how many sockets the agent's last sweep saw.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { buildLoadgen, loadgenCpu } from './loadgen.js';

const [seconds = 60, churn = 1_000_000, rounds = 5] = process.argv.slice(2).map(Number);
const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'meshlens-agent-bench-'));
const loadgen = buildLoadgen(dir);
const CLK_TCK = 100;
const SLOT_MS = 10_000;
// A daemon's cost is its steady state: V8 goes on compiling (TurboFan, on its worker threads)
// and the GC goes on resizing for a while into a load. That warm-up is measured and printed
// on its own, not mixed into the figure (bench/RESULTS.md, session 11). Two minutes: with
// --output kafka, functions that run a few times per sweep (Node's Buffer writers under
// kafkajs) were still being compiled 60-130 s into a load, ~0.08% of a core, and none after
// that (--trace-opt, bench/RESULTS.md, session 15).
const WARMUP_SWEEPS = Number(process.env.AGENT_BENCH_WARMUP_SWEEPS ?? 12);
const OUTPUT = process.env.AGENT_BENCH_OUTPUT ?? 'stdout';
const PARTS = new Set((process.env.AGENT_BENCH_PARTS ?? '1,2,3').split(',').map(Number));
if (OUTPUT !== 'stdout' && OUTPUT !== 'kafka') throw new Error(`AGENT_BENCH_OUTPUT=${OUTPUT}: stdout or kafka`);
if (OUTPUT === 'kafka' && !process.env.AGENT_BENCH_BROKERS) throw new Error('AGENT_BENCH_OUTPUT=kafka needs AGENT_BENCH_BROKERS=host:port');
const outputArgs = OUTPUT === 'kafka' ? ['--output', 'kafka', '--brokers', process.env.AGENT_BENCH_BROKERS!] : ['--output', 'stdout'];

/**
 * CPU-seconds of a process, its threads and its children, live (conntrack's event follower,
 * tsx's esbuild service) or exited and reaped (conntrack lookups): all of it is the agent's.
 */
function cpuSeconds(pid: number): number {
  let f: string[];
  try {
    f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  } catch {
    return 0; // exited meanwhile: its CPU is in its parent's reaped-children figures now
  }
  let ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]); // utime stime cutime cstime
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    let children = '';
    try {
      children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const c of children.split(' ').filter(Boolean)) ticks += cpuSeconds(Number(c)) * CLK_TCK;
  }
  return ticks / CLK_TCK;
}
function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function waitLine(child: ChildProcess, stream: NodeJS.ReadableStream, want: (l: string) => boolean): Promise<void> {
  const rl = createInterface({ input: stream });
  await new Promise<void>((resolve, reject) => {
    rl.on('line', (l) => want(l) && resolve());
    child.once('exit', (code) => reject(new Error(`exited with ${code} before the expected line`)));
  });
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  return port;
}

interface Agent extends ChildProcess {
  metricsUrl: string;
}

async function startAgent(): Promise<Agent> {
  const port = await freePort();
  const agent = spawn(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'agent', ...outputArgs, '--metrics-port', String(port), '--slot-ms', String(SLOT_MS)], {
    cwd: root,
    // A spool of the bench's own, should the brokers go away.
    env: { ...process.env, MESHLENS_AGENT_SPOOL_DIR: join(dir, 'spool') },
    stdio: ['ignore', openSync('/dev/null', 'w'), 'pipe'],
  }) as Agent;
  agent.metricsUrl = `http://127.0.0.1:${port}`;
  await waitLine(agent, agent.stderr!, (l) => l.includes('"agent running"'));
  return agent;
}

async function trackedSockets(agent: Agent): Promise<number> {
  const text = await (await fetch(`${agent.metricsUrl}/metrics`)).text();
  return Number(/^meshlens_agent_tracked_sockets (\d+)/m.exec(text)?.[1] ?? NaN);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/**
 * n held connections (2n sockets) spread over processes: a process may not hold more than
 * 20,000 descriptors here and raising that needs CAP_SYS_RESOURCE, which we do not have.
 */
async function load(n: number, secs: number, rate: number): Promise<ChildProcess[]> {
  const procs = Math.max(1, Math.ceil((2 * n) / 18_000));
  const gens = Array.from({ length: procs }, (_, i) =>
    spawn(process.execPath, [join(root, 'bench/fixtures/sockets.mjs'), 'hold', String(Math.ceil(n / procs)), String(secs), String(i === 0 ? rate : 0)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  await Promise.all(gens.map((g) => waitLine(g, g.stdout!, (l) => l === 'ready')));
  return gens;
}

/** Until `afterMs` past the next slot boundary, when that slot's sweep has long finished. */
function untilAfterSweep(afterMs: number): Promise<void> {
  const now = Date.now();
  return new Promise((r) => setTimeout(r, Math.ceil((now + 1) / SLOT_MS) * SLOT_MS + afterMs - now));
}

/**
 * Agent CPU over whole slots (`secs` rounded up to slots) while `during` runs. The agent is
 * started fresh, then warmed up: measuring starts after WARMUP_SWEEPS sweeps that saw the
 * load, whose own CPU share is returned as `warmupPct`. Start-up goes on for ~10 s
 * (compilation, then GC shrinking the heap), the first loaded sweep records every held
 * connection's opening (a once-per-connection cost), and the JIT settles within two minutes.
 * Windows go from 3 s after one sweep to 3 s after a later one, so each holds exactly one
 * sweep per slot, however the sweeps are spread.
 */
/** How long a load must last to cover the warm-up and a window of `secs`. */
const loadSecs = (secs: number) => secs + WARMUP_SWEEPS * (SLOT_MS / 1000) + 30;

async function agentCpu(secs: number, during: () => Promise<ChildProcess[]>): Promise<{ cpuPct: number; warmupPct: number; rss: number; sockets: number }> {
  const agent = await startAgent();
  try {
    const gen = await during();
    const cw = cpuSeconds(agent.pid!);
    const tw = Date.now();
    for (let i = 0; i < WARMUP_SWEEPS; i++) await untilAfterSweep(3000);
    const c0 = cpuSeconds(agent.pid!);
    const t0 = Date.now();
    const warmupPct = ((c0 - cw) / ((t0 - tw) / 1000)) * 100;
    const end = t0 + Math.ceil(secs / (SLOT_MS / 1000)) * SLOT_MS;
    let rss = 0;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, Math.min(1000, end - Date.now())));
      rss = Math.max(rss, rssMiB(agent.pid!));
    }
    const cpuPct = ((cpuSeconds(agent.pid!) - c0) / ((Date.now() - t0) / 1000)) * 100;
    const sockets = await trackedSockets(agent);
    for (const g of gen) await stop(g);
    return { cpuPct, warmupPct, rss, sockets };
  } finally {
    await stop(agent);
  }
}

try {
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model}, node ${process.version}, ${new Date().toISOString()}, --output ${OUTPUT}`);
  if (PARTS.has(1)) {
    const runs: Record<'idle' | 'busy', Awaited<ReturnType<typeof agentCpu>>[]> = { idle: [], busy: [] };
    for (let r = 0; r < rounds; r++) {
      for (const side of r % 2 ? (['busy', 'idle'] as const) : (['idle', 'busy'] as const)) {
        runs[side].push(await agentCpu(seconds, side === 'idle' ? async () => [] : () => load(1000, loadSecs(seconds), 100)));
      }
    }
    const show = (xs: Awaited<ReturnType<typeof agentCpu>>[]) =>
      `median ${median(xs.map((x) => x.cpuPct)).toFixed(3)}% of a core [${xs.map((x) => x.cpuPct.toFixed(3)).join(', ')}] ` +
      `(the ${WARMUP_SWEEPS} slots before: median ${median(xs.map((x) => x.warmupPct)).toFixed(3)}%), ` +
      `RSS ${median(xs.map((x) => x.rss)).toFixed(0)} MiB, sockets at the last sweep [${xs.map((x) => x.sockets).join(', ')}]`;
    console.log(`1. agent CPU idle: ${show(runs.idle)}`);
    console.log(`1. agent CPU with 1,000 open sockets + 100 new conn/s: ${show(runs.busy)}`);
  }

  if (PARTS.has(2)) {
    const many = await agentCpu(Math.max(30, seconds / 2), () => load(25_000, loadSecs(Math.max(30, seconds / 2)), 0));
    console.log(`2a. 50k concurrent sockets (25k loopback connections): agent RSS peak ${many.rss.toFixed(0)} MiB, CPU ${many.cpuPct.toFixed(2)}%`);
    {
      const agent = await startAgent();
      const rssAt: number[] = [];
      const step = churn / 5;
      for (let i = 0; i < 5; i++) {
        loadgen('short', String(step));
        rssAt.push(rssMiB(agent.pid!));
      }
      await stop(agent);
      console.log(`2b. RSS after each ${step.toLocaleString('en')} of ${churn.toLocaleString('en')} short connections: ${rssAt.map((r) => r.toFixed(0)).join(', ')} MiB`);
    }
  }

  if (PARTS.has(3)) {
    const rate: Record<'off' | 'on', { short: number[]; bulk: number[] }> = { off: { short: [], bulk: [] }, on: { short: [], bulk: [] } };
    for (let r = 0; r < rounds; r++) {
      for (const side of r % 2 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
        const agent = side === 'on' ? await startAgent() : null;
        try {
          rate[side].short.push(5000 / Number(loadgen('short', '5000')));
          rate[side].bulk.push(2000 / Number(loadgen('bulk', '2000')));
        } finally {
          if (agent) await stop(agent);
        }
      }
    }
    for (const [mode, unit] of [['short', 'conn/s'], ['bulk', 'MiB/s']] as const) {
      const a = median(rate.off[mode]);
      const b = median(rate.on[mode]);
      console.log(`3. ${mode}: without agent ${a.toFixed(0)} ${unit}, with agent ${b.toFixed(0)} ${unit}, slowdown ${(((a - b) / a) * 100).toFixed(1)}% (median of ${rounds}; load generator ${loadgenCpu ? `on CPU ${loadgenCpu} alone` : 'unpinned'})`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
