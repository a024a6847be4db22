import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pollUntil, run } from './exec.js';

// Everything a lab makes carries its prefix, so a crashed run's leftovers can be found by name:
// namespaces ml-<prefix>-<host>, /etc/netns/ml-<prefix>-<host>/, and /run/meshlens-netlab/<prefix>/.
export const STATE_DIR = '/run/meshlens-netlab';
export const NETNS_ETC = '/etc/netns';
export const PREFIX_PATTERN = /^[a-z0-9]{1,16}$/;

export function nsName(prefix: string, host: string): string {
  return `ml-${prefix}-${host}`;
}

export function workDir(prefix: string): string {
  return join(STATE_DIR, prefix);
}

// "pid starttime": the start time tells a live owner from an unrelated process that reused its PID.
function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return undefined;
  }
}

/** Claims `prefix` for this process; throws if a live process holds it. */
export function claimPrefix(prefix: string): void {
  const owner = ownerOf(prefix);
  if (owner) throw new Error(`netlab: prefix ${prefix} is in use by live process ${owner.split(' ')[0]}`);
  mkdirSync(workDir(prefix), { recursive: true, mode: 0o700 });
  writeFileSync(join(workDir(prefix), 'owner'), processIdentity(process.pid)!);
}

function ownerOf(prefix: string): string | undefined {
  try {
    const recorded = readFileSync(join(workDir(prefix), 'owner'), 'utf8').trim();
    return processIdentity(Number(recorded.split(' ')[0])) === recorded ? recorded : undefined;
  } catch {
    return undefined;
  }
}

export async function labNamespaces(prefix: string): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(`ml-${prefix}-`));
}

/** False for zombies too: an orphan's zombie lingers until init reaps it, but it holds nothing. */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Removes what a lab with this prefix left: SIGKILLs (by PID) every process still inside one of
 * its namespaces, deletes the namespaces, its /etc/netns directories and its work directory.
 */
export async function sweepLab(prefix: string): Promise<void> {
  const namespaces = await labNamespaces(prefix);
  const pids: number[] = [];
  for (const ns of namespaces) {
    const { stdout } = await run('ip', ['netns', 'pids', ns], { allowFailure: true });
    pids.push(...stdout.split('\n').filter(Boolean).map(Number));
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await pollUntil(async () => pids.every((p) => !processAlive(p)), 5_000, `processes ${pids.join(',')} to exit`);
  for (const ns of namespaces) await run('ip', ['netns', 'del', ns], { allowFailure: true });
  if (existsSync(NETNS_ETC)) {
    for (const entry of readdirSync(NETNS_ETC)) {
      if (entry.startsWith(`ml-${prefix}-`)) rmSync(join(NETNS_ETC, entry), { recursive: true, force: true });
    }
  }
  rmSync(workDir(prefix), { recursive: true, force: true });
}

/**
 * Sweeps labs whose owning process is gone: the given prefix, or every prefix found when none is
 * given. Labs of live processes are left alone. Returns the prefixes swept.
 */
export async function cleanupStaleLabs(prefix?: string): Promise<string[]> {
  const found = new Set<string>();
  if (prefix) found.add(prefix);
  else {
    const { stdout } = await run('ip', ['netns', 'list']);
    for (const m of stdout.matchAll(/^ml-([a-z0-9]+)-/gm)) found.add(m[1]!);
    if (existsSync(STATE_DIR)) for (const p of readdirSync(STATE_DIR)) found.add(p);
  }
  const swept: string[] = [];
  for (const p of found) {
    if (!PREFIX_PATTERN.test(p) || ownerOf(p)) continue;
    await sweepLab(p);
    swept.push(p);
  }
  return swept;
}
