/**
 * Owner chains: the workload a pod belongs to is what a person deployed, not the
 * ReplicaSet or Job in between. Pod -> ReplicaSet -> Deployment and Pod -> Job -> CronJob
 * climb one level through the intermediate object; StatefulSet, DaemonSet and anything
 * else own their pods directly.
 */
import type { KubernetesObject, V1OwnerReference } from '@kubernetes/client-node';

export interface Workload {
  kind: string;
  name: string;
}

const INTERMEDIATE: Record<string, string> = { ReplicaSet: 'Deployment', Job: 'CronJob' };

export function controllerOf(obj: KubernetesObject): V1OwnerReference | undefined {
  const refs = obj.metadata?.ownerReferences ?? [];
  return refs.find((r) => r.controller === true) ?? refs[0];
}

/**
 * @param lookup finds an intermediate owner by UID; while it is unknown (not listed yet,
 *   or already gone) the pod is attributed to the intermediate object itself.
 */
export function workloadOf(pod: KubernetesObject, lookup: (uid: string) => KubernetesObject | undefined): Workload | null {
  const ref = controllerOf(pod);
  if (ref === undefined) return null;
  const parentKind = INTERMEDIATE[ref.kind];
  if (parentKind !== undefined) {
    const owner = lookup(ref.uid);
    const parent = owner && controllerOf(owner);
    if (parent?.kind === parentKind) return { kind: parent.kind, name: parent.name };
  }
  return { kind: ref.kind, name: ref.name };
}
