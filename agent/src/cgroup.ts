import { readdirSync, statSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
/**
 * cgroup path -> container id and pod UID, for the path forms kubelet creates:
 *   systemd driver:  /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid, '-' as '_'>.slice/<rt>-<id>.scope
 *                    where <rt> is cri-containerd, crio or docker
 *   cgroupfs driver: /kubepods/burstable/pod<uid>/<id>   (also /kubepods/pod<uid>/<id> for Guaranteed pods)
 * plus the same under a kubelet --cgroup-root prefix. Anything else is a host process.
 */
export interface ContainerRef {
  podUid: string | null;
  containerId: string | null;
  runtime: 'containerd' | 'crio' | 'docker' | null;
}

const UID = '[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}';
const podSystemd = new RegExp(`kubepods(?:-[a-z]+)?-pod(${UID})\\.slice`);
const podCgroupfs = new RegExp(`/kubepods(?:/[a-z]+)?/pod(${UID})(?:/|$)`);
const scope = /\/(cri-containerd|crio|docker)-([0-9a-f]{64})\.scope$/;
const bareId = /\/([0-9a-f]{64})$/;
const runtimes = { 'cri-containerd': 'containerd', crio: 'crio', docker: 'docker' } as const;

export function parseCgroupPath(path: string): ContainerRef {
  const pod = podSystemd.exec(path) ?? podCgroupfs.exec(path);
  const podUid = pod ? pod[1]!.replaceAll('_', '-') : null;
  const s = scope.exec(path);
  if (s) return { podUid, containerId: s[2]!, runtime: runtimes[s[1] as keyof typeof runtimes] };
  // cgroupfs paths name the container by bare id; the runtime is not in the path.
  const b = podUid ? bareId.exec(path) : null;
  return { podUid, containerId: b ? b[1]! : null, runtime: null };
}

/**
 * cgroup id -> path. On cgroup v2 a cgroup's id is the inode number of its directory, so
 * the index is a walk of the mount; an unknown id triggers at most one rescan per
 * `rescanMs`, because pods come and go but a miss must not cost a walk every time.
 */
export class CgroupIndex {
  private byId = new Map<number, string>();
  private lastScan = 0;

  constructor(
    private readonly mount: string,
    private readonly rescanMs = 2000,
  ) {
    this.scan();
  }

  private scan(): void {
    const next = new Map<number, string>();
    const walk = (dir: string, rel: string): void => {
      let entries: Dirent[];
      try {
        next.set(statSync(dir).ino, rel || '/');
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return; // removed while we walked
      }
      for (const e of entries) if (e.isDirectory()) walk(join(dir, e.name), `${rel}/${e.name}`);
    };
    walk(this.mount, '');
    this.byId = next;
    this.lastScan = Date.now();
  }

  pathOf(id: number): string | null {
    const hit = this.byId.get(id);
    if (hit !== undefined) return hit;
    if (Date.now() - this.lastScan < this.rescanMs) return null;
    this.scan();
    return this.byId.get(id) ?? null;
  }

  containerOf(id: number): ContainerRef {
    const path = this.pathOf(id);
    return path === null ? { podUid: null, containerId: null, runtime: null } : parseCgroupPath(path);
  }
}
