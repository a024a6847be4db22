import { Command } from 'commander';
import { infraDown, infraUp, localInfraConfig } from '@meshlens/deploy/local';

/**
 * The whole product on this machine. For now that is the embedded infrastructure only:
 * the agent, collector and analyzer join this command as they land.
 */
export function upCommand(): Command {
  return new Command('up')
    .description('run meshlens on this machine (today: embedded Kafka and ClickHouse); Ctrl-C stops what it started')
    .action(async () => {
      const cfg = localInfraConfig();
      const state = await infraUp(cfg);
      process.stdout.write(
        `kafka       ${state.kafka!.brokers.join(',')}\nclickhouse  ${state.clickhouse!.url}\n` +
          'The agent, collector and analyzer are not built yet; only the infrastructure runs. Ctrl-C stops it.\n',
      );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      const stopped = await infraDown(cfg);
      process.stdout.write(`stopped ${stopped.join(', ')}\n`);
    });
}
