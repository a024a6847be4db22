import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCgroupPath } from '../src/cgroup.js';

const uid = '0f3c1a2b-4d5e-4f60-8a9b-0c1d2e3f4a5b';
const uidU = uid.replaceAll('-', '_');
const id = 'a'.repeat(40) + '0123456789abcdef01234567';

describe('cgroup path -> pod and container', () => {
  const cases: [string, string, ReturnType<typeof parseCgroupPath>][] = [
    ['systemd + containerd, burstable',
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uidU}.slice/cri-containerd-${id}.scope`,
      { podUid: uid, containerId: id, runtime: 'containerd' }],
    ['systemd + CRI-O, besteffort',
      `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${uidU}.slice/crio-${id}.scope`,
      { podUid: uid, containerId: id, runtime: 'crio' }],
    ['systemd + docker, guaranteed',
      `/kubepods.slice/kubepods-pod${uidU}.slice/docker-${id}.scope`,
      { podUid: uid, containerId: id, runtime: 'docker' }],
    ['cgroupfs, burstable', `/kubepods/burstable/pod${uid}/${id}`, { podUid: uid, containerId: id, runtime: null }],
    ['cgroupfs, guaranteed', `/kubepods/pod${uid}/${id}`, { podUid: uid, containerId: id, runtime: null }],
    ['cgroupfs under a --cgroup-root', `/custom-root/kubepods/besteffort/pod${uid}/${id}`, { podUid: uid, containerId: id, runtime: null }],
    ['pod sandbox level, no container yet', `/kubepods/burstable/pod${uid}`, { podUid: uid, containerId: null, runtime: null }],
    ['a host service', '/system.slice/containerd.service', { podUid: null, containerId: null, runtime: null }],
    ['docker outside Kubernetes', `/system.slice/docker-${id}.scope`, { podUid: null, containerId: id, runtime: 'docker' }],
    ['the root cgroup', '/', { podUid: null, containerId: null, runtime: null }],
  ];
  for (const [name, path, expected] of cases) {
    it(name, () => assert.deepEqual(parseCgroupPath(path), expected));
  }
});
