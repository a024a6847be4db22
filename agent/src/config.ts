/**
 * Agent configuration: defaults < YAML file < environment (MESHLENS_AGENT_*) < flags,
 * validated as one object so that an error names the field whatever its source.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { kafkaSecurityFromEnv, kafkaSecuritySchema } from '@meshlens/schemas';

const kafkaSchema = z.object({
  brokers: z.array(z.string().regex(/^[^:\s]+:\d+$/, 'expected host:port')).min(1),
  clientId: z.string().default('meshlens-agent'),
  ...kafkaSecuritySchema.shape,
  /** Partitions for topics the agent creates when they are missing (embedded Kafka). */
  createPartitions: z.number().int().positive().default(8),
});

export const agentConfigSchema = z
  .object({
    node: z.string().min(1).default(() => hostname()),
    slotMs: z.number().int().min(100).max(600_000).default(10_000),
    output: z.enum(['kafka', 'stdout']),
    kafka: kafkaSchema.nullable().default(null),
    /** Network namespaces to watch (names under /run/netns, or paths); empty = the whole host. */
    netns: z.array(z.string().min(1)).default([]),
    /**
     * cgroup v2 directory whose programs see every socket; default: the root of the v2 mount
     * in /proc/self/mountinfo. In a container (private cgroup namespace) that mount is the
     * container's own cgroup, so the host's root is bind-mounted and named here.
     */
    cgroupPath: z.string().min(1).nullable().default(null),
    spool: z.object({ dir: z.string().min(1), maxBytes: z.number().int().min(1024 * 1024) }),
    /**
     * DNS capture. Off, the two per-packet DNS programs are not loaded at all: on a node where
     * DNS is watched elsewhere, that takes the probes' per-packet work off every connection
     * (bench/RESULTS.md, issue 3). No dns records are made then.
     */
    dns: z.boolean().default(true),
    dnsTimeoutMs: z.number().int().min(100).default(5000),
    /** 0 = no metrics server. */
    metricsPort: z.number().int().min(0).max(65535).default(9464),
    metricsHost: z.string().default('127.0.0.1'),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'),
  })
  .refine((c) => c.output !== 'kafka' || c.kafka !== null, { message: 'output kafka needs kafka.brokers', path: ['kafka'] });

export type AgentConfig = z.infer<typeof agentConfigSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Partial = Record<string, unknown>;

function deepMerge(a: Partial, b: Partial): Partial {
  const out: Partial = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? deepMerge(prev as Partial, v as Partial)
        : v;
  }
  return out;
}

/** true/false, 1/0, on/off; anything else is left as it is, for the schema to refuse by name. */
function envBool(v: string | undefined): boolean | string | undefined {
  const t = v?.trim().toLowerCase();
  if (t === 'true' || t === '1' || t === 'on') return true;
  if (t === 'false' || t === '0' || t === 'off') return false;
  return v;
}

function fromEnv(env: NodeJS.ProcessEnv): Partial {
  const num = (name: string) => (env[name] === undefined ? undefined : Number(env[name]));
  return {
    node: env.MESHLENS_AGENT_NODE ?? env.NODE_NAME,
    slotMs: num('MESHLENS_AGENT_SLOT_MS'),
    output: env.MESHLENS_AGENT_OUTPUT,
    kafka: env.MESHLENS_KAFKA_BROKERS
      ? {
          brokers: env.MESHLENS_KAFKA_BROKERS.split(',').map((s) => s.trim()),
          ...kafkaSecurityFromEnv(env),
        }
      : undefined,
    cgroupPath: env.MESHLENS_AGENT_CGROUP_PATH,
    dns: envBool(env.MESHLENS_AGENT_DNS),
    spool: { dir: env.MESHLENS_AGENT_SPOOL_DIR, maxBytes: num('MESHLENS_AGENT_SPOOL_MAX_BYTES') },
    metricsPort: num('MESHLENS_AGENT_METRICS_PORT'),
  };
}

/**
 * Builds the configuration. `defaults` carries what depends on the environment the CLI
 * runs in (e.g. the embedded brokers); `flags` what the user typed.
 */
export function loadAgentConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; defaults?: Partial; flags?: Partial }): AgentConfig {
  let fromFile: Partial = {};
  if (opts.file) {
    let text: string;
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${opts.file}: ${(err as Error).message}`);
    }
    try {
      fromFile = (parseYaml(text) as Partial | null) ?? {};
    } catch (err) {
      throw new ConfigError(`${opts.file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  const merged = [opts.defaults ?? {}, fromFile, fromEnv(opts.env ?? process.env), opts.flags ?? {}].reduce(deepMerge, {});
  const r = agentConfigSchema.safeParse(merged);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ConfigError(`invalid agent configuration: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return r.data;
}
