// Probe overhead on loopback: many short connections and one bulk stream, each measured
// without and with the probes attached in the same run.
//
// The machine is shared and has two cores, so wall-clock rates swing with other jobs. Hence:
//  - sides are interleaved (the order rotates and reverses every round) and every round
//    yields a paired ratio to that round's run without probes; the median of those ratios
//    is the slowdown, printed with their interquartile range;
//  - each run also reports the load generator's own CPU time (both ends are its threads, and
//    loopback's softirq work mostly runs in their context): less sensitive to other jobs
//    than wall time, though not immune (their softirq work can land on it too);
//  - separate interleaved rounds with the kernel's run-time accounting on (it costs time
//    itself, so it is kept out of the timed rounds) give the time spent in each program.
// Extra objects (e.g. an older build, or one whose programs return at once, for the per-call
// floor), or the built one with programs left out (`name=!prog+prog`, e.g. the DNS capture
// off as `nodns=!ml_dns_egress+ml_dns_ingress`), can join the same rounds for an A/B comparison:
//   [BENCH_LOADGEN_CPU=1] PROBES_BENCH_OBJECTS=old=/tmp/old.bpf.o[,name=path[!prog+prog]...] \
//     node --import tsx bench/probes.bench.ts [rounds=15] [connections=5000] [megabytes=1000] [open=1000]
// Last, what moved off the data path costs at the sweep: readSocketStats() (ml_read, which
// refreshes every tracked socket as it reads it) with and without the refresh, and as the
// agent reads (only what changed since the previous read), with `open` idle connections held.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openProbes, type Probes, type ProgramStats, type ReadOptions } from '@meshlens/bpf';
import { buildLoadgen, loadgenCpu } from './loadgen.js';

const [rounds = 15, conns = 5000, mb = 1000, openConns = 1000] = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), 'mlbpf-bench-'));
const loadgen = buildLoadgen(dir);

type Mode = 'short' | 'bulk';
const modes: Mode[] = ['short', 'bulk'];
const units: Record<Mode, number> = { short: conns, bulk: mb };
const unitName: Record<Mode, string> = { short: 'conn', bulk: 'MiB' };

/** A side of the comparison: no probes (object null), or the probes from one object file
 * ('' for the built one), less the programs in `without`. */
interface Side {
  name: string;
  object: string | null;
  without?: string[];
}
const extra = (process.env.PROBES_BENCH_OBJECTS ?? '')
  .split(',')
  .filter(Boolean)
  .map((kv): Side => {
    const [name, spec] = kv.split('=');
    const [object, without] = (spec ?? '').split('!');
    if (!name || (!object && !without)) throw new Error(`PROBES_BENCH_OBJECTS: expected name=path[!prog+prog] or name=!prog+prog, got "${kv}"`);
    return { name, object: object!, without: without?.split('+') };
  });
const sides: Side[] = [{ name: 'off', object: null }, { name: 'on', object: '' }, ...extra];

interface Run {
  /** units per wall-clock second */
  rate: number;
  /** load generator CPU (user + system) microseconds per unit */
  cpuUs: number;
}
const runs = new Map<string, Record<Mode, Run[]>>(sides.map((s) => [s.name, { short: [], bulk: [] }]));

function run(mode: Mode): Run {
  const [elapsed, user, sys] = loadgen(mode, String(units[mode]), 'cpu').trim().split(' ').map(Number);
  return { rate: units[mode] / elapsed!, cpuUs: ((user! + sys!) * 1e6) / units[mode] };
}

