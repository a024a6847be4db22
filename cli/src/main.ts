/**
 * The single entry point, `pnpm meshlens <command>`. Commands live in their own modules;
 * this file only assembles them. Errors meant for a person print as one line.
 */
import { Command, CommanderError } from 'commander';
import { ConfigError } from '@meshlens/agent';
import { InfraError } from '@meshlens/deploy/local';

/**
 * Each command's module is loaded only when that command runs (all of them for help): a
 * command's module pulls in its component, and the agent, which runs on every node, would
 * otherwise carry the API server, the analyzer and ClickHouse's client (~130 MiB of RSS).
 */
const commands: Record<string, () => Promise<Command>> = {
  infra: async () => (await import('./infra-command.js')).infraCommand(),
  up: async () => (await import('./up-command.js')).upCommand(),
  agent: async () => (await import('./agent-command.js')).agentCommand(),
  analyzer: async () => (await import('./analyzer-command.js')).analyzerCommand(),
  collector: async () => (await import('./collector-command.js')).collectorCommand(),
  api: async () => (await import('./api-command.js')).apiCommand(),
  top: async () => (await import('./top-command.js')).topCommand(),
  triage: async () => (await import('./triage-command.js')).triageCommand(),
  matrix: async () => (await import('./matrix-command.js')).matrixCommand(),
  dns: async () => (await import('./dns-command.js')).dnsCommand(),
  demo: async () => (await import('./demo-command.js')).demoCommand(),
};

const program = new Command('meshlens')
  .description('passive network observability for Kubernetes')
  .showHelpAfterError()
  .exitOverride();
const wanted = process.argv[2];
for (const load of wanted && Object.hasOwn(commands, wanted) ? [commands[wanted]!] : Object.values(commands)) program.addCommand(await load());

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const msg = err instanceof InfraError || err instanceof ConfigError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`meshlens: ${msg}\n`);
  process.exit(1);
}
