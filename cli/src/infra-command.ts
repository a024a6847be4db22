import { Command } from 'commander';
import { infraDown, infraStatus, infraUp, localInfraConfig } from '@meshlens/deploy/local';

export function infraCommand(): Command {
  const infra = new Command('infra').description(
    'the embedded Kafka and ClickHouse for this machine (state under $MESHLENS_STATE_DIR, default .meshlens/)',
  );
  infra
    .command('up')
    .description('start embedded Kafka and ClickHouse (if not already running) and wait until both answer')
    .action(async () => {
      const state = await infraUp(localInfraConfig());
      process.stdout.write(`kafka       ${state.kafka!.brokers.join(',')}  (pid ${state.kafka!.pid})\n`);
      process.stdout.write(`clickhouse  ${state.clickhouse!.url}  (pid ${state.clickhouse!.pid})\n`);
    });
  infra
    .command('status')
    .description('show both services; exits 0 only if both answer')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const status = await infraStatus(localInfraConfig());
      if (opts.json) {
        process.stdout.write(JSON.stringify(status) + '\n');
      } else {
        for (const s of status) {
          const what = s.answers ? 'answering' : s.running ? 'running, not answering' : 'down';
          process.stdout.write(`${s.name.padEnd(11)} ${(s.endpoint ?? '-').padEnd(24)} ${s.pid === null ? '' : `pid ${s.pid}  `}${what}\n`);
        }
      }
      if (!status.every((s) => s.answers)) process.exitCode = 1;
    });
  infra
    .command('down')
    .description('stop exactly the processes `infra up` started')
    .action(async () => {
      const stopped = await infraDown(localInfraConfig());
      process.stdout.write(stopped.length ? `stopped ${stopped.join(', ')}\n` : 'nothing was running\n');
    });
  return infra;
}
