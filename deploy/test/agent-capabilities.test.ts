// The real agent, as the non-root uid the chart runs it as and with exactly the capability
// list the chart grants (read from the rendered chart, so the chart is the one source of
// truth): every program attaches, a TCP connection made through the network lab is recorded
// with the bytes the client sent, and one opened before the agent started is reported once it
// carries traffic. With any one capability taken away it fails
// clearly, so each one on the list is needed, not merely sufficient.
// The first run reproduces what a container runtime does with the chart's securityContext and
// the agent image: uid 65532, bounding set = the list, no ambient capabilities, no_new_privs
// (allowPrivilegeEscalation: false), and a node binary carrying the list as file capabilities
// (deploy/images/agent.Containerfile). The runs without one capability give it as ambient
// capabilities instead: with file capabilities outside the bounding set, exec itself fails.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { cgroup2Mount } from '@meshlens/bpf';
import { createLab, type Lab } from '@meshlens/e2e/netlab';
import { RENDERINGS, agentContainer, render } from './support/kube-tools.js';

const ROOT = join(import.meta.dirname, '..', '..');
const agentSc = agentContainer(render(RENDERINGS.default!)).securityContext;
const CAPS = agentSc.capabilities.add as string[];
const UID = agentSc.runAsUser as number;
const START_TIMEOUT_MS = 90_000;
// Where the checkout is bind-mounted for the agent (see startAgent).
const view = mkdtempSync(join(tmpdir(), 'meshlens-agent-view-'));
chmodSync(view, 0o755);
// A copy of node with the chart's capabilities as file capabilities, as in the agent image.
const binDir = mkdtempSync(join(tmpdir(), 'meshlens-agent-node-'));
chmodSync(binDir, 0o755);
const nodeWithCaps = join(binDir, 'node');
copyFileSync(process.execPath, nodeWithCaps);
execFileSync('setcap', [`${CAPS.map((c) => `cap_${c.toLowerCase()}`).join(',')}+ep`, nodeWithCaps]);

interface AgentRun {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Resolves when the agent says it runs, or when it exits (with its exit code). */
  started: Promise<{ running: boolean; code: number | null }>;
  exited: Promise<number | null>;
}

/** `fileCaps`: run the node copy that carries `caps` as file capabilities; else ambient ones. */
function startAgent(caps: string[], netns: string, how: 'fileCaps' | 'ambient'): AgentRun {
  const set = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  const inherited = how === 'ambient' ? set : '-all';
  // The checkout may sit below a directory only root can enter (/root), or be one (a fresh
  // clone in `mktemp -d`): in a mount namespace of its own, the agent sees a world-readable
  // tmpfs at a path it can reach, with each entry of the checkout bind-mounted into it.
  const mirror = [
    'mount -t tmpfs -o mode=755 meshlens-view "$2" || exit 1',
    'for e in "$1"/* "$1"/.[!.]*; do [ -e "$e" ] || continue; n=${e##*/};',
    'if [ -d "$e" ]; then mkdir "$2/$n"; else : > "$2/$n"; fi; mount --bind "$e" "$2/$n" || exit 1; done',
    'cd "$2" && shift 2 && exec "$@"',
  ].join('\n');
  const child = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', 'sh', '-c', mirror, 'sh', ROOT, view,
      'setpriv', '--reuid', String(UID), '--regid', String(UID), '--clear-groups', '--inh-caps', inherited, '--ambient-caps', inherited, '--bounding-set', set, '--no-new-privs',
      how === 'fileCaps' ? nodeWithCaps : process.execPath, '--import', 'tsx', 'cli/src/main.ts', 'agent', '--output', 'stdout', '--slot-ms', '1000', '--metrics-port', '0', '--netns', netns, '--node', 'cap-test'],
    // The same cgroup root the chart passes in, here the host's own v2 mount.
    { env: { ...process.env, MESHLENS_AGENT_CGROUP_PATH: cgroup2Mount() }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stdout: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => stdout.push(l));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const started = new Promise<{ running: boolean; code: number | null }>((resolve) => {
    createInterface({ input: child.stderr! }).on('line', (l) => {
      stderr.push(l);
      if (l.includes('"msg":"agent running"')) resolve({ running: true, code: null });
    });
    void exited.then((code) => resolve({ running: false, code }));
  });
  return { child, stdout, stderr, started, exited };
}

async function stop(run: AgentRun): Promise<void> {
  if (run.child.exitCode !== null || run.child.signalCode !== null) return;
  run.child.kill('SIGINT');
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 15_000);
  await run.exited;
  clearTimeout(timer);
}

const logs = (run: AgentRun) => run.stderr.flatMap((l) => {
  try {
    return [JSON.parse(l) as { msg?: string; program?: string; error?: string }];
  } catch {
    return [];
  }
});

