/**
 * A Kubernetes API server for tests that speaks the real list/watch protocol over HTTP on
 * loopback: paginated JSON lists carrying metadata.resourceVersion, chunked watch streams
 * of {type, object} lines, BOOKMARK events for watchers that ask for them, a 410 Gone
 * ERROR event for a resourceVersion that was compacted away, and resume from any retained
 * resourceVersion. One global resourceVersion counter, as etcd's revision. The store
 * outlives stop()/start(), like etcd outlives an apiserver restart.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { LoopbackPort } from '@meshlens/e2e/tcp-proxy';

export const PATHS = {
  nodes: { path: '/api/v1/nodes', apiVersion: 'v1', kind: 'Node' },
  replicasets: { path: '/apis/apps/v1/replicasets', apiVersion: 'apps/v1', kind: 'ReplicaSet' },
  jobs: { path: '/apis/batch/v1/jobs', apiVersion: 'batch/v1', kind: 'Job' },
  pods: { path: '/api/v1/pods', apiVersion: 'v1', kind: 'Pod' },
  services: { path: '/api/v1/services', apiVersion: 'v1', kind: 'Service' },
  endpointslices: { path: '/apis/discovery.k8s.io/v1/endpointslices', apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' },
} as const;
export type ResourceKey = keyof typeof PATHS;

/** Objects as JSON, the way they travel; tests build them with support/objects.ts. */
export interface Obj {
  apiVersion?: string;
  kind?: string;
  metadata: { uid: string; name: string; namespace?: string; resourceVersion?: string };
}

interface LoggedEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}

export interface RequestRecord {
  resource: ResourceKey;
  watch: boolean;
  resourceVersion: string | null;
  allowWatchBookmarks: boolean;
  continued: boolean;
}

interface Watcher {
  resource: ResourceKey;
  res: ServerResponse;
  bookmarks: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** Emits 'request' (RequestRecord) for every list and watch request, 'watching' once a watch is registered. */
export class KubeApiServer extends EventEmitter {
  readonly requests: RequestRecord[] = [];
  private rv = 1000;
  private compactedRv = 0;
  private readonly store = new Map<ResourceKey, Map<string, Obj>>();
  private readonly history = new Map<ResourceKey, LoggedEvent[]>();
  private readonly watchers = new Set<Watcher>();
  private readonly listener = new LoopbackPort(() => createServer((req, res) => this.handle(req, res)));

  constructor() {
    super();
    for (const k of Object.keys(PATHS) as ResourceKey[]) {
      this.store.set(k, new Map());
      this.history.set(k, []);
    }
  }

