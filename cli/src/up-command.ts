import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { connectionsFor, infraDown, infraUp, localInfraConfig } from '@meshlens/deploy/local';
import { hostInventoryYaml } from './host-inventory.js';
import { runLiveView } from './live-view.js';
import { startComponent, stopComponents, type ComponentSpec, type Running } from './stack.js';

const PORTS = { agent: 9464, collector: 9465, analyzer: 9466, api: 9470 };

/**
 * The whole product on this machine: embedded Kafka and ClickHouse (unless external ones are
 * configured), the collector with an inventory of this host, the agent watching the whole
 * host, the analyzer and the HTTP API; then a live summary every slot. Ctrl-C stops what it
 * started. The API token is the user's (MESHLENS_API_TOKENS) or a fresh random one written to
 * the state dir with mode 0600, so the API is never open just because it runs locally.
 */
export function upCommand(): Command {
  return new Command('up')
    .description('run meshlens on this machine: infrastructure, collector, agent (root), analyzer, HTTP API, and a live summary; Ctrl-C stops everything it started')
    .option('--slot-ms <ms>', 'agent interval (slots are aligned to wall-clock multiples)', (v) => Number(v), 10_000)
    .option('--api-port <port>', 'HTTP API port on 127.0.0.1', (v) => Number(v), PORTS.api)
    .action(async (o: { slotMs: number; apiPort: number }) => {
      const cfg = localInfraConfig();
      const external = Boolean(process.env.MESHLENS_KAFKA_BROKERS && process.env.MESHLENS_CLICKHOUSE_URL);
      if (!external) await infraUp(cfg);
      const conn = connectionsFor(cfg);
      const logs = join(cfg.stateDir, 'logs');
      mkdirSync(logs, { recursive: true });
      const inventory = join(cfg.stateDir, 'inventory.yaml');
      writeFileSync(inventory, hostInventoryYaml());
      const tokens = process.env.MESHLENS_API_TOKENS || randomBytes(24).toString('base64url');
      const tokenFile = join(cfg.stateDir, 'api-token');
      writeFileSync(tokenFile, tokens.split(',')[0]!.trim() + '\n', { mode: 0o600 });

      const running: Running[] = [];
      let stopping: Promise<void> | null = null;
      const stop = () =>
        (stopping ??= (async () => {
          await stopComponents(running);
          if (!external) await infraDown(cfg);
        })());
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
      const health = (port: number) => `http://127.0.0.1:${port}/healthz`;
      try {
        for (const spec of [
          { name: 'collector', args: ['collector', '--inventory', inventory, '--listen', `127.0.0.1:${PORTS.collector}`], healthUrl: health(PORTS.collector) },
          { name: 'analyzer', args: ['analyzer', '--http-port', String(PORTS.analyzer), '--grace-ms', String(o.slotMs), '--idle-flush-ms', String(2 * o.slotMs)], healthUrl: health(PORTS.analyzer) },
          { name: 'agent', args: ['agent', '--slot-ms', String(o.slotMs), '--metrics-port', String(PORTS.agent)], healthUrl: health(PORTS.agent) },
          { name: 'api', args: ['api', '--port', String(o.apiPort)], healthUrl: health(o.apiPort), env: { MESHLENS_API_TOKENS: tokens } },
        ] satisfies ComponentSpec[]) {
          if (stopping) break;
          running.push(await startComponent(spec, join(logs, `${spec.name}.log`)));
          process.stdout.write(`${spec.name.padEnd(10)} running (pid ${running.at(-1)!.child.pid}, log ${running.at(-1)!.logFile})\n`);
        }
      } catch (err) {
        await stop();
        throw err;
      }
      process.stdout.write(
        `kafka      ${conn.kafkaBrokers.join(',')}\nclickhouse ${conn.clickhouseUrl} (database meshlens)\n` +
          `api        http://127.0.0.1:${o.apiPort}/api/v1 (docs /docs; bearer token in ${tokenFile}, which \`pnpm meshlens top|triage|matrix|dns\` read)\n\n`,
      );

      await runLiveView(conn, o.slotMs, () => stopping !== null);
      await stop();
      process.stdout.write('stopped\n');
    });
}
