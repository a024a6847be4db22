/**
 * How the long-running commands end: at the first SIGINT or SIGTERM they stop, and a stop
 * that outlasts its grace period, or a second signal, ends the process without waiting for
 * it. kafkajs' disconnect waits for a broker that stopped answering (a SIGSTOPped broker held
 * an analyzer's stop for minutes, until the broker came back), and a supervisor's SIGKILL
 * would come anyway. Skipping the rest of a stop is safe for every daemon here: the analyzer
 * commits offsets only after ClickHouse acknowledged (a restart replays, deduplicated), the
 * agent's unsent records are in its spool, and the bpf addon detaches the probes at exit.
 */

/** Resolves at the first SIGINT or SIGTERM. Ask for it before starting, so no signal is missed. */
export function signalled(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}

/**
 * Runs `stop`; exits the process with status 1 if it is not done within the grace period or
 * another signal comes. The grace is the command's default unless MESHLENS_STOP_GRACE_MS sets
 * it (to fit a supervisor's own grace, e.g. Kubernetes' terminationGracePeriodSeconds).
 */
export async function stopWithin(name: string, defaultGraceMs: number, stop: () => Promise<void>): Promise<void> {
  const env = process.env.MESHLENS_STOP_GRACE_MS;
  const graceMs = env !== undefined && /^\d+$/.test(env) ? Number(env) : defaultGraceMs;
  let timer: NodeJS.Timeout | undefined;
  const cutShort = Promise.race([
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`did not stop within ${graceMs / 1000} s`), graceMs))),
    signalled().then(() => 'got a second signal'),
  ]);
  const why = await Promise.race([stop().then(() => null), cutShort]);
  clearTimeout(timer);
  if (why !== null) {
    process.stderr.write(`meshlens ${name}: ${why}; exiting without waiting for the rest of its stop\n`);
    process.exit(1);
  }
}
