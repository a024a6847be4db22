/**
 * Where the embedded infrastructure lives and listens. Everything can be moved by
 * environment so that tests (and two checkouts on one machine) never collide.
 */
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export interface LocalInfraConfig {
  stateDir: string;
  cacheDir: string;
  kafkaPort: number;
  kafkaControllerPort: number;
  clickhousePort: number;
  /** How long to wait for each service to answer before giving up. */
  readyTimeoutMs: number;
  /**
   * A broker that demands SASL/PLAIN of its clients (with this one user), as production
   * clusters do, so that the components' SASL settings are tested against a real Kafka.
   */
  kafkaSasl?: { username: string; password: string };
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${name}=${raw} is not a TCP port`);
  return n;
}

export function localInfraConfig(env: NodeJS.ProcessEnv = process.env): LocalInfraConfig {
  return {
    stateDir: resolve(env.MESHLENS_STATE_DIR ?? join(repoRoot, '.meshlens')),
    cacheDir: resolve(env.MESHLENS_CACHE ?? join(homedir(), '.cache', 'meshlens')),
    kafkaPort: port(env, 'MESHLENS_KAFKA_PORT', 19092),
    kafkaControllerPort: port(env, 'MESHLENS_KAFKA_CONTROLLER_PORT', 19093),
    clickhousePort: port(env, 'MESHLENS_CLICKHOUSE_PORT', 18123),
    readyTimeoutMs: 90_000,
  };
}
