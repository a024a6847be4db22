// The DNS decoding the probes apply to captured payloads: whole messages, messages the
// kernel's 512-byte capture cut short, and the TCP length prefix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encode, streamEncode, type Answer } from 'dns-packet';
import { parseDnsMessage, parseDnsPayload, DNS_TYPE } from '../src/index.js';

// A dnsmasq answer to `dig alias2.lo.test A` as the probes captured it: a CNAME chain whose
// names are compressed with pointers back into earlier records, and an EDNS OPT record.
const CNAME_CHAIN = Buffer.from(
  'ab118580000100030000000106616c69617332026c6f04746573740000010001c00c0005000100000000000f05616c696173026c6f047465737400c02c' +
    '0005000100000000000e04686f7374026c6f047465737400c04700010001000000000004c612006200002904d0000000000000',
  'hex',
);

function manyAaaa(n: number): Buffer {
  const answers: Answer[] = Array.from({ length: n }, (_, i) => ({ type: 'AAAA', name: 'many.test', ttl: 30 + i, data: `fd6d:6c00:0:ff::${(i + 1).toString(16)}` }));
  return encode({ type: 'response', id: 7, flags: 0x0100 | 0x0080, questions: [{ type: 'AAAA', name: 'many.test' }], answers });
}

test('a captured answer with compressed names decodes in full', () => {
  assert.deepEqual(parseDnsMessage(CNAME_CHAIN), {
    id: 0xab11,
    response: true,
    opcode: 0,
    rcode: 0,
    truncated: false,
    qname: 'alias2.lo.test',
    qtype: DNS_TYPE.A,
    answers: [
      { name: 'alias2.lo.test', type: DNS_TYPE.CNAME, ttl: 0, value: 'alias.lo.test' },
      { name: 'alias.lo.test', type: DNS_TYPE.CNAME, ttl: 0, value: 'host.lo.test' },
      { name: 'host.lo.test', type: DNS_TYPE.A, ttl: 0, value: '198.18.0.98' },
    ],
    complete: true,
  });
});

test('rcode, opcode, flags and type numbers come from the header and the records', () => {
  const nxWire = encode({ type: 'response', id: 9, flags: 3 | (1 << 9), questions: [{ type: 'A', name: 'gone.test' }] });
  // HTTPS (65) is newer than the library's type table: its number must still come through.
  nxWire.writeUInt16BE(65, 12 + 11);
  const nx = parseDnsMessage(nxWire);
  assert.deepEqual(
    { rcode: nx?.rcode, truncated: nx?.truncated, qtype: nx?.qtype, response: nx?.response, answers: nx?.answers, complete: nx?.complete },
    { rcode: 3, truncated: true, qtype: 65, response: true, answers: [], complete: true },
  );
  const notify = parseDnsMessage(encode({ type: 'query', id: 1, flags: 4 << 11, questions: [{ type: 'SOA', name: 'zone.test' }] }));
  assert.deepEqual({ opcode: notify?.opcode, response: notify?.response, qtype: notify?.qtype }, { opcode: 4, response: false, qtype: 6 });
  const mx = parseDnsMessage(
    encode({ type: 'response', questions: [{ type: 'MX', name: 'm.test' }], answers: [{ type: 'MX', name: 'm.test', ttl: 5, data: { preference: 10, exchange: 'mail.test' } }] }),
  );
  assert.deepEqual(mx?.answers, [{ name: 'm.test', type: 15, ttl: 5, value: null }], 'other types keep name, type and TTL, without a value');
});

test('IPv6 answers use the same canonical text as socket addresses (RFC 5952)', () => {
  const m = parseDnsMessage(
    encode({ type: 'response', questions: [{ type: 'AAAA', name: 'v6.test' }], answers: [{ type: 'AAAA', name: 'v6.test', ttl: 1, data: '1:0:0:1:0:0:0:1' }] }),
  );
  assert.deepEqual(m?.answers.map((a) => a.value), ['1:0:0:1::1']);
});

test('a message cut at the 512-byte capture keeps its header, question and every whole answer', () => {
  const full = manyAaaa(40);
  assert.ok(full.length > 512);
  const cut = parseDnsMessage(full.subarray(0, 512));
  // 12-byte header, 15-byte question; each answer is 11 bytes of name + 10 of fixed fields + 16 of address.
  const whole = Math.floor((512 - 12 - 15) / 37);
  assert.equal(cut?.complete, false);
  assert.equal(cut?.qname, 'many.test');
  assert.equal(cut?.answers.length, whole);
  assert.deepEqual(cut?.answers.at(-1), { name: 'many.test', type: DNS_TYPE.AAAA, ttl: 30 + whole - 1, value: `fd6d:6c00:0:ff::${whole.toString(16)}` });
  assert.equal(parseDnsMessage(full)?.complete, true);
  assert.equal(parseDnsMessage(full)?.answers.length, 40);
});

test('every cut of a message decodes to a prefix of it, and a cut question to nothing', () => {
  const full = parseDnsMessage(CNAME_CHAIN)!;
  const questionEnd = 12 + 16 + 4;
  for (let len = 0; len < CNAME_CHAIN.length; len++) {
    const m = parseDnsMessage(CNAME_CHAIN.subarray(0, len));
    if (len < questionEnd) {
      assert.equal(m, null, `cut at ${len}`);
      continue;
    }
    assert.ok(m, `cut at ${len}`);
    assert.deepEqual(m.answers, full.answers.slice(0, m.answers.length), `cut at ${len}`);
    // The OPT record in the additional section is never needed: only a cut answer makes it incomplete.
    assert.equal(m.complete, m.answers.length === full.answers.length, `cut at ${len}`);
  }
});

test('a header announcing far more answers than the capture holds is decoded quickly', () => {
  const b = Buffer.from(manyAaaa(3));
  b.writeUInt16BE(0xffff, 6);
  const start = performance.now();
  const m = parseDnsMessage(b);
  assert.ok(performance.now() - start < 50, 'bisection, not one decode per announced answer');
  assert.deepEqual([m?.answers.length, m?.complete], [3, false]);
});

test('a name pointing at itself is rejected, not followed', () => {
  const b = Buffer.from('0001010000010000000000' + '00' + 'c00c00010001', 'hex');
  assert.equal(parseDnsMessage(b), null);
});

test('DNS over TCP: the length prefix frames the message, also when the capture cut it', () => {
  const msg = manyAaaa(40);
  const framed = streamEncode({ type: 'response', id: 7, flags: 0x0180, questions: [{ type: 'AAAA', name: 'many.test' }], answers: [] });
  assert.deepEqual(parseDnsPayload(framed, 'tcp'), parseDnsMessage(framed.subarray(2)));
  const long = Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 0xff]), msg]);
  const cut = parseDnsPayload(long.subarray(0, 512), 'tcp');
  assert.deepEqual([cut?.qname, cut?.complete, cut?.answers.length], ['many.test', false, Math.floor((510 - 12 - 15) / 37)]);
  assert.equal(parseDnsPayload(long.subarray(0, 1), 'tcp'), null);
});
