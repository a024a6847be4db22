/**
 * Analyzer configuration: one zod schema, filled from the environment (MESHLENS_*) and
 * overridable in code. Validation happens once at start, so a typo in a broker list or a
 * SASL mechanism fails loudly instead of surfacing as a retry loop an hour later.
 */
import { z } from 'zod';
import { Topics } from '@meshlens/schemas';

const nonEmpty = z.string().min(1);

const saslSchema = z.object({ mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']), username: nonEmpty, password: nonEmpty });

export const analyzerConfigSchema = z.object({
  kafka: z.object({
    brokers: z.array(nonEmpty).min(1),
    clientId: nonEmpty.default('meshlens-analyzer'),
    /** true: TLS with the system CAs; an object: explicit PEMs (file contents, not paths). */
    ssl: z.union([z.boolean(), z.object({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() })]).default(false),
    sasl: saslSchema.nullable().default(null),
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
  const sasl = env.MESHLENS_KAFKA_SASL_MECHANISM
    ? { mechanism: env.MESHLENS_KAFKA_SASL_MECHANISM, username: env.MESHLENS_KAFKA_SASL_USERNAME, password: env.MESHLENS_KAFKA_SASL_PASSWORD }
    : null;
  const ssl =
    env.MESHLENS_KAFKA_TLS === '1' || env.MESHLENS_KAFKA_TLS_CA
      ? env.MESHLENS_KAFKA_TLS_CA || env.MESHLENS_KAFKA_TLS_CERT
        ? { ca: env.MESHLENS_KAFKA_TLS_CA, cert: env.MESHLENS_KAFKA_TLS_CERT, key: env.MESHLENS_KAFKA_TLS_KEY }
        : true
      : false;
  const fromEnv = {
    kafka: { brokers: env.MESHLENS_KAFKA_BROKERS?.split(',').map((b) => b.trim()).filter(Boolean), ssl, sasl },
    clickhouse: {
      url: env.MESHLENS_CLICKHOUSE_URL,
      username: env.MESHLENS_CLICKHOUSE_USER || undefined,
      password: env.MESHLENS_CLICKHOUSE_PASSWORD,
      database: env.MESHLENS_CLICKHOUSE_DATABASE || undefined,
    },
    groupId: env.MESHLENS_ANALYZER_GROUP || undefined,
    graceMs: num(env.MESHLENS_ANALYZER_GRACE_MS),
    idleFlushMs: num(env.MESHLENS_ANALYZER_IDLE_FLUSH_MS),
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
