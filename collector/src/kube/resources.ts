/**
 * The Kubernetes resources the collector mirrors: where each is watched and how it is
 * listed. ReplicaSets and Jobs are only read to climb owner chains (Pod -> ReplicaSet ->
 * Deployment, Pod -> Job -> CronJob); StatefulSets and DaemonSets own pods directly, so
 * the pod's owner reference already names them.
 */
import {
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';

export interface ListPage {
  limit: number;
  _continue?: string;
}

export interface Resource {
  name: ResourceName;
  /** Cluster-wide collection path, as the watch is opened on it. */
  path: string;
  list(page: ListPage): Promise<KubernetesListObject<KubernetesObject>>;
}

export const RESOURCE_NAMES = ['nodes', 'replicasets', 'jobs', 'pods', 'services', 'endpointslices'] as const;
export type ResourceName = (typeof RESOURCE_NAMES)[number];

export function resources(kc: KubeConfig): Record<ResourceName, Resource> {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const batch = kc.makeApiClient(BatchV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  return {
    nodes: { name: 'nodes', path: '/api/v1/nodes', list: (p) => core.listNode(p) },
    replicasets: { name: 'replicasets', path: '/apis/apps/v1/replicasets', list: (p) => apps.listReplicaSetForAllNamespaces(p) },
    jobs: { name: 'jobs', path: '/apis/batch/v1/jobs', list: (p) => batch.listJobForAllNamespaces(p) },
    pods: { name: 'pods', path: '/api/v1/pods', list: (p) => core.listPodForAllNamespaces(p) },
    services: { name: 'services', path: '/api/v1/services', list: (p) => core.listServiceForAllNamespaces(p) },
    endpointslices: {
      name: 'endpointslices',
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      list: (p) => discovery.listEndpointSliceForAllNamespaces(p),
    },
  };
}
