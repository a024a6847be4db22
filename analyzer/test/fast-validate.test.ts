// The fast tcp-record check may only ever accept what the zod schema accepts (zod stays the
// definition), and it must accept the ordinary records, or it would not be a fast path.
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import { HIST_BUCKETS, recordSchemas, sampleTcpRecords, seededRandom } from '@meshlens/schemas';
import { certainlyValidTcpRecord } from '../src/fast-validate.js';

type Mutation = (r: Record<string, unknown>) => void;

const junk: unknown[] = [undefined, null, -1, 1.5, 2 ** 53, 0x1_0000_0000, '', 'x', '10.0.0.256', true, [], {}, Number.NaN];

function paths(v: unknown, prefix: string[] = []): string[][] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [prefix];
  return [prefix, ...Object.entries(v).flatMap(([k, x]) => paths(x, [...prefix, k]))];
}

function setAt(root: Record<string, unknown>, path: string[], value: unknown): void {
  let o = root;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  if (value === undefined) delete o[path.at(-1)!];
  else o[path.at(-1)!] = value;
}

describe('certainlyValidTcpRecord', () => {
  it('accepts every ordinary record', () => {
    for (const r of sampleTcpRecords(500, 3)) assert.ok(certainlyValidTcpRecord(r), JSON.stringify(r));
  });

  it('reads addresses exactly as isIP does', () => {
    const addresses = ['0.0.0.0', '10.1.2.3', '255.255.255.255', '192.168.100.10', '256.1.1.1', '1.2.3.256', '01.2.3.4', '1.2.3.04', '1.2.3', '1.2.3.4.5', '1..2.3', '.1.2.3', '1.2.3.', '1.2.3.4 ', ' 1.2.3.4', '1.2.3.4a', '1000.1.1.1', '1.2.3.-4', '::1', '::ffff:1.2.3.4', 'fe80::1%eth0', '', 'x'];
    const [r] = sampleTcpRecords(1, 5) as unknown as Record<string, { ip: string }>[];
    for (const a of addresses) {
      r!.local!.ip = a;
      assert.equal(certainlyValidTcpRecord(r), isIP(a) !== 0, a);
    }
  });

  it('never accepts a record the zod schema rejects', () => {
    const rnd = seededRandom(9);
    const base = sampleTcpRecords(50, 4);
    const mutations: Mutation[] = [];
    for (const p of paths(base[0]).filter((p) => p.length > 0)) for (const j of junk) mutations.push((r) => setAt(r, p, j));
    mutations.push(
      (r) => ((r.rtt_hist as { idx: number[] }).idx = [HIST_BUCKETS]),
      (r) => ((r.rtt_hist as { idx: number[]; cnt: number[] }).cnt = [0]),
      (r) => ((r.rtt_hist as { idx: number[]; cnt: number[] }).idx = [5, 5]),
      (r) => ((r.owner as { comm: string }).comm = 'x'.repeat(17)),
      (r) => ((r.local as { ip: string }).ip = 'fe80::1%eth0'),
    );
    let rejected = 0;
    for (const m of mutations) {
      const r = structuredClone(base[Math.floor(rnd() * base.length)]!) as unknown as Record<string, unknown>;
      m(r);
      const zodOk = recordSchemas.tcp.safeParse(r).success;
      if (!zodOk) rejected++;
      if (certainlyValidTcpRecord(r)) assert.ok(zodOk, `fast path accepted what zod rejects: ${JSON.stringify(r)}`);
    }
    assert.ok(rejected > mutations.length / 2, `only ${rejected} of ${mutations.length} mutations were invalid; the test would prove little`);
  });
});
