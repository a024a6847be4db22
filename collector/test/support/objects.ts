/**
 * Builders for objects shaped like what a real apiserver returns (fields, nesting and
 * string timestamps as in `kubectl get -o json`), trimmed to what a cluster would show.
 */
import { randomUUID } from 'node:crypto';

type Labels = Record<string, string>;
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function meta(name: string, namespace: string | undefined, labels: Labels, extra: Record<string, unknown> = {}) {
  return { name, ...(namespace ? { namespace } : {}), uid: randomUUID(), creationTimestamp: iso(Date.now() - 3_600_000), labels, ...extra };
}

export function node(name: string, ip: string, labels: Labels = {}) {
  return {
    metadata: meta(name, undefined, { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', ...labels }),
    spec: { podCIDR: '10.244.0.0/24' },
    status: {
      addresses: [
        { type: 'InternalIP', address: ip },
        { type: 'Hostname', address: name },
      ],
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
      nodeInfo: { kubeletVersion: 'v1.31.2', osImage: 'Debian GNU/Linux 12 (bookworm)' },
    },
  };
}

export interface OwnerRef {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

function ownerRefs(owner: OwnerRef | undefined) {
  return owner ? { ownerReferences: [{ ...owner, controller: true, blockOwnerDeletion: true }] } : {};
}

export function replicaSet(namespace: string, name: string, deployment: string) {
  const owner = { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment, uid: randomUUID() };
  return { metadata: meta(name, namespace, { app: deployment }, ownerRefs(owner)), spec: { replicas: 2 }, status: { replicas: 2 } };
}

export function job(namespace: string, name: string, cronJob: string) {
  const owner = { apiVersion: 'batch/v1', kind: 'CronJob', name: cronJob, uid: randomUUID() };
  return { metadata: meta(name, namespace, { 'job-name': name }, ownerRefs(owner)), spec: { completions: 1 }, status: { active: 1 } };
}

export function refTo(obj: { metadata: { name: string; uid: string } }, apiVersion: string, kind: string): OwnerRef {
  return { apiVersion, kind, name: obj.metadata.name, uid: obj.metadata.uid };
}

export interface PodSpec {
  node: string;
  ip: string;
  labels?: Labels;
  owner?: OwnerRef;
  hostNetwork?: boolean;
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  startMs?: number;
}

export function pod(namespace: string, name: string, p: PodSpec) {
  const start = iso(p.startMs ?? Date.now() - 3_000_000);
  return {
    metadata: meta(name, namespace, p.labels ?? {}, ownerRefs(p.owner)),
    spec: {
      nodeName: p.node,
      ...(p.hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: 'main', image: 'registry.example/app:1.2.3' }],
      restartPolicy: 'Always',
    },
    status: {
      phase: p.phase ?? 'Running',
      hostIP: '192.168.0.1',
      podIP: p.ip,
      podIPs: [{ ip: p.ip }],
      startTime: start,
      conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: start }],
    },
  };
}

export function service(namespace: string, name: string, clusterIP: string, selector: Labels) {
  return {
    metadata: meta(name, namespace, {}),
    spec: {
      type: 'ClusterIP',
      clusterIP,
      clusterIPs: [clusterIP],
      ipFamilies: ['IPv4'],
      ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }],
      selector,
    },
    status: { loadBalancer: {} },
  };
}

export function endpointSlice(namespace: string, svc: string, members: { ip: string; podUid: string; podName: string; node: string }[]) {
  return {
    metadata: meta(`${svc}-x7k2p`, namespace, { 'kubernetes.io/service-name': svc, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' }),
    addressType: 'IPv4',
    endpoints: members.map((m) => ({
      addresses: [m.ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: m.node,
      targetRef: { kind: 'Pod', namespace, name: m.podName, uid: m.podUid },
    })),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

export type PodObject = ReturnType<typeof pod>;

/** The object with these labels added or changed. */
export function withLabels<T extends { metadata: { labels?: Labels } }>(o: T, labels: Labels): T {
  return { ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, ...labels } } };
}
