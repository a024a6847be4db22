/**
 * DNS messages in captured packets, decoded by dns-packet. The kernel copies at most 512
 * bytes, so a long message may be cut short, and the library rejects a cut message as a
 * whole: the message is then decoded again announcing fewer answers, which keeps the header,
 * the question and every answer that was captured whole. `complete` says whether every
 * question and answer the header announced was read.
 */
import { decode, type Answer, type DecodedPacket } from 'dns-packet';
import { toType } from 'dns-packet/types.js';

export interface DnsAnswer {
  name: string;
  type: number;
  ttl: number;
  /** Address text for A/AAAA, target name for CNAME, null for other types. */
  value: string | null;
}

export interface DnsMessage {
  id: number;
  response: boolean;
  opcode: number;
  rcode: number;
  truncated: boolean;
  qname: string;
  qtype: number;
  answers: DnsAnswer[];
  complete: boolean;
}

export const DNS_TYPE = { A: 1, CNAME: 5, AAAA: 28 } as const;

/**
 * Decodes the header, the first `qd` questions and the first `an` answers of `msg`, or null
 * when they are not all in it. Authority and additional records are never needed, so they
 * are left out of the count and cannot fail the decode.
 */
function decodeFirst(msg: Buffer, qd: number, an: number): DecodedPacket | null {
  const b = Buffer.from(msg);
  b.writeUInt16BE(qd, 4);
  b.writeUInt16BE(an, 6);
  b.writeUInt32BE(0, 8);
  try {
    const p = decode(b);
    // Fixed-size records (A, AAAA) are read without a bounds check: a record cut inside its
    // data shows up only as having been read past the end.
    return decode.bytes <= b.length ? p : null;
  } catch {
    return null;
  }
}

/** The most of a cut message that decodes: its questions and as many whole answers as fit. */
function decodeCut(b: Buffer, qd: number, an: number): DecodedPacket | null {
  const questions = decodeFirst(b, qd, 0);
  // With a later question cut, the first may still be whole; no answer can be.
  if (!questions) return qd > 1 ? decodeFirst(b, 1, 0) : null;
  // Fewer answers decode whenever more do, so the most that fit is found by bisection.
  let best = questions;
  let [lo, hi] = [1, an - 1];
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const got = decodeFirst(b, qd, mid);
    if (got) [best, lo] = [got, mid + 1];
    else hi = mid - 1;
  }
  return best;
}

// The canonical (RFC 5952) text that ip.ts gives socket addresses, so answers and flow
// endpoints compare as strings; the WHATWG URL serialiser produces exactly that form.
const canonicalIpv6 = (text: string) => new URL(`http://[${text}]/`).hostname.slice(1, -1);

function answerOf(a: Answer): DnsAnswer {
  const type = toType(a.type);
  let value: string | null = null;
  if (a.type === 'A' || a.type === 'CNAME') value = a.data;
  else if (a.type === 'AAAA') value = canonicalIpv6(a.data);
  return { name: a.name, type, ttl: 'ttl' in a ? (a.ttl ?? 0) : 0, value };
}

/** Parses one DNS message; null when `b` does not even hold a header and a question. */
export function parseDnsMessage(b: Buffer): DnsMessage | null {
  if (b.length < 12) return null;
  const qd = b.readUInt16BE(4);
  const an = b.readUInt16BE(6);
  if (qd < 1) return null;
  const whole = decodeFirst(b, qd, an);
  const p = whole ?? decodeCut(b, qd, an);
  const q = p?.questions?.[0];
  if (!p || !q) return null;
  const flags = p.flags ?? 0;
  return {
    id: p.id ?? 0,
    response: p.flag_qr,
    opcode: (flags >> 11) & 0xf,
    rcode: flags & 0xf,
    truncated: p.flag_tc,
    qname: q.name,
    qtype: toType(q.type),
    answers: (p.answers ?? []).map(answerOf),
    complete: whole !== null,
  };
}

/**
 * DNS over TCP prefixes each message with its 2-byte length; a segment that does not
 * start a message (the tail of a long one) yields null.
 */
export function parseDnsPayload(payload: Buffer, transport: 'udp' | 'tcp'): DnsMessage | null {
  if (transport === 'udp') return parseDnsMessage(payload);
  if (payload.length < 2) return null;
  const len = payload.readUInt16BE(0);
  return parseDnsMessage(payload.subarray(2, 2 + len));
}
