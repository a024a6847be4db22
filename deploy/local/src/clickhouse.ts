/** The ClickHouse engine from npm (chdb's libchdb.so) serving HTTP on loopback. */
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { LocalInfraConfig } from './config.js';
import { InfraError, assertPortFree, spawnDaemon, waitReady } from './processes.js';

export interface ClickHouseEndpoint {
  pid: number;
  url: string;
}

function libchdbPath(): string {
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve('@chdb/lib-linux-x64-gnu/package.json')), 'libchdb.so');
  } catch {
    throw new InfraError('the ClickHouse engine (@chdb/lib-linux-x64-gnu) is not installed; run scripts/setup.sh');
  }
}

export async function clickhouseAnswers(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/?query=SELECT%201`, { signal: AbortSignal.timeout(2000) });
    return res.ok && (await res.text()).trim() === '1';
  } catch {
    return false;
  }
}

export async function startClickHouse(cfg: LocalInfraConfig): Promise<ClickHouseEndpoint> {
  const launcher = join(cfg.cacheDir, 'bin', 'chdb-launcher');
  if (!existsSync(launcher)) throw new InfraError(`${launcher} is missing; run scripts/setup.sh (it compiles it)`);
  await assertPortFree(cfg.clickhousePort, 'ClickHouse HTTP', 'MESHLENS_CLICKHOUSE_PORT');
  const dir = join(cfg.stateDir, 'clickhouse');
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, 'clickhouse.log');
  // clickhouse-local serves HTTP only while a query runs, so it gets one that never ends:
  // an endless numbers() stream, one row a second, into the Null format.
  const args = [
    libchdbPath(),
    `--path=${join(dir, 'data')}`,
    '--listen_host=127.0.0.1',
    `--http_port=${cfg.clickhousePort}`,
    '--query',
    'SYSTEM START LISTEN HTTP; SELECT sleepEachRow(1) FROM system.numbers SETTINGS max_block_size = 1 FORMAT Null',
  ];
  const pid = spawnDaemon(launcher, args, logFile, dir);
  const url = `http://127.0.0.1:${cfg.clickhousePort}`;
  await waitReady('ClickHouse', pid, logFile, cfg.readyTimeoutMs, () => clickhouseAnswers(url));
  return { pid, url };
}
