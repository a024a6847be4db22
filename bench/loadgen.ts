// bench/loadgen.c, built into a bench's scratch directory, as a function that runs it.
//
// BENCH_LOADGEN_CPU=n runs it on CPU n alone. Unpinned, its two threads (the two ends) wake
// each other across CPUs, which on our 2-core VM is two thirds of a short connection's CPU
// and swings with the scheduler's placement from run to run (a bench's runs of one side
// spread over ~10%); pinned, runs of one side repeat within ~2%, and what the probes add is
// compared with what the connection itself costs.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const loadgenCpu = process.env.BENCH_LOADGEN_CPU;

/** Builds the load generator in `dir`; the result runs it with `args` and returns its output. */
export function buildLoadgen(dir: string): (...args: string[]) => string {
  const bin = join(dir, 'loadgen');
  execFileSync('cc', ['-O2', '-pthread', '-o', bin, fileURLToPath(new URL('./loadgen.c', import.meta.url))]);
  return (...args) => {
    const [cmd, ...argv] = loadgenCpu ? ['taskset', '-c', loadgenCpu, bin, ...args] : [bin, ...args];
    return execFileSync(cmd!, argv).toString();
  };
}
