/**
 * List+watch for one resource, the way client-go's reflector does it: list once, then
 * watch from the list's resourceVersion with bookmarks, and on every reconnect resume from
 * the newest resourceVersion seen (an object event or a BOOKMARK) so an API outage costs
 * only the events that happened during it. Only a 410 Gone (the version was compacted
 * away) forces a new list, and that list is diffed against the cache so objects deleted
 * meanwhile are still reported as deleted.
 *
 * client-node's ListWatch neither requests bookmarks nor retries on errors, hence this
 * loop over its Watch and the typed list calls.
 */
import { EventEmitter } from 'node:events';
import { Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Backoff, type BackoffOptions } from '../backoff.js';
import type { CollectorMetrics } from '../metrics.js';
import type { Resource } from './resources.js';

export interface ReflectorOptions {
  pageSize: number;
  /**
   * Asks the server to end each watch after this long; the loop then resumes it. A watch
   * still open at twice this is presumed dead.
   */
  watchTimeoutSeconds: number;
  backoff: BackoffOptions;
}

export interface ReflectorHandler {
  /** `listed`: found by a list, so it changed at some unknown time before now. */
  upsert(resource: Resource['name'], obj: KubernetesObject, listed: boolean): void;
  remove(resource: Resource['name'], obj: KubernetesObject): void;
}

class GoneError extends Error {
  override name = 'GoneError';
}

function isGone(err: unknown): boolean {
  if (err instanceof GoneError) return true;
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  return e?.code === 410 || e?.statusCode === 410;
}

interface WatchEvent {
  type: string;
  object: KubernetesObject & { code?: number; message?: string };
}

/** Emits 'progress' (resourceVersion) after every list and watch event, 'synced' after each list. */
export class Reflector extends EventEmitter {
  readonly cache = new Map<string, KubernetesObject>();
  resourceVersion = '';
  synced = false;
  private readonly watch: Watch;
  private readonly backoff: Backoff;
  private readonly abort = new AbortController();
  private watchController: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    kc: KubeConfig,
    private readonly resource: Resource,
    private readonly handler: ReflectorHandler,
    private readonly opts: ReflectorOptions,
    private readonly metrics: CollectorMetrics,
    private readonly log: Logger,
  ) {
    super();
    this.watch = new Watch(kc);
    this.backoff = new Backoff(opts.backoff);
  }

  /** Starts the loop; resolves after the first successful list. */
  start(): Promise<void> {
    const synced = new Promise<void>((resolve) => this.once('synced', resolve));
    this.loop = this.run();
    return Promise.race([synced, this.loop]);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const name = this.resource.name;
    while (!this.abort.signal.aborted) {
      try {
        if (this.resourceVersion === '') await this.relist();
        const delivered = await this.watchOnce();
        // A watch that ends at once without a single event (a server shutting down or
        // refusing us) must not turn into a hot reconnect loop.
        if (delivered) this.backoff.reset();
        else await this.backoff.wait(this.abort.signal);
      } catch (err) {
        if (this.abort.signal.aborted) break;
        if (isGone(err)) {
          this.log.info({ resourceVersion: this.resourceVersion }, 'resourceVersion expired (410 Gone); relisting');
          this.resourceVersion = '';
          continue;
        }
        this.metrics.sourceErrors.inc({ resource: name });
        this.log.warn({ err: (err as Error).message }, 'list/watch failed; retrying');
        await this.backoff.wait(this.abort.signal);
      }
    }
  }

  private async relist(): Promise<void> {
    const items: KubernetesObject[] = [];
    let cont: string | undefined;
    let version = '';
    do {
      const page = await this.resource.list({ limit: this.opts.pageSize, ...(cont ? { _continue: cont } : {}) });
      items.push(...page.items);
      version = page.metadata?.resourceVersion ?? version;
      cont = page.metadata?._continue || undefined;
    } while (cont !== undefined && !this.abort.signal.aborted);
    // A list cut short by shutdown is not the whole picture: diffing it would invent deletions.
    if (this.abort.signal.aborted) return;
    this.metrics.lists.inc({ resource: this.resource.name });
    const seen = new Set<string>();
    for (const obj of items) {
      const uid = obj.metadata?.uid;
      if (uid === undefined) continue;
      seen.add(uid);
      this.cache.set(uid, obj);
      this.handler.upsert(this.resource.name, obj, true);
    }
    for (const [uid, obj] of this.cache) {
      if (seen.has(uid)) continue;
      this.cache.delete(uid);
      this.handler.remove(this.resource.name, obj);
    }
    this.resourceVersion = version;
    this.synced = true;
    this.emit('synced');
    this.emit('progress', version);
  }

  /** One watch request; resolves when the server ends it, rejects on errors and 410. */
  private async watchOnce(): Promise<boolean> {
    let delivered = false;
    let gone: GoneError | undefined;
    this.metrics.watches.inc({ resource: this.resource.name });
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        this.abort.signal.removeEventListener('abort', onAbort);
        this.watchController?.abort();
        this.watchController = undefined;
        if (err) reject(err);
        else if (gone) reject(gone);
        else resolve();
      };
      // The server ends every watch after timeoutSeconds. One still open at twice that is a
      // connection that died without anybody closing it (a partition, a vanished node).
      const deadline = setTimeout(
        () => finish(new Error('watch outlived twice its timeout; connection presumed dead')),
        2 * this.opts.watchTimeoutSeconds * 1000,
      );
      // Stopping must not wait for a server that has not even sent response headers.
      const onAbort = (): void => finish(new Error('stopped'));
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
      const onEvent = (type: string, object: WatchEvent['object']): void => {
        delivered = true;
        this.metrics.watchEvents.inc({ resource: this.resource.name, type });
        if (type === 'ERROR') {
          // The server reports an expired resourceVersion in-band and then ends the stream.
          if (object.code === 410) gone = new GoneError(object.message ?? '410 Gone');
          else this.log.warn({ status: object }, 'watch error event');
          return;
        }
        this.apply(type, object);
      };
      this.watch
        .watch(
          this.resource.path,
          { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: this.opts.watchTimeoutSeconds },
          onEvent,
          (err: unknown) => finish(err ? (err as Error) : undefined),
        )
        .then(
          (controller) => {
            if (settled) controller.abort();
            else this.watchController = controller;
          },
          (err: Error) => finish(err),
        );
    });
    return delivered;
  }

  private apply(type: string, obj: KubernetesObject): void {
    const uid = obj.metadata?.uid;
    if (type === 'ADDED' || type === 'MODIFIED') {
      if (uid !== undefined) {
        this.cache.set(uid, obj);
        this.handler.upsert(this.resource.name, obj, false);
      }
    } else if (type === 'DELETED') {
      if (uid !== undefined) {
        this.cache.delete(uid);
        this.handler.remove(this.resource.name, obj);
      }
    } else if (type !== 'BOOKMARK') {
      return;
    }
    const version = obj.metadata?.resourceVersion;
    if (version) {
      this.resourceVersion = version;
      this.emit('progress', version);
    }
  }
}
