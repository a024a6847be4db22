/**
 * How every component talks to a production Kafka: TLS and SASL, one schema and one reading of
 * the environment, so the agent, the collector and the analyzer cannot disagree on what
 * MESHLENS_KAFKA_TLS_CA means. The shape is what kafkajs takes for `ssl` and `sasl`.
 */
import { z } from 'zod';

const nonEmpty = z.string().min(1);

export const kafkaSaslSchema = z.object({
  mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
  username: nonEmpty,
  password: nonEmpty,
});

/** true: TLS with the system CAs; an object: explicit PEMs (contents, not paths). */
export const kafkaSslSchema = z.union([z.boolean(), z.object({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() })]);

export const kafkaSecuritySchema = z.object({
  ssl: kafkaSslSchema.default(false),
  sasl: kafkaSaslSchema.nullable().default(null),
});

export type KafkaSecurity = z.infer<typeof kafkaSecuritySchema>;

/**
 * The environment's Kafka security, unvalidated (parse it with the component's schema so the
 * error names the field): MESHLENS_KAFKA_TLS=1 or a CA turns TLS on; MESHLENS_KAFKA_TLS_CA,
 * _CERT and _KEY are PEM text (a process with file capabilities ignores NODE_EXTRA_CA_CERTS);
 * MESHLENS_KAFKA_SASL_MECHANISM, _USERNAME and _PASSWORD turn SASL on. What the environment
 * does not set stays undefined, so a config file below it keeps its say.
 */
export function kafkaSecurityFromEnv(env: NodeJS.ProcessEnv): { ssl?: unknown; sasl?: unknown } {
  const pems = env.MESHLENS_KAFKA_TLS_CA || env.MESHLENS_KAFKA_TLS_CERT;
  const out: { ssl?: unknown; sasl?: unknown } = {};
  if (pems) {
    const pem = { ca: env.MESHLENS_KAFKA_TLS_CA, cert: env.MESHLENS_KAFKA_TLS_CERT, key: env.MESHLENS_KAFKA_TLS_KEY };
    out.ssl = Object.fromEntries(Object.entries(pem).filter(([, v]) => v));
  } else if (env.MESHLENS_KAFKA_TLS === '1') out.ssl = true;
  if (env.MESHLENS_KAFKA_SASL_MECHANISM) {
    out.sasl = { mechanism: env.MESHLENS_KAFKA_SASL_MECHANISM, username: env.MESHLENS_KAFKA_SASL_USERNAME, password: env.MESHLENS_KAFKA_SASL_PASSWORD };
  }
  return out;
}
