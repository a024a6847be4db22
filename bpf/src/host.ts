/** Facts about the host the probes need: where cgroup v2 is, which network namespaces exist. */
import { readFileSync, readdirSync, statSync } from 'node:fs';

/**
 * The cgroup v2 mount (unified hierarchy): /sys/fs/cgroup on most nodes, elsewhere on
 * hybrid systems (e.g. /sys/fs/cgroup/unified). Programs attached there see every socket.
 */
export function cgroup2Mount(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string {
  const mounts: string[] = [];
  for (const line of mountinfo.split('\n')) {
    // "<id> <parent> <dev> <root> <mountpoint> <opts> [optional...] - <fstype> <source> <superopts>"
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fstype = line.slice(sep + 3).split(' ')[0];
    const fields = line.slice(0, sep).split(' ');
    if (fstype === 'cgroup2' && fields[3] === '/' && fields[4]) mounts.push(fields[4].replace(/\\040/g, ' '));
  }
  if (mounts.length === 0) throw new Error('no cgroup v2 mount found in /proc/self/mountinfo');
  return mounts.find((m) => m === '/sys/fs/cgroup') ?? mounts[0]!;
}

export interface NetnsRef {
  inode: number;
  path: string;
}

/**
 * Every network namespace reachable through a process or a bind mount in /run/netns. A bind
 * mount is preferred as the path: it outlives the process that happened to be listed.
 */
export function listNetns(): NetnsRef[] {
  const byInode = new Map<number, string>();
  const consider = (path: string) => {
    try {
      const ino = statSync(path).ino;
      if (!byInode.has(ino)) byInode.set(ino, path);
    } catch {
      // The process exited or the mount went away while we looked: nothing to adopt there.
    }
  };
  consider('/proc/self/ns/net');
  try {
    for (const n of readdirSync('/run/netns')) consider(`/run/netns/${n}`);
  } catch {
    // No named namespaces on this host.
  }
  for (const d of readdirSync('/proc')) if (/^\d+$/.test(d)) consider(`/proc/${d}/ns/net`);
  return [...byInode].map(([inode, path]) => ({ inode, path }));
}

/** Kernel timestamps are CLOCK_MONOTONIC, which is also what process.hrtime reads. */
export function monoUsToEpochMs(monoUs: number): number {
  return monoToEpochConverter()(monoUs);
}

/** monoUsToEpochMs with both clocks read once, for converting many timestamps of one moment. */
export function monoToEpochConverter(): (monoUs: number) => number {
  const monoZeroMs = Date.now() - monoNowUs() / 1000;
  return (monoUs) => Math.round(monoZeroMs + monoUs / 1000);
}

export function monoNowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}
