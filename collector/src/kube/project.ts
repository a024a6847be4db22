/**
 * Kubernetes objects -> metadata records. Pure: IP intervals and owner lookups are passed
 * in by the source, which holds the state they depend on. Objects arrive either typed
 * (from list calls, timestamps as Date) or raw (from watch events, timestamps as strings).
 */
import { isIP } from 'node:net';
import type {
  V1EndpointSlice,
  KubernetesObject,
  V1Node,
  V1Pod,
  V1Service,
} from '@kubernetes/client-node';
import type { IpBinding, Metadata } from '@meshlens/schemas';
import type { Workload } from './owners.js';
import { topologyOf } from './topology.js';

type Of<K extends Metadata['kind']> = Extract<Metadata, { kind: K }>;

export interface Stamp {
  observedMs: number;
  deletedMs: number | null;
}

export function timeMs(t: Date | string | undefined): number | undefined {
  if (t === undefined) return undefined;
  const ms = new Date(t).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

function base(obj: KubernetesObject, stamp: Stamp) {
  return {
    uid: obj.metadata?.uid ?? '',
    version: obj.metadata?.resourceVersion ?? '0',
    observed_ms: stamp.observedMs,
    deleted_ms: stamp.deletedMs,
  };
}

export function nodeIps(node: V1Node): string[] {
  const addrs = node.status?.addresses ?? [];
  return addrs.filter((a) => (a.type === 'InternalIP' || a.type === 'ExternalIP') && isIP(a.address) !== 0).map((a) => a.address);
}

const TERMINAL_PHASES = new Set(['Succeeded', 'Failed']);

/** A finished pod still shows its IP in status, but the node has already handed it on. */
export function podIps(pod: V1Pod): string[] {
  if (TERMINAL_PHASES.has(pod.status?.phase ?? '')) return [];
  const many = pod.status?.podIPs?.map((p) => p.ip) ?? [];
  const ips = many.length > 0 ? many : pod.status?.podIP ? [pod.status.podIP] : [];
  return ips.filter((ip) => isIP(ip) !== 0);
}

export function projectNode(node: V1Node, ips: IpBinding[], stamp: Stamp): Of<'node'> {
  const labels = node.metadata?.labels ?? {};
  return {
    kind: 'node',
    ...base(node, stamp),
    name: node.metadata?.name ?? '',
    ...topologyOf(labels),
    ips,
    labels,
  };
}

export function projectPod(pod: V1Pod, workload: Workload | null, ips: IpBinding[], stamp: Stamp): Of<'pod'> {
  return {
    kind: 'pod',
    ...base(pod, stamp),
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    node: pod.spec?.nodeName ?? null,
    host_network: pod.spec?.hostNetwork ?? false,
    workload_kind: workload?.kind ?? null,
    workload_name: workload?.name ?? null,
    ips,
    labels: pod.metadata?.labels ?? {},
  };
}

export function projectService(svc: V1Service, stamp: Stamp): Of<'service'> {
  const spec = svc.spec ?? {};
  const clusterIps = spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : []);
  return {
    kind: 'service',
    ...base(svc, stamp),
    namespace: svc.metadata?.namespace ?? '',
    name: svc.metadata?.name ?? '',
    // Headless services carry the literal "None" here.
    cluster_ips: clusterIps.filter((ip) => isIP(ip) !== 0),
    ports: (spec.ports ?? []).map((p) => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP' })),
    selector: spec.selector ?? {},
  };
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export function projectEndpointSlice(slice: V1EndpointSlice, stamp: Stamp): Of<'endpoint'> {
  const addresses = (slice.endpoints ?? []).flatMap((e) =>
    e.addresses
      .filter((ip) => isIP(ip) !== 0)
      .map((ip) => ({
        ip,
        pod_uid: e.targetRef?.kind === 'Pod' ? (e.targetRef.uid ?? null) : null,
        node: e.nodeName ?? null,
        // Absent means ready, per the EndpointSlice API.
        ready: e.conditions?.ready ?? true,
      })),
  );
  return {
    kind: 'endpoint',
    ...base(slice, stamp),
    namespace: slice.metadata?.namespace ?? '',
    service: slice.metadata?.labels?.[SERVICE_NAME_LABEL] ?? slice.metadata?.name ?? '',
    addresses,
  };
}