const warned = new Set<string>();
function open(side: Side): Probes | null {
  if (side.object === null) return null;
  const probes = openProbes({ ...(side.object ? { objectPath: side.object } : {}), without: side.without });
  // A program the kernel refused would make its side look cheaper than it is.
  for (const a of probes.attachments) {
    if (!a.attached && !a.leftOut && !warned.has(`${side.name}/${a.program}`)) {
      warned.add(`${side.name}/${a.program}`);
      console.error(`warning: ${side.name}: ${a.program} not attached: ${a.error}`);
    }
  }
  return probes;
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const quantile = (xs: number[], q: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
const median = (xs: number[]) => quantile(xs, 0.5);
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;

/** Per side and mode: per accounting round, kernel ns and calls per unit for each program. */
type Accounting = Record<Mode, { total: number[]; programs: Map<string, { ns: number[]; calls: number[] }> }>;
const kernel = new Map<string, Accounting>();
function account(side: Side): void {
  let acc = kernel.get(side.name);
  if (!acc) kernel.set(side.name, (acc = { short: { total: [], programs: new Map() }, bulk: { total: [], programs: new Map() } }));
  const probes = open(side)!;
  try {
    for (const mode of modes) {
      const before = new Map(probes.programStats().map((s): [string, ProgramStats] => [s.program, s]));
      run(mode);
      let total = 0;
      for (const s of probes.programStats()) {
        const b = before.get(s.program)!;
        const ns = (s.runTimeNs - b.runTimeNs) / units[mode];
        const calls = (s.runCount - b.runCount) / units[mode];
        total += ns;
        const p = acc[mode].programs.get(s.program) ?? { ns: [], calls: [] };
        p.ns.push(ns);
        p.calls.push(calls);
        acc[mode].programs.set(s.program, p);
      }
      acc[mode].total.push(total);
    }
  } finally {
    probes.close();
  }
}

/** sockops programs of other meshlens instances (e.g. agents of other jobs): they run on
 * both sides of the comparison, so "off" is not probe-free while they are attached. */
function otherProbeSets(): number {
  try {
    const progs = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show']).toString()) as { name?: string }[];
    return progs.filter((p) => p.name === 'ml_sockops').length;
  } catch {
    return -1; // bpftool missing: unknown
  }
}
/** CPU of this process (the iterator's kernel time included) per read, with `side`'s probes. */
async function sweepCost(side: Side): Promise<string> {
  const probes = open(side)!;
  // Accepted ends are closed with the clients: left open, the next side's probes would adopt
  // them and read 1,000 sockets more than the side before.
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => accepted.push(s));
  const clients: net.Socket[] = [];
  try {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    for (let i = 0; i < openConns; i++) {
      const c = net.connect(port, '127.0.0.1');
      await once(c, 'connect');
      clients.push(c);
    }
    const reads = 20;
    let readUs = 0;
    const cpuMsPerRead = (opts: () => ReadOptions) => {
      const t0 = process.cpuUsage();
      for (let i = 0; i < reads; i++) {
        const scan = probes.scanSocketStats(opts());
        Array.from(scan); // decoded, as a reader would
        readUs = scan.readUs;
      }
      const t = process.cpuUsage(t0);
      return (t.user + t.system) / 1000 / reads;
    };
    // As the agent reads: only what changed since its previous read.
    const sweep = (): ReadOptions => ({ since: { updatedUs: readUs, openedUs: readUs } });
    cpuMsPerRead(() => ({})); // warm-up, as a long-running reader would be
    const stat = () => probes.programStats().find((x) => x.program === 'ml_read');
    stat();
    const s0 = stat();
    const full = cpuMsPerRead(() => ({}));
    const s1 = stat();
    const unrefreshed = cpuMsPerRead(() => ({ refresh: false }));
    const changed = cpuMsPerRead(sweep);
    const perCall = s0 && s1 ? `; ml_read ${((s1.runCount - s0.runCount) / reads).toFixed(0)} calls x ${((s1.runTimeNs - s0.runTimeNs) / (s1.runCount - s0.runCount)).toFixed(0)} ns per read` : '; no ml_read in this object';
    return (
      `sweep (${side.name}): ${openConns} idle connections held, ${probes.readSocketStats({ refresh: false }).length} sockets in the map: ` +
      `readSocketStats() ${full.toFixed(2)} ms CPU per read, ${unrefreshed.toFixed(2)} without the refresh, ` +
      `${changed.toFixed(2)} reading only what changed since the previous read (as the agent does)${perCall}`
    );
  } finally {
    for (const c of [...clients, ...accepted]) c.destroy();
    server.close();
    probes.close();
  }
}

const others0 = otherProbeSets();
const load0 = loadavg();
try {
  for (let r = 0; r < rounds; r++) {
    // Rotate the order every round so neither side always runs first (e.g. right after a
    // load/attach, or always in the same phase of another job's activity).
    const order = sides.map((_, i) => sides[(i + r) % sides.length]!);
    if (r % 2) order.reverse();
    for (const side of order) {
      const probes = open(side);
      try {
        for (const mode of modes) runs.get(side.name)![mode].push(run(mode));
      } finally {
        probes?.close();
      }
    }
  }
  // The accounting rounds are interleaved too: their figures also drift with the load.
  const accounted = sides.filter((x) => x.object !== null);
  const accountRounds = Math.max(3, Math.ceil(rounds / 3));
  for (let r = 0; r < accountRounds; r++) for (let i = 0; i < accounted.length; i++) account(accounted[(i + r) % accounted.length]!);
  const load1 = loadavg();
  const others1 = otherProbeSets();

  console.log(
    `rounds=${rounds} connections=${conns} bulk=${mb} MiB; load generator ${loadgenCpu ? `on CPU ${loadgenCpu} alone` : 'unpinned'}; load average before ${load0.map((l) => l.toFixed(2)).join(' ')}, after ${load1.map((l) => l.toFixed(2)).join(' ')}; other meshlens probe sets attached before/after: ${others0}/${others1}`,
  );
  console.log('medians [interquartile range]; "vs off": median of the per-round ratios to the same round\'s off run');
  const off = runs.get('off')!;
  for (const mode of modes) {
    console.log(`${mode}:`);
    for (const side of sides) {
      const rs = runs.get(side.name)![mode];
      const rate = rs.map((x) => x.rate);
      const cpu = rs.map((x) => x.cpuUs);
      let line = `  ${side.name.padEnd(5)} ${median(rate).toFixed(0).padStart(7)} ${unitName[mode]}/s [${quantile(rate, 0.25).toFixed(0)}..${quantile(rate, 0.75).toFixed(0)}]  cpu ${median(cpu).toFixed(2).padStart(7)} us/${unitName[mode]} [${quantile(cpu, 0.25).toFixed(2)}..${quantile(cpu, 0.75).toFixed(2)}]`;
      // Other jobs only ever add CPU time, so the cheapest of many runs is the least disturbed.
      line += ` min ${Math.min(...cpu).toFixed(2)}`;
      if (side.name !== 'off') {
        line += ` (${pct(Math.min(...cpu) / Math.min(...off[mode].map((x) => x.cpuUs)) - 1)} vs off's min)`;
        const slow = rs.map((x, i) => off[mode][i]!.rate / x.rate - 1);
        const extraCpu = rs.map((x, i) => x.cpuUs / off[mode][i]!.cpuUs - 1);
        line += `  vs off: time ${pct(median(slow))} [${pct(quantile(slow, 0.25))}..${pct(quantile(slow, 0.75))}], cpu ${pct(median(extraCpu))} [${pct(quantile(extraCpu, 0.25))}..${pct(quantile(extraCpu, 0.75))}]`;
      }
      console.log(line);
    }
    for (const [name, acc] of kernel) {
      // The programs run for every socket on the host, so other jobs' traffic adds calls
      // to some rounds: calls per unit are the fewest seen in any round (that traffic only
      // ever adds), time per call the median over rounds.
      const progs = [...acc[mode].programs]
        .map(([prog, p]) => ({ prog, calls: Math.min(...p.calls), nsPerCall: median(p.ns.map((ns, i) => (p.calls[i]! > 0 ? ns / p.calls[i]! : 0))) }))
        .filter((p) => p.calls >= 0.05);
      const total = progs.reduce((sum, p) => sum + p.calls * p.nsPerCall, 0);
      const detail = progs.map((p) => `${p.prog} ${p.calls.toFixed(1)}x${p.nsPerCall.toFixed(0)}ns`).join(', ');
      const raw = acc[mode].total;
      console.log(
        `  ${name.padEnd(5)} in-kernel ${(total / 1000).toFixed(2)} us/${unitName[mode]} (raw per-round median ${(median(raw) / 1000).toFixed(2)} [${(quantile(raw, 0.25) / 1000).toFixed(2)}..${(quantile(raw, 0.75) / 1000).toFixed(2)}], ${raw.length} rounds): ${detail}`,
      );
    }
  }
  for (const side of sides) if (side.object !== null) console.log(await sweepCost(side));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
