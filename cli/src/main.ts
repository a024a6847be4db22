/**
 * The single entry point, `pnpm meshlens <command>`. Commands live in their own modules;
 * this file only assembles them. Errors meant for a person print as one line.
 */
import { Command, CommanderError } from 'commander';
import { ConfigError } from '@meshlens/agent';
import { InfraError } from '@meshlens/deploy/local';
import { agentCommand } from './agent-command.js';
import { collectorCommand } from './collector-command.js';
import { analyzerCommand } from './analyzer-command.js';
import { infraCommand } from './infra-command.js';
import { upCommand } from './up-command.js';
import { apiCommand } from './api-command.js';
import { topCommand } from './top-command.js';
import { triageCommand } from './triage-command.js';
import { matrixCommand } from './matrix-command.js';
import { dnsCommand } from './dns-command.js';

const program = new Command('meshlens')
  .description('passive network observability for Kubernetes')
  .showHelpAfterError()
  .exitOverride();
program.addCommand(infraCommand());
program.addCommand(upCommand());
program.addCommand(agentCommand());
program.addCommand(analyzerCommand());
program.addCommand(collectorCommand());
program.addCommand(apiCommand());
program.addCommand(topCommand());
program.addCommand(triageCommand());
program.addCommand(matrixCommand());
program.addCommand(dnsCommand());

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const msg = err instanceof InfraError || err instanceof ConfigError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`meshlens: ${msg}\n`);
  process.exit(1);
}
