/**
 * Slots are aligned to wall-clock multiples of the interval so that the two ends of a
 * connection, measured by agents on different hosts, report into the same slot.
 */
export function slotStart(epochMs: number, slotMs: number): number {
  return Math.floor(epochMs / slotMs) * slotMs;
}

/** Milliseconds until the next slot boundary after `epochMs`. */
export function msUntilNextSlot(epochMs: number, slotMs: number): number {
  return slotStart(epochMs, slotMs) + slotMs - epochMs;
}

/**
 * Calls `onSlot(endedSlotStart)` at every boundary. Each wait is computed from the clock
 * afresh, so timer drift never accumulates into a shifted slot.
 */
export function everySlot(slotMs: number, onSlot: (endedSlotStart: number) => void, now: () => number = Date.now): () => void {
  let timer: NodeJS.Timeout;
  let stopped = false;
  const arm = (): void => {
    timer = setTimeout(() => {
      const t = now();
      onSlot(slotStart(t, slotMs) - slotMs);
      // onSlot may have stopped us; re-arming then would keep the process alive forever.
      if (!stopped) arm();
    }, msUntilNextSlot(now(), slotMs) + 1);
  };
  arm();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
