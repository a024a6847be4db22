/**
 * `infra up|down|status`: the embedded Kafka and ClickHouse as one unit, remembered in a
 * state file so that `down` stops exactly what `up` started and `up` twice is harmless.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clickhouseAnswers, startClickHouse } from './clickhouse.js';
import type { LocalInfraConfig } from './config.js';
import { kafkaAnswers, startKafka } from './kafka.js';
import { assertPortFree, isOurProcess, stopProcess, waitPortFree } from './processes.js';

export interface InfraState {
  kafka: { pid: number; brokers: string[] } | null;
  clickhouse: { pid: number; url: string } | null;
}

export interface ServiceStatus {
  name: 'kafka' | 'clickhouse';
  endpoint: string | null;
  pid: number | null;
  running: boolean;
  answers: boolean;
}

const stateFile = (cfg: LocalInfraConfig) => join(cfg.stateDir, 'infra.json');

export function readInfraState(cfg: LocalInfraConfig): InfraState {
  const file = stateFile(cfg);
  if (!existsSync(file)) return { kafka: null, clickhouse: null };
  return JSON.parse(readFileSync(file, 'utf8')) as InfraState;
}

function writeInfraState(cfg: LocalInfraConfig, state: InfraState): void {
  mkdirSync(cfg.stateDir, { recursive: true });
  if (state.kafka === null && state.clickhouse === null) {
    rmSync(stateFile(cfg), { force: true });
    return;
  }
  writeFileSync(stateFile(cfg), JSON.stringify(state, null, 2) + '\n');
}

// Markers that only our own processes carry on their command line (see kafka.ts/clickhouse.ts).
const kafkaMarker = (cfg: LocalInfraConfig) => `-Dmeshlens.state=${cfg.stateDir}\0`;
const clickhouseMarker = (cfg: LocalInfraConfig) => `--path=${join(cfg.stateDir, 'clickhouse', 'data')}\0`;

export async function infraStatus(cfg: LocalInfraConfig): Promise<ServiceStatus[]> {
  const s = readInfraState(cfg);
  const kafkaRunning = s.kafka !== null && isOurProcess(s.kafka.pid, kafkaMarker(cfg));
  const chRunning = s.clickhouse !== null && isOurProcess(s.clickhouse.pid, clickhouseMarker(cfg));
  return [
    {
      name: 'kafka',
      endpoint: s.kafka?.brokers.join(',') ?? null,
      pid: s.kafka?.pid ?? null,
      running: kafkaRunning,
      answers: kafkaRunning && (await kafkaAnswers(s.kafka!.brokers)),
    },
    {
      name: 'clickhouse',
      endpoint: s.clickhouse?.url ?? null,
      pid: s.clickhouse?.pid ?? null,
      running: chRunning,
      answers: chRunning && (await clickhouseAnswers(s.clickhouse!.url)),
    },
  ];
}

/** Starts whatever is not already running and answering; returns the endpoints. */
export async function infraUp(cfg: LocalInfraConfig): Promise<InfraState> {
  const state = readInfraState(cfg);
  const [kafka, clickhouse] = await infraStatus(cfg);
  // A service that runs but does not answer is restarted rather than trusted.
  if (kafka!.running && !kafka!.answers) await stopProcess(kafka!.pid!);
  if (clickhouse!.running && !clickhouse!.answers) await stopProcess(clickhouse!.pid!);
  if (!kafka!.answers) state.kafka = null;
  if (!clickhouse!.answers) state.clickhouse = null;
  // Check every port before starting anything, so a busy port fails fast and leaves nothing half-started.
  if (state.kafka === null) {
    await assertPortFree(cfg.kafkaPort, 'Kafka', 'MESHLENS_KAFKA_PORT');
    await assertPortFree(cfg.kafkaControllerPort, 'Kafka controller', 'MESHLENS_KAFKA_CONTROLLER_PORT');
  }
  if (state.clickhouse === null) await assertPortFree(cfg.clickhousePort, 'ClickHouse HTTP', 'MESHLENS_CLICKHOUSE_PORT');
  try {
    if (state.clickhouse === null) {
      state.clickhouse = await startClickHouse(cfg);
      writeInfraState(cfg, state);
    }
    if (state.kafka === null) {
      state.kafka = await startKafka(cfg);
      writeInfraState(cfg, state);
    }
  } catch (err) {
    writeInfraState(cfg, state);
    throw err;
  }
  return state;
}

/** Stops exactly the processes `up` recorded, and only if they are still ours. */
export async function infraDown(cfg: LocalInfraConfig): Promise<string[]> {
  const state = readInfraState(cfg);
  const stopped: string[] = [];
  if (state.kafka && isOurProcess(state.kafka.pid, kafkaMarker(cfg))) {
    await stopProcess(state.kafka.pid);
    await waitPortFree(cfg.kafkaPort, 'Kafka');
    await waitPortFree(cfg.kafkaControllerPort, 'Kafka controller');
    stopped.push(`kafka (pid ${state.kafka.pid})`);
  }
  if (state.clickhouse && isOurProcess(state.clickhouse.pid, clickhouseMarker(cfg))) {
    await stopProcess(state.clickhouse.pid);
    await waitPortFree(cfg.clickhousePort, 'ClickHouse HTTP');
    stopped.push(`clickhouse (pid ${state.clickhouse.pid})`);
  }
  writeInfraState(cfg, { kafka: null, clickhouse: null });
  return stopped;
}
