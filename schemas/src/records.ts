/**
 * The records that cross process boundaries. Kernel-derived integers that are u64 in C
 * (cookies, cgroup ids, byte counters) travel as JS numbers: all of them stay far below
 * 2^53 in practice, and the schemas reject anything that is not a safe integer instead
 * of silently losing precision.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { HIST_BUCKETS, isValidSparse } from './histogram.js';

const u8 = z.number().int().min(0).max(0xff);
const u16 = z.number().int().min(0).max(0xffff);
const u32 = z.number().int().min(0).max(0xffffffff);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const epochMs = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** Canonical text form as produced by the agent: dotted quad, or RFC 5952 IPv6. */
const ip = z.string().refine((s) => isIP(s) !== 0, { message: 'not an IP address' });

export const endpointSchema = z.object({ ip, port: u16 });
export type Endpoint = z.infer<typeof endpointSchema>;

export const histogramSchema = z
  .object({ idx: z.array(z.number().int().min(0).max(HIST_BUCKETS - 1)), cnt: z.array(count) })
  .refine(isValidSparse, { message: 'histogram buckets must be strictly increasing with positive counts' });

/** Who owns the socket, captured in process context at connect/accept time. */
export const ownerSchema = z.object({
  node: z.string().min(1),
  netns: count,
  cgroup_id: count,
  pid: u32,
  comm: z.string().max(16),
  container_id: z.string().nullable(),
  pod_uid: z.string().nullable(),
});
export type Owner = z.infer<typeof ownerSchema>;

export const roleSchema = z.enum(['client', 'server']);
export type Role = z.infer<typeof roleSchema>;

/** One socket, one time slot, one side. Counters are deltas within the slot. */
export const tcpRecordSchema = z.object({
  slot_start_ms: epochMs,
  slot_ms: z.number().int().positive().max(3_600_000),
  owner: ownerSchema,
  sock_cookie: count,
  role: roleSchema,
  local: endpointSchema,
  /** The remote as the peer itself sees its own address: after NAT translation. */
  remote: endpointSchema,
  /** The remote as this socket dialled it, when NAT translated it (a service IP). */
  remote_orig: endpointSchema.nullable(),
  bytes_sent: count,
  bytes_received: count,
  segs_sent: count,
  segs_received: count,
  retrans_segs: count,
  rto_count: count,
  resets_sent: count,
  resets_received: count,
  srtt_us: u32,
  min_rtt_us: u32,
  rtt_hist: histogramSchema,
  opened: z.boolean(),
  closed: z.boolean(),
});
export type TcpRecord = z.infer<typeof tcpRecordSchema>;

export const tcpEventKindSchema = z.enum(['connect_failed', 'syn_timeout', 'reset_sent', 'reset_received']);
export const errnoClassSchema = z.enum(['timeout', 'refused', 'unreachable', 'other']);
export type TcpEventKind = z.infer<typeof tcpEventKindSchema>;
export type ErrnoClass = z.infer<typeof errnoClassSchema>;

/** A rare TCP event: one connect failure, SYN timeout or reset. */
export const tcpEventSchema = z.object({
  ts_ms: epochMs,
  owner: ownerSchema,
  sock_cookie: count,
  kind: tcpEventKindSchema,
  role: roleSchema,
  errno: u16.nullable(),
  errno_class: errnoClassSchema.nullable(),
  syn_retrans: u8,
  local: endpointSchema,
  remote: endpointSchema,
  remote_orig: endpointSchema.nullable(),
});
export type TcpEvent = z.infer<typeof tcpEventSchema>;

/** One DNS query and its answer (or its timeout), seen from the client side. */
export const dnsRecordSchema = z.object({
  ts_ms: epochMs,
  owner: ownerSchema,
  client: endpointSchema,
  server: endpointSchema,
  transport: z.enum(['udp', 'tcp']),
  id: u16,
  qname: z.string().max(255),
  qtype: u16,
  /** DNS RCODE (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ...); null when no answer came. */
  rcode: u8.nullable(),
  latency_us: u32.nullable(),
  timed_out: z.boolean(),
  /** A/AAAA addresses and CNAME targets in answer order. */
  answers: z.array(z.string().max(255)),
  ttl_min_s: u32.nullable(),
});
export type DnsRecord = z.infer<typeof dnsRecordSchema>;

const labels = z.record(z.string(), z.string());
/** Interval in which an IP belonged to an object; pod IPs get reused, so time matters. */
export const ipBindingSchema = z.object({ ip, from_ms: epochMs, to_ms: epochMs.nullable() });
export type IpBinding = z.infer<typeof ipBindingSchema>;

const metaBase = {
  uid: z.string().min(1),
  /** Monotonic per object (resourceVersion or inventory revision). */
  version: z.string().min(1),
  observed_ms: epochMs,
  /** When set, the object is gone since then; the Kafka topic also gets a tombstone. */
  deleted_ms: epochMs.nullable(),
};

export const metadataSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('node'),
    ...metaBase,
    name: z.string().min(1),
    zone: z.string().nullable(),
    region: z.string().nullable(),
    ips: z.array(ipBindingSchema),
    labels,
  }),
  z.object({
    kind: z.literal('pod'),
    ...metaBase,
    namespace: z.string().min(1),
    name: z.string().min(1),
    node: z.string().nullable(),
    host_network: z.boolean(),
    workload_kind: z.string().nullable(),
    workload_name: z.string().nullable(),
    ips: z.array(ipBindingSchema),
    labels,
  }),
  z.object({
    kind: z.literal('service'),
    ...metaBase,
    namespace: z.string().min(1),
    name: z.string().min(1),
    cluster_ips: z.array(ip),
    ports: z.array(z.object({ name: z.string(), port: u16, protocol: z.string() })),
    selector: labels,
  }),
  z.object({
    kind: z.literal('endpoint'),
    ...metaBase,
    namespace: z.string().min(1),
    service: z.string().min(1),
    addresses: z.array(z.object({ ip, pod_uid: z.string().nullable(), node: z.string().nullable(), ready: z.boolean() })),
  }),
  z.object({
    kind: z.literal('host'),
    ...metaBase,
    name: z.string().min(1),
    zone: z.string().nullable(),
    region: z.string().nullable(),
    ips: z.array(ipBindingSchema),
    labels,
  }),
]);
export type Metadata = z.infer<typeof metadataSchema>;

/** Record types as they appear in frame headers; values are wire-stable, never reuse one. */
export const RecordType = { tcp: 1, tcp_event: 2, dns: 3, metadata: 4 } as const;
export type RecordTypeName = keyof typeof RecordType;

export interface RecordOf {
  tcp: TcpRecord;
  tcp_event: TcpEvent;
  dns: DnsRecord;
  metadata: Metadata;
}

export const recordSchemas = {
  tcp: tcpRecordSchema,
  tcp_event: tcpEventSchema,
  dns: dnsRecordSchema,
  metadata: metadataSchema,
} as const;
