/**
 * The inventory file: metadata for machines that are not in Kubernetes (VMs, bare metal,
 * the e2e lab). Strict objects, so a misspelt field is an error instead of being ignored.
 * The format is documented in collector/README.md.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

const ip = z.string().refine((s) => isIP(s) !== 0, { message: 'not an IP address' });
const name = z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, { message: 'must be a DNS-style name: lowercase letters, digits, "-" and "."' });
const labels = z.record(z.string(), z.string());
const time = z.iso.datetime({ offset: true }).transform((t) => new Date(t).getTime());

/** An IP, or an IP with the interval it was valid in (for IPs that moved between objects). */
const binding = z.preprocess(
  (v) => (typeof v === 'string' ? { ip: v } : v),
  z
    .strictObject({ ip, from: time.optional(), to: time.optional() })
    .transform((b) => ({ ip: b.ip, from_ms: b.from ?? 0, to_ms: b.to ?? null })),
);

const pod = z.strictObject({
  name,
  namespace: name.default('default'),
  /** Defaults to inventory:<namespace>/<name>; set it to the real pod UID when agents report one. */
  uid: z.string().min(1).optional(),
  workload: z.strictObject({ kind: z.string().min(1), name }).optional(),
  ips: z.array(binding).min(1),
  labels: labels.default({}),
});

const host = z.strictObject({
  name,
  zone: z.string().min(1).optional(),
  region: z.string().min(1).optional(),
  ips: z.array(binding).default([]),
  labels: labels.default({}),
  pods: z.array(pod).default([]),
});

const service = z.strictObject({
  name,
  namespace: name.default('default'),
  cluster_ips: z.array(ip).default([]),
  ports: z.array(z.strictObject({ name: z.string().default(''), port: z.number().int().min(1).max(65535), protocol: z.enum(['TCP', 'UDP', 'SCTP']).default('TCP') })).default([]),
  /** Pods (on any host) whose labels include all of these are the service's endpoints. */
  selector: labels.default({}),
});

export const inventorySchema = z
  .strictObject({
    version: z.literal(1),
    hosts: z.array(host).default([]),
    services: z.array(service).default([]),
  })
  .superRefine((inv, ctx) => {
    const unique = (what: string, keys: { key: string; path: (string | number)[] }[]): void => {
      const seen = new Set<string>();
      for (const k of keys) {
        if (seen.has(k.key)) ctx.addIssue({ code: 'custom', path: k.path, message: `duplicate ${what} ${k.key}` });
        seen.add(k.key);
      }
    };
    unique('host', inv.hosts.map((h, i) => ({ key: h.name, path: ['hosts', i, 'name'] })));
    unique(
      'pod',
      inv.hosts.flatMap((h, i) => h.pods.map((p, j) => ({ key: `${p.namespace}/${p.name}`, path: ['hosts', i, 'pods', j, 'name'] }))),
    );
    unique('service', inv.services.map((s, i) => ({ key: `${s.namespace}/${s.name}`, path: ['services', i, 'name'] })));
  });

export type Inventory = z.infer<typeof inventorySchema>;
