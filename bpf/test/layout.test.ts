// The TS decoder takes struct layouts from the object's BTF through libbpf; this checks
// that view against an independent BTF reader (bpftool) and against the addon's own C
// compile of meshlens.h, so neither the decoder nor the addon can drift from the object.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { loadNative, OBJECT_PATH } from '../src/native.js';
import { cgroup2Mount } from '../src/index.js';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

const btf = (JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', OBJECT_PATH]).toString()) as { types: BtfType[] }).types;
const byId = new Map(btf.map((t) => [t.id, t]));
const struct = (name: string) => {
  const t = btf.find((x) => x.kind === 'STRUCT' && x.name === name);
  assert.ok(t, `bpftool sees struct ${name}`);
  return t;
};
/** Size in bytes of a BTF type, following typedefs/modifiers and arrays. */
function sizeOf(id: number): number {
  const t = byId.get(id)!;
  if (t.kind === 'ARRAY') return (t.nr_elems ?? 0) * sizeOf(t.type_id!);
  if (t.size !== undefined) return t.size;
  return sizeOf(t.type_id!);
}

const native = loadNative();
const probes = new native.Probes(OBJECT_PATH, cgroup2Mount());
after(() => probes.close());

for (const name of ['ml_sock', 'ml_hist', 'ml_owner', 'ml_endpoints', 'ml_tcp_event', 'ml_dns_event']) {
  test(`${name}: libbpf layout used by the decoder equals bpftool's BTF`, () => {
    const ref = struct(name);
    const got = probes.layout(name);
    assert.equal(got.size, ref.size);
    assert.deepEqual(
      got.members.map((m) => ({ name: m.name, offset: m.offset, size: m.size })),
      ref.members!.map((m) => ({ name: m.name, offset: m.bits_offset / 8, size: sizeOf(m.type_id) })),
    );
  });
}

test('the addon was compiled against the same ml_sock and ml_hist as the object', () => {
  const ref = struct('ml_sock');
  assert.equal(native.compiled.sockValueSize, ref.size);
  assert.equal(native.compiled.sockFlagsOffset, ref.members!.find((m) => m.name === 'flags')!.bits_offset / 8);
  assert.equal(native.compiled.histValueSize, struct('ml_hist').size);
});

// A kernel address in user space's hands would tell where the kernel's memory is (KASLR):
// entries keep their socket's for the kernel side's own reads, and must stop before it.
test('what a read of the socket map hands to user space holds no kernel address, with ml_read or without', async () => {
  // Attached before the connection below, so that its map has it too.
  const fallback = new native.Probes(OBJECT_PATH, cgroup2Mount(), ['ml_read']);
  const server = net.createServer((s) => s.resume()).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  try {
    const sk = struct('ml_sock').members!.find((m) => m.name === 'sk')!;
    for (const [how, p] of [['ml_read', probes], ['batch lookup', fallback]] as const) {
      const raw = p.readSockets(false, null, null, true);
      assert.ok(raw.count > 0, `${how}: sockets read`);
      assert.equal(raw.valueSize, sk.bits_offset / 8, `${how}: each entry stops before its kernel address`);
      const view = Buffer.from(raw.buf, 0, raw.spillsAt);
      const kernel = [];
      for (let at = 0; at + 8 <= view.length; at += 8) if (view.readBigUInt64LE(at) >= 0xffff800000000000n) kernel.push(at);
      assert.deepEqual(kernel, [], `${how}: offsets of words that are kernel addresses`);
    }
  } finally {
    fallback.close();
    client.destroy();
    server.close();
  }
});

test('counter and event-kind names come from BTF enums', () => {
  const stats = probes.enumValues('ml_stat');
  assert.equal(stats.ML_STAT_SOCK_MAP_FULL !== undefined && stats.ML_STAT_RINGBUF_DROPPED !== undefined, true);
  const kinds = probes.enumValues('ml_event_kind');
  assert.deepEqual(Object.keys(kinds).sort(), [
    'ML_EV_CLOSE', 'ML_EV_CONNECT_FAILED', 'ML_EV_DNS', 'ML_EV_OPEN', 'ML_EV_RESET_RECEIVED', 'ML_EV_RESET_SENT',
  ]);
});
