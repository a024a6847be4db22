/**
 * `--output stdout`: records as JSON lines, `{"type":...}` then the record's own fields, the
 * text of JSON.stringify({ type, ...record }). tcp records, one per active socket per slot,
 * are most of the output: they are written field by field, each owner (shared by the
 * sockets of one process) once per sweep.
 */
import type { Endpoint, Owner, SparseHistogram, TcpRecord } from '@meshlens/schemas';

export function jsonLine(type: string, record: object): string {
  const body = JSON.stringify(record);
  return `{"type":${JSON.stringify(type)}${body.length > 2 ? ',' : ''}${body.slice(1)}`;
}

const ownerText = new WeakMap<Owner, string>();
function ownerJson(o: Owner): string {
  let t = ownerText.get(o);
  if (t === undefined) ownerText.set(o, (t = JSON.stringify(o)));
  return t;
}
// Addresses are the agent's own text forms (dotted quad, RFC 5952): nothing to escape.
const ep = (e: Endpoint) => `{"ip":"${e.ip}","port":${e.port}}`;
const hist = (h: SparseHistogram) => `{"idx":[${h.idx.join(',')}],"cnt":[${h.cnt.join(',')}]}`;

export function tcpJsonLine(r: TcpRecord): string {
  return (
    `{"type":"tcp","slot_start_ms":${r.slot_start_ms},"slot_ms":${r.slot_ms},"owner":${ownerJson(r.owner)},` +
    `"sock_cookie":${r.sock_cookie},"role":"${r.role}","local":${ep(r.local)},"remote":${ep(r.remote)},` +
    `"remote_orig":${r.remote_orig ? ep(r.remote_orig) : 'null'},"bytes_sent":${r.bytes_sent},"bytes_received":${r.bytes_received},` +
    `"segs_sent":${r.segs_sent},"segs_received":${r.segs_received},"retrans_segs":${r.retrans_segs},"rto_count":${r.rto_count},` +
    `"resets_sent":${r.resets_sent},"resets_received":${r.resets_received},"srtt_us":${r.srtt_us},"min_rtt_us":${r.min_rtt_us},` +
    `"rtt_hist":${hist(r.rtt_hist)},"opened":${r.opened},"closed":${r.closed}}`
  );
}
