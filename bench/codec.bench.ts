/**
 * Which encoding goes inside a frame: JSON against msgpack with record structures (what
 * schemas/src/frame.ts uses for every type in version 1) and, for tcp records, the binary
 * form of version 2 (schemas/src/tcp-codec.ts), all zstd-compressed as in production.
 * Measures records/s for encode and decode of whole frames and bytes per record on the wire.
 * Median of RUNS runs, all variants measured in the same process run, interleaved.
 *   pnpm --filter @meshlens/bench codec   (or: node --import tsx bench/codec.bench.ts)
 */
import { cpus } from 'node:os';
import { Packr } from 'msgpackr';
import { compress, decompress } from 'zstd-napi';
import { decodeFrame, encodeFrame, sampleDnsRecords, sampleTcpRecords } from '@meshlens/schemas';

const RUNS = 7;
const FRAME_RECORDS = 2000;
const FRAMES = 25;

interface Variant {
  name: string;
  encode: (records: unknown[]) => Buffer;
  decode: (frame: Buffer) => unknown[];
}

const plainPackr = new Packr({ useRecords: false });
const recordsPackr = new Packr({ useRecords: true, int64AsType: 'number' });
const variants = (type: 'tcp' | 'dns'): Variant[] => [
  {
    name: 'json+zstd',
    encode: (rs) => compress(Buffer.from(JSON.stringify(rs)), { compressionLevel: 3 }),
    decode: (f) => JSON.parse(decompress(f).toString('utf8')) as unknown[],
  },
  {
    name: 'msgpack(plain)+zstd',
    encode: (rs) => compress(plainPackr.pack(rs), { compressionLevel: 3 }),
    decode: (f) => plainPackr.unpack(decompress(f)) as unknown[],
  },
  {
    name: 'msgpack(records)+zstd (frame version 1)',
    encode: (rs) => compress(recordsPackr.pack(rs), { compressionLevel: 3 }),
    decode: (f) => recordsPackr.unpack(decompress(f)) as unknown[],
  },
  {
    name: `frame as sent (${type === 'tcp' ? 'binary, version 2' : 'msgpack(records), version 1'}), no validation`,
    encode: (rs) => encodeFrame(type, rs as never),
    decode: (f) => decodeFrame(f, { validate: false }).records,
  },
  {
    name: 'frame as sent, zod-validated',
    encode: (rs) => encodeFrame(type, rs as never),
    decode: (f) => decodeFrame(f).records,
  },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function bench(type: 'tcp' | 'dns'): void {
  const frames = Array.from({ length: FRAMES }, (_, i) =>
    type === 'tcp' ? sampleTcpRecords(FRAME_RECORDS, i + 1) : sampleDnsRecords(FRAME_RECORDS, i + 1),
  );
  const vs = variants(type);
  const results = new Map(vs.map((v) => [v.name, { enc: [] as number[], dec: [] as number[], bytes: 0 }]));
  for (let run = 0; run < RUNS + 1; run++) {
    for (const v of vs) {
      const r = results.get(v.name)!;
      let t = process.hrtime.bigint();
      const encoded = frames.map((f) => v.encode(f));
      const encNs = Number(process.hrtime.bigint() - t);
      t = process.hrtime.bigint();
      for (const e of encoded) if (v.decode(e).length !== FRAME_RECORDS) throw new Error('decode lost records');
      const decNs = Number(process.hrtime.bigint() - t);
      if (run === 0) continue; // warm-up
      const n = FRAMES * FRAME_RECORDS;
      r.enc.push(n / (encNs / 1e9));
      r.dec.push(n / (decNs / 1e9));
      r.bytes = encoded.reduce((s, e) => s + e.length, 0) / n;
    }
  }
  console.log(`\n${type} records, ${FRAMES} frames x ${FRAME_RECORDS}, median of ${RUNS} runs`);
  console.log('| encoding | encode rec/s | decode rec/s | bytes/record (zstd) |');
  console.log('|---|---:|---:|---:|');
  for (const [name, r] of results) {
    console.log(`| ${name} | ${Math.round(median(r.enc)).toLocaleString('en')} | ${Math.round(median(r.dec)).toLocaleString('en')} | ${r.bytes.toFixed(1)} |`);
  }
}

console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, node ${process.version}`);
bench('tcp');
bench('dns');
