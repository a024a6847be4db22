/**
 * Capped exponential backoff with jitter, abortable: every retry loop in the collector
 * (watch reconnects, Kafka and ClickHouse deliveries) waits through one of these so an
 * outage costs a bounded trickle of attempts instead of a hot loop, and shutdown never
 * waits for a pending delay.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 200, maxMs: 5_000 };

export class Backoff {
  private attempt = 0;

  constructor(private readonly opts: BackoffOptions) {}

  reset(): void {
    this.attempt = 0;
  }

  /** Resolves after the next delay, or at once when the signal aborts. */
  wait(signal: AbortSignal): Promise<void> {
    const base = Math.min(this.opts.maxMs, this.opts.initialMs * 2 ** this.attempt);
    this.attempt++;
    // Half fixed, half random: reconnecting clients do not arrive in lockstep.
    const delay = base / 2 + Math.random() * (base / 2);
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, delay);
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