  get url(): string {
    return `http://127.0.0.1:${this.listener.port}`;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Listens on loopback; after a stop() it comes back on the same port. */
  start(): Promise<void> {
    return this.listener.start();
  }

  /** Goes away abruptly: every open watch and connection is cut, new ones are refused. */
  stop(): Promise<void> {
    this.watchers.clear();
    return this.listener.stop();
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'test', token: 'test-token' }],
      contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
      currentContext: 'test',
    });
    return kc;
  }

  get(resource: ResourceKey, uid: string): Obj | undefined {
    return this.store.get(resource)!.get(uid);
  }

  create(resource: ResourceKey, obj: Obj): void {
    this.record(resource, 'ADDED', obj);
  }

  /** `change` gets a copy of the stored object, typed like the one the test created. */
  update<T extends Obj>(resource: ResourceKey, uid: string, change: (o: T) => Obj): void {
    const old = this.get(resource, uid);
    if (!old) throw new Error(`no ${resource} ${uid}`);
    this.record(resource, 'MODIFIED', change(structuredClone(old) as T));
  }

  delete(resource: ResourceKey, uid: string): void {
    const old = this.get(resource, uid);
    if (!old) throw new Error(`no ${resource} ${uid}`);
    this.record(resource, 'DELETED', structuredClone(old));
  }

  /** Sends a BOOKMARK at the current resourceVersion to every watcher that asked for them. */
  bookmark(): string {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      const { apiVersion, kind } = PATHS[w.resource];
      w.res.write(JSON.stringify({ type: 'BOOKMARK', object: { apiVersion, kind, metadata: { resourceVersion: this.resourceVersion } } }) + '\n');
    }
    return this.resourceVersion;
  }

  /**
   * Open watches go silent without being closed, the way a connection through a dead
   * node or a partition does: no more events, no timeout, no FIN. New watches work.
   */
  freezeWatches(): void {
    for (const w of this.watchers) clearTimeout(w.timer);
    this.watchers.clear();
  }

  /** Forgets all history up to now: watches from an older resourceVersion get 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    for (const h of this.history.values()) h.length = 0;
  }

  private record(resource: ResourceKey, type: LoggedEvent['type'], obj: Obj): void {
    this.rv++;
    const { apiVersion, kind } = PATHS[resource];
    const object: Obj = { ...obj, apiVersion, kind, metadata: { ...obj.metadata, resourceVersion: String(this.rv) } };
    if (type === 'DELETED') this.store.get(resource)!.delete(object.metadata.uid);
    else this.store.get(resource)!.set(object.metadata.uid, object);
    const ev = { rv: this.rv, type, object };
    this.history.get(resource)!.push(ev);
    for (const w of this.watchers) if (w.resource === resource) w.res.write(JSON.stringify({ type, object }) + '\n');
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const resource = (Object.keys(PATHS) as ResourceKey[]).find((k) => PATHS[k].path === url.pathname);
    if (req.method !== 'GET' || resource === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 404 }));
      return;
    }
    const q = url.searchParams;
    const rec: RequestRecord = {
      resource,
      watch: q.get('watch') === 'true',
      resourceVersion: q.get('resourceVersion'),
      allowWatchBookmarks: q.get('allowWatchBookmarks') === 'true',
      continued: q.has('continue'),
    };
    this.requests.push(rec);
    this.emit('request', rec);
    if (rec.watch) this.watch(resource, rec, Number(q.get('timeoutSeconds') ?? 0), res);
    else this.list(resource, Number(q.get('limit') ?? 0), q.get('continue'), res);
  }

  private list(resource: ResourceKey, limit: number, cont: string | null, res: ServerResponse): void {
    const all = [...this.store.get(resource)!.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const offset = cont === null ? 0 : Number(Buffer.from(cont, 'base64url').toString());
    const end = limit > 0 ? offset + limit : all.length;
    const items = all.slice(offset, end).map(({ apiVersion: _a, kind: _k, ...item }) => item);
    const metadata = { resourceVersion: this.resourceVersion, ...(end < all.length ? { continue: Buffer.from(String(end)).toString('base64url') } : {}) };
    const { apiVersion, kind } = PATHS[resource];
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ apiVersion, kind: `${kind}List`, metadata, items }));
  }

  private watch(resource: ResourceKey, rec: RequestRecord, timeoutSeconds: number, res: ServerResponse): void {
    // Chunked, one JSON object per line, as the apiserver streams watch events.
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    // Headers go out at once, as the apiserver's do, even if no event follows for a while.
    res.flushHeaders();
    const from = Number(rec.resourceVersion ?? 0);
    if (from < this.compactedRv) {
      const status = { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: `too old resource version: ${from} (${this.compactedRv})` };
      res.end(JSON.stringify({ type: 'ERROR', object: status }) + '\n');
      return;
    }
    for (const ev of this.history.get(resource)!) {
      if (ev.rv > from) res.write(JSON.stringify({ type: ev.type, object: ev.object }) + '\n');
    }
    const timer = timeoutSeconds > 0 ? setTimeout(() => res.end(), timeoutSeconds * 1000) : undefined;
    const watcher: Watcher = { resource, res, bookmarks: rec.allowWatchBookmarks, timer };
    this.watchers.add(watcher);
    this.emit('watching', resource);
    res.on('close', () => {
      clearTimeout(timer);
      this.watchers.delete(watcher);
    });
  }
}
