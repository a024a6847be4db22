/**
 * The product around a demo lab: the collector with the lab's inventory, the analyzer, the
 * API, and one agent per lab node watching only that node's namespace. The same CLI
 * processes `up` runs, started through stack.ts; shared by `meshlens demo`, the e2e tests
 * and the pipeline bench.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { connectionsFor, localInfraConfig, type Connections } from '@meshlens/deploy/local';
// The demo lab is test tooling, not a runtime dependency of the CLI's other commands.
import type { DemoLab } from '@meshlens/e2e/demo';
import { startComponent, stopComponents, type ComponentSpec, type Running } from './stack.js';

export interface DemoStackOptions {
  slotMs: number;
  /** Logs, the inventory and the agents' spools go here. */
  dir: string;
  /** Fixed API port; default any free one. */
  apiPort?: number;
}

export interface DemoStack {
  apiUrl: string;
  token: string;
  running: Running[];
  /** PIDs of the agents, by lab host. */
  agents: Map<string, number>;
  analyzerMetricsUrl: string;
  /** Kafka and ClickHouse the components use. */
  connections: Connections;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const health = (port: number) => `http://127.0.0.1:${port}/healthz`;

export async function startDemoStack(demo: DemoLab, o: DemoStackOptions): Promise<DemoStack> {
  mkdirSync(join(o.dir, 'logs'), { recursive: true });
  const inventory = join(o.dir, 'inventory.yaml');
  writeFileSync(inventory, stringify(demo.inventory()));
  // The API reads its tokens from the environment it inherits.
  const token = process.env.MESHLENS_API_TOKENS?.split(',')[0]?.trim() || randomBytes(12).toString('hex');
  process.env.MESHLENS_API_TOKENS ||= token;

  const running: Running[] = [];
  const start = async (spec: ComponentSpec) => {
    const r = await startComponent(spec, join(o.dir, 'logs', `${spec.name}.log`));
    running.push(r);
    return r;
  };
  const stop = () => stopComponents(running);
  try {
    const [collector, analyzer, api] = await Promise.all([freePort(), freePort(), o.apiPort ?? freePort()]);
    await start({ name: 'collector', args: ['collector', '--inventory', inventory, '--listen', `127.0.0.1:${collector}`], healthUrl: health(collector) });
    await start({
      name: 'analyzer',
      args: ['analyzer', '--http-port', String(analyzer), '--grace-ms', String(o.slotMs), '--idle-flush-ms', String(2 * o.slotMs)],
      healthUrl: health(analyzer),
    });
    await start({ name: 'api', args: ['api', '--port', String(api)], healthUrl: health(api) });
    // Agents in parallel: each spends most of its start-up compiling and loading BPF.
    const agents = new Map<string, number>();
    await Promise.all(
      demo.nodes().map(async ({ host, ns }) => {
        const port = await freePort();
        const args = ['agent', '--netns', ns, '--node', demo.nodeName(host), '--slot-ms', String(o.slotMs), '--metrics-port', String(port),
          '--spool-dir', join(o.dir, 'spool', host)];
        const r = await start({ name: `agent-${host}`, args, healthUrl: health(port) });
        agents.set(host, r.child.pid!);
      }),
    );
    return {
      apiUrl: `http://127.0.0.1:${api}`,
      token,
      running,
      agents,
      analyzerMetricsUrl: `http://127.0.0.1:${analyzer}/metrics`,
      connections: connectionsFor(localInfraConfig()),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
