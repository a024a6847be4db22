/**
 * A lenient DNS message parser for captured packets: the kernel copies at most 512
 * bytes, so a long answer section may be cut; whatever was captured is still returned and
 * `complete` says whether every record announced in the header was read.
 */
import { ipv4, ipv6 } from './ip.js';

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

class Truncated extends Error {}

/** Reads a possibly compressed name starting at `off`; returns it and the offset after it. */
function readName(b: Buffer, off: number): [string, number] {
  const labels: string[] = [];
  let end = -1;
  let hops = 0;
  for (;;) {
    if (off >= b.length) throw new Truncated();
    const len = b[off]!;
    if (len === 0) {
      off += 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= b.length) throw new Truncated();
      if (end < 0) end = off + 2;
      // Bounded so a pointer loop in a hostile packet cannot spin.
      if (++hops > 64) throw new Error('DNS name compression loop');
      off = ((len & 0x3f) << 8) | b[off + 1]!;
      continue;
    }
    if (off + 1 + len > b.length) throw new Truncated();
    labels.push(b.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  return [labels.join('.'), end < 0 ? off : end];
}

/** Parses one DNS message; null when `b` does not even hold a header and a question. */
export function parseDnsMessage(b: Buffer): DnsMessage | null {
  if (b.length < 12) return null;
  const flags = b.readUInt16BE(2);
  const qd = b.readUInt16BE(4);
  const an = b.readUInt16BE(6);
  const msg: DnsMessage = {
    id: b.readUInt16BE(0),
    response: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    rcode: flags & 0xf,
    truncated: (flags & 0x0200) !== 0,
    qname: '',
    qtype: 0,
    answers: [],
    complete: false,
  };
  try {
    let off = 12;
    if (qd < 1) return null;
    for (let i = 0; i < qd; i++) {
      const [name, next] = readName(b, off);
      if (next + 4 > b.length) throw new Truncated();
      if (i === 0) {
        msg.qname = name;
        msg.qtype = b.readUInt16BE(next);
      }
      off = next + 4;
    }
    for (let i = 0; i < an; i++) {
      const [name, next] = readName(b, off);
      if (next + 10 > b.length) throw new Truncated();
      const type = b.readUInt16BE(next);
      const ttl = b.readUInt32BE(next + 4);
      const rdlen = b.readUInt16BE(next + 8);
      const rd = next + 10;
      if (rd + rdlen > b.length) throw new Truncated();
      let value: string | null = null;
      if ((type === DNS_TYPE.A && rdlen === 4) || (type === DNS_TYPE.AAAA && rdlen === 16)) value = rdlen === 4 ? ipv4(b, rd) : ipv6(b, rd);
      else if (type === DNS_TYPE.CNAME) value = readName(b, rd)[0];
      msg.answers.push({ name, type, ttl, value });
      off = rd + rdlen;
    }
    msg.complete = true;
  } catch (e) {
    if (!(e instanceof Truncated)) return null;
    if (!msg.qname) return null;
  }
  return msg;
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
