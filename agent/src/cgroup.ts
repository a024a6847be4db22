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
