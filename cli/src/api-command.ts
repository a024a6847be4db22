import { Command } from 'commander';
import { pino } from 'pino';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { buildApi } from '@meshlens/analyzer';
import { clickhouseClient } from '@meshlens/schemas/clickhouse';
import { signalled, stopWithin } from './signals.js';

/** Open requests get this long to finish. */
const STOP_GRACE_MS = 10_000;

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${v} is not a port`);
  return n;
}

export function apiCommand(): Command {
  return new Command('api')
    .description('serve the HTTP API (bearer tokens from MESHLENS_API_TOKENS, comma-separated; docs at /docs) until SIGINT/SIGTERM')
    .option('--port <port>', 'listen port, 0 for any (env MESHLENS_API_PORT)', port)
    .option('--host <addr>', 'listen address', '127.0.0.1')
    .option('--database <name>', 'ClickHouse database (env MESHLENS_CLICKHOUSE_DATABASE)')
    .action(async function (this: Command, opts: { port?: number; host: string; database?: string }) {
      const tokens = (process.env.MESHLENS_API_TOKENS ?? '').split(',').map((t) => t.trim()).filter(Boolean);
      if (tokens.length === 0) this.error('meshlens: set MESHLENS_API_TOKENS to one or more comma-separated bearer tokens');
      // ClickHouse: the user's own when MESHLENS_CLICKHOUSE_URL is set, else the embedded one.
      const conn = connectionsFor(localInfraConfig());
      const ch = clickhouseClient({
        url: conn.clickhouseUrl,
        username: conn.clickhouseUser,
        password: conn.clickhousePassword,
        database: opts.database ?? process.env.MESHLENS_CLICKHOUSE_DATABASE ?? 'meshlens',
      });
      const stopping = signalled();
      const app = await buildApi({ ch, tokens, logger: pino({ level: process.env.MESHLENS_LOG_LEVEL ?? 'warn' }) });
      const url = await app.listen({ host: opts.host, port: opts.port ?? port(process.env.MESHLENS_API_PORT ?? '9470') });
      // The line a supervisor (or a test) waits for.
      process.stdout.write(`meshlens api listening on ${url}\n`);
      await stopping;
      await stopWithin('api', STOP_GRACE_MS, async () => {
        await app.close();
        await ch.close();
      });
    });
}
