// The fast tcp-record check may only ever accept what the zod schema accepts (zod stays the
// definition), and it must accept the ordinary records, or it would not be a fast path.
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import { HIST_BUCKETS, decodeFrame, encodeFrame, recordSchemas, sampleTcpRecords, seededRandom, type TcpRecord } from '@meshlens/schemas';
import { HeldSide } from '../src/held-side.js';
import { certainlyValidTcpRecord, TcpPayloadCheck } from '../src/fast-validate.js';
import { ingest } from '../src/ingest.js';

type Mutation<T = Record<string, unknown>> = (r: T) => void;

/** A held side's fields with its histogram read: where its bytes are (the frame's payload, or its own) is no part of it. */
function heldForm(h: HeldSide): Record<string, unknown> {
  const fields: Record<string, unknown> = { ...h, rtt_hist: HeldSide.histogram(h) };
  delete fields.rtt_bytes;
  delete fields.rtt_pos;
  return fields;
}

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

/** Each record of a version-2 tcp frame of `records`: the fast check's verdict on it as read, and the record. */
function checked(records: TcpRecord[]): { fast: boolean; record: TcpRecord }[] {
  const check = new TcpPayloadCheck();
  const frame = encodeFrame('tcp', records);
  assert.equal(frame.readUInt8(4), 2, 'the frame is the binary version-2 form');
  return decodeFrame(frame, { validate: false, tcpRecord: (r) => ({ fast: check.valid(r), record: r.record() }) }).records as unknown as { fast: boolean; record: TcpRecord }[];
}

/** `ip` as the local, the remote and the dialled address, in turn. */
function addressMutations(ips: string[]): Mutation<TcpRecord>[] {
  return ips.flatMap((ip): Mutation<TcpRecord>[] => [(r) => (r.local.ip = ip), (r) => (r.remote.ip = ip), (r) => (r.remote_orig = { ip, port: 80 })]);
}

describe('TcpPayloadCheck (version-2 records, read flat)', () => {
  it('accepts every ordinary record, and ingest reads them straight into their held form', () => {
    const records = sampleTcpRecords(500, 3);
    for (const { fast, record } of checked(records)) assert.ok(fast, JSON.stringify(record));
    const { records: held, dead } = ingest('tcp', encodeFrame('tcp', records));
    assert.equal(dead.length, 0);
    assert.deepEqual(held.map(heldForm), records.map((r) => heldForm(HeldSide.of(r))));
  });

  it('never accepts a record the zod schema rejects, and ingest dead-letters exactly those', () => {
    // Only what the binary form can carry: every number there is a non-negative safe integer.
    const invalid: Mutation<TcpRecord>[] = [
      (r) => (r.slot_ms = 0),
      (r) => (r.slot_ms = 3_600_001),
      (r) => (r.srtt_us = 2 ** 32),
      (r) => (r.min_rtt_us = 2 ** 32),
      (r) => (r.local.port = 0x10000),
      (r) => (r.remote.port = 2 ** 40),
      (r) => (r.remote_orig = { ip: '10.96.0.1', port: 0x10000 }),
      (r) => (r.owner.node = ''),
      (r) => (r.owner.comm = 'x'.repeat(17)),
      (r) => (r.owner.pid = 2 ** 32),
      (r) => (r.rtt_hist = { idx: [HIST_BUCKETS], cnt: [1] }),
      (r) => (r.rtt_hist = { idx: [5], cnt: [0] }),
      ...addressMutations(['', 'x', '10.0.0.256', '01.2.3.4', 'node-1']),
    ];
    // Edge values that are valid: the fast check must take them, or they would all go through zod.
    const valid: Mutation<TcpRecord>[] = [
      (r) => (r.slot_ms = 3_600_000),
      (r) => (r.remote.port = 0xffff),
      (r) => (r.owner.comm = 'x'.repeat(16)),
      (r) => (r.owner.pid = 2 ** 32 - 1),
      ...addressMutations(['::ffff:10.0.0.1', 'fe80::1%eth0']),
    ];
    for (const [mutations, expectValid] of [[invalid, false], [valid, true]] as const) {
      for (const m of mutations) {
        // The mutated record between good ones, its owner and addresses shared with a later
        // record as an agent's frame shares them: a verdict remembered per frame must hold for both.
        const base = sampleTcpRecords(4, 11);
        const mutated = structuredClone(base[1]!);
        m(mutated);
        const twin = { ...structuredClone(base[2]!), owner: mutated.owner, local: mutated.local, remote: mutated.remote, remote_orig: mutated.remote_orig };
        const frame = [base[0]!, mutated, twin, base[3]!];
        const zodOk = frame.map((r) => recordSchemas.tcp.safeParse(r).success);
        assert.equal(zodOk[1], expectValid, JSON.stringify(mutated));
        checked(frame).forEach(({ fast, record }, i) => {
          if (fast) assert.ok(zodOk[i], `fast path accepted what zod rejects: ${JSON.stringify(record)}`);
          else assert.ok(!zodOk[i], `fast path turned away a valid record: ${JSON.stringify(record)}`);
        });
        const { records, dead } = ingest('tcp', encodeFrame('tcp', frame));
        assert.deepEqual(
          dead.map((d) => d.recordIndex),
          zodOk.flatMap((ok, i) => (ok ? [] : [i])),
        );
        assert.deepEqual(records.map(heldForm), frame.filter((_, i) => zodOk[i]).map((r) => heldForm(HeldSide.of(r))));
      }
    }
  });
});
