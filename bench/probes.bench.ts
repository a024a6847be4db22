// Probe overhead on loopback: many short connections and one bulk stream, each measured
// without and with the probes attached, interleaved in one run (order alternating per
// round so drift on a shared machine hits both sides), reporting medians; then one more
// pass with the kernel's run-time accounting on (it costs time itself, so it is kept out
// of the timed rounds) for the time spent in each program.
//   node --import tsx bench/probes.bench.ts [rounds=7] [connections=5000] [megabytes=2000]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openProbes, type Probes, type ProgramStats } from '@meshlens/bpf';

const [rounds = 7, conns = 5000, mb = 2000] = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), 'mlbpf-bench-'));
const loadgen = join(dir, 'loadgen');
execFileSync('cc', ['-O2', '-pthread', '-o', loadgen, fileURLToPath(new URL('./loadgen.c', import.meta.url))]);

type Mode = 'short' | 'bulk';
const units: Record<Mode, number> = { short: conns, bulk: mb };
const run = (mode: Mode) => Number(execFileSync(loadgen, [mode, String(units[mode])]).toString());
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rate: Record<'off' | 'on', Record<Mode, number[]>> = { off: { short: [], bulk: [] }, on: { short: [], bulk: [] } };
/** Kernel ns and calls per program in the accounting pass. */
const kernel: Record<Mode, Map<string, { ns: number; calls: number }>> = { short: new Map(), bulk: new Map() };

function account(mode: Mode, probes: Probes): void {
  const before = new Map(probes.programStats().map((s): [string, ProgramStats] => [s.program, s]));
  run(mode);
  for (const s of probes.programStats()) {
    const b = before.get(s.program)!;
    kernel[mode].set(s.program, { ns: s.runTimeNs - b.runTimeNs, calls: s.runCount - b.runCount });
  }
}

try {
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
      const probes = side === 'on' ? openProbes() : null;
      try {
        rate[side].short.push(units.short / run('short'));
        rate[side].bulk.push(units.bulk / run('bulk'));
      } finally {
        probes?.close();
      }
    }
  }
  const probes = openProbes();
  try {
    account('short', probes);
    account('bulk', probes);
  } finally {
    probes.close();
  }
  console.log(`rounds=${rounds} connections=${conns} bulk=${mb} MiB (medians)`);
  for (const [mode, unit] of [['short', 'conn/s'], ['bulk', 'MiB/s']] as const) {
    const a = median(rate.off[mode]);
    const b = median(rate.on[mode]);
    console.log(`${mode.padEnd(6)} off ${a.toFixed(0).padStart(7)} ${unit}  on ${b.toFixed(0).padStart(7)} ${unit}  slowdown ${(((a - b) / a) * 100).toFixed(1)}%`);
    const n = units[mode];
    const per = [...kernel[mode]].filter(([, k]) => k.calls > 0).map(([p, k]) => `${p} ${(k.calls / n).toFixed(1)}x${(k.ns / k.calls).toFixed(0)}ns`);
    const total = [...kernel[mode].values()].reduce((s, k) => s + k.ns, 0) / n;
    console.log(`       in-kernel ${(total / 1000).toFixed(2)} us per ${mode === 'short' ? 'connection (both ends)' : 'MiB'}: ${per.join(', ')}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
