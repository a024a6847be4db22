/**
 * The Kubernetes source: one reflector per resource, owner chains resolved from the
 * ReplicaSet and Job caches, IP intervals tracked per node and pod. Owners are listed
 * before pods so the first records already name the Deployment or CronJob instead of
 * being published once with the intermediate owner and again with the real one.
 */
import type {
  V1EndpointSlice,
  KubeConfig,
  KubernetesObject,
  V1Node,
  V1Pod,
  V1Service,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { keyOf, type Emit, type MetadataSource } from '../change.js';
import { IpTracker } from '../ip-tracker.js';
import type { CollectorMetrics } from '../metrics.js';
import { controllerOf, workloadOf } from './owners.js';
import { nodeIps, podIps, projectEndpointSlice, projectNode, projectPod, projectService, timeMs, type Stamp } from './project.js';
import { Reflector, type ReflectorOptions } from './reflector.js';
import { RESOURCE_NAMES, resources, type ResourceName } from './resources.js';

export interface KubernetesSourceOptions extends ReflectorOptions {
  kubeConfig: KubeConfig;
  clock: () => number;
}

export class KubernetesSource implements MetadataSource {
  private readonly reflectors: Record<ResourceName, Reflector>;
  private readonly ips = new IpTracker();
  /** Intermediate owner UID -> UIDs of the pods it controls, to re-label them when it changes. */
  private readonly podsByOwner = new Map<string, Set<string>>();
  private emit: Emit = () => {};

  constructor(
    private readonly opts: KubernetesSourceOptions,
    metrics: CollectorMetrics,
    log: Logger,
  ) {
    const defs = resources(opts.kubeConfig);
    const handler = {
      upsert: (r: ResourceName, o: KubernetesObject, listed: boolean) => this.change(r, o, false, listed),
      remove: (r: ResourceName, o: KubernetesObject) => this.change(r, o, true, false),
    };
    const make = (name: ResourceName): Reflector =>
      new Reflector(opts.kubeConfig, defs[name], handler, opts, metrics, log.child({ resource: name }));
    this.reflectors = Object.fromEntries(RESOURCE_NAMES.map((n) => [n, make(n)])) as Record<ResourceName, Reflector>;
  }

  get synced(): boolean {
    return Object.values(this.reflectors).every((r) => r.synced);
  }

  async start(emit: Emit): Promise<void> {
    this.emit = emit;
    const r = this.reflectors;
    await Promise.all([r.nodes.start(), r.replicasets.start(), r.jobs.start()]);
    await Promise.all([r.pods.start(), r.services.start(), r.endpointslices.start()]);
  }

  async stop(): Promise<void> {
    await Promise.all(Object.values(this.reflectors).map((r) => r.stop()));
  }

  /**
   * Resolves once every watch has reached resourceVersion `rv` (the server sends a
   * BOOKMARK with it to every watcher): everything before it has been handed on.
   */
  reached(rv: string): Promise<void> {
    const all = Object.values(this.reflectors);
    return new Promise((resolve) => {
      const check = (): void => {
        if (!all.every((r) => r.resourceVersion === rv)) return;
        for (const r of all) r.off('progress', check);
        resolve();
      };
      for (const r of all) r.on('progress', check);
      check();
    });
  }

  private stamp(deleted: boolean): Stamp {
    const now = this.opts.clock();
    return { observedMs: now, deletedMs: deleted ? now : null };
  }

  /** One path for adds and deletes: a deletion is the object's last version, stamped deleted. */
  private change(resource: ResourceName, obj: KubernetesObject, deleted: boolean, listed: boolean): void {
    const type = deleted ? 'delete' : 'upsert';
    switch (resource) {
      case 'nodes':
        return this.node(obj as V1Node, deleted, listed);
      case 'pods':
        return this.pod(obj as V1Pod, deleted, listed);
      case 'replicasets':
      case 'jobs':
        return this.relabelPodsOf(obj);
      case 'services':
        return this.emit({ type, record: projectService(obj as V1Service, this.stamp(deleted)) });
      case 'endpointslices':
        return this.emit({ type, record: projectEndpointSlice(obj as V1EndpointSlice, this.stamp(deleted)) });
    }
  }

  private node(node: V1Node, deleted: boolean, listed: boolean): void {
    const stamp = this.stamp(deleted);
    const key = keyOf({ kind: 'node', uid: node.metadata?.uid ?? '' });
    const since = (listed && timeMs(node.metadata?.creationTimestamp)) || stamp.observedMs;
    const ips = deleted ? this.ips.close(key, stamp.observedMs) : this.ips.observe(key, nodeIps(node), stamp.observedMs, since);
    this.emit({ type: deleted ? 'delete' : 'upsert', record: projectNode(node, ips, stamp) });
  }

  private pod(pod: V1Pod, deleted: boolean, listed: boolean): void {
    const uid = pod.metadata?.uid ?? '';
    const owner = controllerOf(pod)?.uid;
    if (owner !== undefined) {
      const set = this.podsByOwner.get(owner) ?? new Set<string>();
      if (deleted) set.delete(uid);
      else set.add(uid);
      if (set.size > 0) this.podsByOwner.set(owner, set);
      else this.podsByOwner.delete(owner);
    }
    const stamp = this.stamp(deleted);
    const key = keyOf({ kind: 'pod', uid });
    // A pod gets its IP right after it starts: for a listed pod that is the best estimate.
    const since = (listed && (timeMs(pod.status?.startTime) ?? timeMs(pod.metadata?.creationTimestamp))) || stamp.observedMs;
    const ips = deleted ? this.ips.close(key, stamp.observedMs) : this.ips.observe(key, podIps(pod), stamp.observedMs, since);
    const workload = workloadOf(pod, (ownerUid) => this.reflectors.replicasets.cache.get(ownerUid) ?? this.reflectors.jobs.cache.get(ownerUid));
    this.emit({ type: deleted ? 'delete' : 'upsert', record: projectPod(pod, workload, ips, stamp) });
  }

  private relabelPodsOf(owner: KubernetesObject): void {
    const uids = this.podsByOwner.get(owner.metadata?.uid ?? '');
    for (const uid of uids ?? []) {
      const pod = this.reflectors.pods.cache.get(uid);
      if (pod) this.pod(pod as V1Pod, false, false);
    }
  }
}