async function within<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe(`agent as uid ${UID} with the chart's capabilities (${CAPS.join(', ')})`, () => {
  let lab: Lab;
  const runs: AgentRun[] = [];
  before(async () => {
    lab = await createLab({ prefix: 'hk8s', hosts: [{ name: 'a' }, { name: 'b' }] });
  });
  after(async () => {
    await Promise.all(runs.map(stop));
    await lab?.destroy();
    rmdirSync(view);
    rmSync(binDir, { recursive: true, force: true });
  });

  it('attaches every program and records a connection through the lab with its exact bytes', async () => {
    const a = lab.host('a');
    const b = lab.host('b');
    const server = b.spawn('node', ['-e', `
      const s = require('net').createServer((c) => { c.resume(); c.on('end', () => c.end()); });
      s.listen(0, '${b.ip4}', () => console.log(s.address().port));`]);
    const port = Number(await new Promise<string>((r) => createInterface({ input: server.stdout! }).once('line', r)));
    const run = startAgent(CAPS, a.ns, 'fileCaps');
    runs.push(run);
    const s = await within('agent start', run.started, START_TIMEOUT_MS);
    assert.ok(s.running, `agent exited (${s.code}): ${run.stderr.join('\n')}`);
    // What the kernel says about the running agent: the chart's uid, exactly its capabilities.
    const status = readFileSync(`/proc/${run.child.pid}/status`, 'utf8');
    const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)![1]!.trim();
    assert.deepEqual(field('Uid').split(/\s+/), [String(UID), String(UID), String(UID), String(UID)]);
    assert.equal(field('NoNewPrivs'), agentSc.allowPrivilegeEscalation === false ? '1' : '0');
    const decoded = execFileSync('capsh', [`--decode=${field('CapEff')}`], { encoding: 'utf8' });
    const effective = decoded.trim().split('=')[1]!.split(',').map((c) => c.replace(/^cap_/, '').toUpperCase());
    assert.deepEqual(effective.sort(), [...CAPS].sort());
    const attached = logs(run).filter((l) => l.msg === 'attached');
    const missing = logs(run).filter((l) => l.msg?.startsWith('not attached'));
    assert.deepEqual(missing, [], 'every program attaches');
    assert.ok(attached.length > 0);

    // A new connection from a (the namespace the agent watches) that sends a known amount.
    const SENT = 123_457;
    const client = await a.exec('node', ['-e', `
      const c = require('net').connect(${port}, '${b.ip4}', () => { console.log(c.localPort); c.end(Buffer.alloc(${SENT})); });
      c.resume(); c.on('close', () => process.exit(0));`]);
    const clientPort = Number(client.stdout.trim());

    // Each socket's records until the one that says it closed; bytes add up across slots.
    type Rec = { type: string; role: string; local: { port: number }; remote: { ip: string; port: number }; bytes_sent: number; opened: boolean; closed: boolean };
    const of = (p: number) => run.stdout.map((l) => JSON.parse(l) as Rec).filter((r) => r.type === 'tcp' && r.role === 'client' && r.local.port === p);
    const deadline = Date.now() + 30_000;
    while (!of(clientPort).some((r) => r.closed) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const recs = of(clientPort);
    assert.ok(recs.some((r) => r.closed), `no closing record for client port ${clientPort}; ${run.stdout.length} lines`);
    assert.equal(recs[0]!.remote.ip, b.ip4);
    assert.equal(recs[0]!.remote.port, port);
    assert.equal(recs.reduce((n, r) => n + r.bytes_sent, 0), SENT);
    await stop(run);
    assert.ok(logs(run).some((l) => l.msg === 'agent stopped'), 'stops cleanly on SIGINT');
  });

  it('fails clearly without any one of them', async () => {
    // One run per missing capability, side by side: each either refuses to start or reports
    // the programs it could not attach, with the kernel's EPERM.
    const lacking = CAPS.map((cap) => ({ cap, run: startAgent(CAPS.filter((c) => c !== cap), lab.host('a').ns, 'ambient') }));
    runs.push(...lacking.map((l) => l.run));
    for (const { cap, run } of lacking) {
      const s = await within(`agent start without ${cap}`, run.started, START_TIMEOUT_MS);
      const text = run.stderr.join('\n');
      if (s.running) {
        const missing = logs(run).filter((l) => l.msg?.startsWith('not attached'));
        assert.ok(missing.length > 0, `without CAP_${cap} every program still attached: the capability is not needed`);
        for (const m of missing) assert.match(m.error ?? '', /Operation not permitted/, `${m.program}`);
      } else {
        assert.notEqual(s.code, 0, `without CAP_${cap}`);
        assert.match(text, /meshlens: .*Operation not permitted/, `without CAP_${cap} the error names EPERM`);
      }
      await stop(run);
    }
    const bpf = lacking.find((l) => l.cap === 'BPF');
    assert.ok(bpf, 'the chart grants CAP_BPF');
    assert.ok(!(await bpf.run.started).running, 'without CAP_BPF the agent does not start at all');
  });
});
