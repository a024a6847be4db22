import { execFileSync } from 'node:child_process';
import { openProbes } from '@meshlens/bpf';
const lg = '/tmp/s17/loadgen';
execFileSync('cc', ['-O2', '-pthread', '-o', lg, 'bench/loadgen.c']);
const pin = process.env.PIN ? ['taskset', '-c', process.env.PIN] : [];
type O = { objectPath?: string; without: string[] };
const sides: [string, O | null][] = [['off', null], ['on', { without: [] }], ...(process.env.SIDES ?? '').split(',').filter(Boolean).map((kv): [string, O] => { const [n, spec] = kv.split('='); const [path, w] = spec!.split('!'); return [n!, { ...(path ? { objectPath: path } : {}), without: w ? w.split('+') : [] }]; })];
const res: Record<string, number[]> = {};
for (let r = 0; r < Number(process.argv[2] ?? 20); r++) {
  for (const [name, without] of r % 2 ? [...sides].reverse() : sides) {
    const p = without ? openProbes(without) : null;
    try {
      const cmd = [...pin, lg, 'short', '5000', 'cpu'];
      const [el, u, s] = execFileSync(cmd[0]!, cmd.slice(1)).toString().trim().split(' ').map(Number);
      (res[name] ??= []).push(Math.round(((u! + s!) * 1e6) / 5000 * 10) / 10);
      (res[name + '_t'] ??= []).push(Math.round((el! * 1e6) / 5000 * 10) / 10);
    } finally { p?.close(); }
  }
}
for (const [k, v] of Object.entries(res)) { const x=[...v].sort((a, b) => a - b); console.log(k.padEnd(8), 'median', x[x.length>>1], ' ', x.join(' ')); }
