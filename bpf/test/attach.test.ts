// Attachment lifecycle against the real kernel: what close() and process death leave
// behind (nothing), and how a partly unsupported object degrades instead of failing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { cgroup2Mount, openProbes } from '../src/index.js';
import { BUILD_DIR, loadNative } from '../src/native.js';
import { waitFor } from './helpers.js';

const progExists = (id: number) => spawnSync('bpftool', ['prog', 'show', 'id', String(id)], { stdio: 'ignore' }).status === 0;

test('close() releases every program it loaded', async () => {
  const probes = openProbes({ adoptExisting: false });
  const ids = probes.attachments.map((a) => a.id!);
  assert.ok(ids.length >= 8 && ids.every((id) => id > 0 && progExists(id)));
  probes.close();
  assert.equal(probes.closed, true);
  await waitFor('programs released', () => (ids.some(progExists) ? undefined : true));
  assert.throws(() => probes.readCounters(), /closed/);
});

test('a killed process leaves no program attached', async () => {
  const script = `import { openProbes } from ${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)};
const p = openProbes({ adoptExisting: false });
console.log(JSON.stringify(p.attachments.map((a) => a.id)));
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(readline.createInterface({ input: child.stdout! }), 'line')) as [string];
    const ids = JSON.parse(line) as number[];
    assert.ok(ids.length >= 8 && ids.every(progExists));
    process.kill(child.pid!, 'SIGKILL');
    await once(child, 'exit');
    await waitFor('programs released after SIGKILL', () => (ids.some(progExists) ? undefined : true));
  } finally {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  }
});

test('every program loads while signals keep arriving (a sampling profiler: SIGPROF every 100 us)', async () => {
  // The same load in two child processes, the second under V8's sampling profiler: it must
  // not come out with fewer programs (the verifier gives up on a pending signal).
  const script = `import { openProbes } from ${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)};
const p = openProbes({ adoptExisting: false });
console.log(JSON.stringify(p.attachments.map((a) => [a.program, a.attached, a.error])));
p.close();`;
  const dir = mkdtempSync(join(tmpdir(), 'mlbpf-sigprof-'));
  try {
    const load = async (flags: string[]) => {
      const child = spawn(process.execPath, [...flags, '--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const [line] = (await once(readline.createInterface({ input: child.stdout! }), 'line')) as [string];
      const [code] = (await once(child, 'exit')) as [number];
      assert.equal(code, 0);
      return JSON.parse(line) as [string, boolean, string | null][];
    };
    const quiet = await load([]);
    const profiled = await load(['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', dir]);
    assert.ok(quiet.filter(([, attached]) => attached).length >= 8, JSON.stringify(quiet));
    assert.deepEqual(profiled, quiet);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an object the kernel partly refuses loads and attaches the rest, saying why', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mlbpf-degrade-'));
  try {
    const obj = join(dir, 'degrade.bpf.o');
    execFileSync('clang', ['-g', '-O2', '-target', 'bpf', '-D__TARGET_ARCH_x86', '-I', BUILD_DIR, '-c',
      fileURLToPath(new URL('./fixtures/degrade.bpf.c', import.meta.url)), '-o', obj]);
    const probes = new (loadNative().Probes)(obj, cgroup2Mount());
    try {
      const report = Object.fromEntries(probes.attachments().map((a) => [a.program, a]));
      assert.deepEqual([report.fine?.loaded, report.fine?.attached, report.fine?.error], [true, true, null]);
      assert.deepEqual([report.refused?.loaded, report.refused?.attached], [false, false]);
      assert.match(report.refused!.error!, /^load: /);
    } finally {
      probes.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
