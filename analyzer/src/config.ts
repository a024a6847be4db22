/**
 * Analyzer configuration: one zod schema, filled from the environment (MESHLENS_*) and
 * overridable in code. Validation happens once at start, so a typo in a broker list or a
 * SASL mechanism fails loudly instead of surfacing as a retry loop an hour later.
 */
import { z } from 'zod';
import { Topics, kafkaSecurityFromEnv, kafkaSecuritySchema } from '@meshlens/schemas';

const nonEmpty = z.string().min(1);

export const analyzerConfigSchema = z.object({
  kafka: z.object({
    brokers: z.array(nonEmpty).min(1),
    clientId: nonEmpty.default('meshlens-analyzer'),
    ...kafkaSecuritySchema.shape,
  }),
  clickhouse: z.object({
    url: z.url(),
    username: nonEmpty.default('default'),
    password: z.string().default(''),
    database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('meshlens'),
  }),
  topics: z
    .object({
      tcp: nonEmpty.default(Topics.tcp),
      tcpEvent: nonEmpty.default(Topics.tcp_event),
      dns: nonEmpty.default(Topics.dns),
      metadata: nonEmpty.default(Topics.metadata),
      deadLetter: nonEmpty.default(Topics.deadLetter),
    })
    .prefault({}),
  /** Partitions of agent topics the analyzer has to create itself; existing topics keep theirs. */
  topicPartitions: z.number().int().positive().default(12),
  groupId: nonEmpty.default('meshlens-analyzer'),
  /** How long a silent member keeps its partitions; a crashed analyzer's partitions wait this long for a new owner. */
  sessionTimeoutMs: z.number().int().min(6_000).default(30_000),
  /** How far behind the newest slot seen a slot may still receive its other side. */
  graceMs: z.number().int().min(0).default(10_000),
  /**
   * Memory bound of matching, per partition: past this many held records the oldest slot is
   * flushed early (counted, its one-sided rows marked `memory_cap`), never dropped.
   */
  maxHeldRecords: z.number().int().positive().default(200_000),
  /** Memory bound of the DNS-learnt names: this many IPs, least recently used evicted first (counted). */
  maxDnsNames: z.number().int().positive().default(100_000),
  /** A partition with held records and no new message for this long is flushed anyway. */
  idleFlushMs: z.number().int().positive().default(30_000),
  /** Retry delay bounds while ClickHouse refuses inserts; consumption stays paused meanwhile. */
  retryMinMs: z.number().int().positive().default(200),
  retryMaxMs: z.number().int().positive().default(10_000),
  http: z.object({ host: nonEmpty.default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(9466) }).prefault({}),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * Test hook: after this many acknowledged inserts, stop right before the offset commit
   * and announce it on stderr, so a test can SIGKILL the process at the worst moment.
   */
  haltBeforeCommitAfterInserts: z.number().int().positive().nullable().default(null),
});

export type AnalyzerConfig = z.infer<typeof analyzerConfigSchema>;
export type AnalyzerConfigInput = z.input<typeof analyzerConfigSchema>;

function num(v: string | undefined): number | undefined {
  return v === undefined || v === '' ? undefined : Number(v);
}

/** The environment's view of the config; explicit overrides win. */
export function configFromEnv(env: NodeJS.ProcessEnv, overrides: Partial<AnalyzerConfigInput> = {}): AnalyzerConfig {
  const fromEnv = {
    kafka: { brokers: env.MESHLENS_KAFKA_BROKERS?.split(',').map((b) => b.trim()).filter(Boolean), ...kafkaSecurityFromEnv(env) },
    clickhouse: {
      url: env.MESHLENS_CLICKHOUSE_URL,
      username: env.MESHLENS_CLICKHOUSE_USER || undefined,
      password: env.MESHLENS_CLICKHOUSE_PASSWORD,
      database: env.MESHLENS_CLICKHOUSE_DATABASE || undefined,
    },
    groupId: env.MESHLENS_ANALYZER_GROUP || undefined,
    graceMs: num(env.MESHLENS_ANALYZER_GRACE_MS),
    idleFlushMs: num(env.MESHLENS_ANALYZER_IDLE_FLUSH_MS),
    maxHeldRecords: num(env.MESHLENS_ANALYZER_MAX_HELD_RECORDS),
    maxDnsNames: num(env.MESHLENS_ANALYZER_MAX_DNS_NAMES),
    sessionTimeoutMs: num(env.MESHLENS_ANALYZER_SESSION_TIMEOUT_MS),
    topicPartitions: num(env.MESHLENS_ANALYZER_TOPIC_PARTITIONS),
    http: { port: num(env.MESHLENS_ANALYZER_HTTP_PORT) },
    logLevel: env.MESHLENS_LOG_LEVEL || undefined,
    haltBeforeCommitAfterInserts: num(env.MESHLENS_ANALYZER_HALT_BEFORE_COMMIT_AFTER_INSERTS) ?? null,
    topics: env.MESHLENS_ANALYZER_TOPICS ? (JSON.parse(env.MESHLENS_ANALYZER_TOPICS) as unknown) : undefined,
  };
  const merged = {
    ...fromEnv,
    ...overrides,
    kafka: { ...fromEnv.kafka, ...overrides.kafka },
    clickhouse: { ...fromEnv.clickhouse, ...overrides.clickhouse },
  };
  return analyzerConfigSchema.parse(merged);
}
