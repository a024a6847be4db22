/**
 * What a partition's committed offset carries besides the offset: enough to rebuild the
 * matching state exactly as it was, so that a replay after a crash emits the same units
 * with the same rows and the same deduplication tokens.
 *
 *  - `wm`, `through`: the watermark after the last completed unit and the last offset that
 *    unit covered. Records up to `through` in slots below `wm` are already stored; records
 *    in later slots are still held, and the committed offset points at the oldest of them.
 *  - `next`: written (same offset) *before* a unit's inserts: the unit ends at `next.end`
 *    with watermark `next.wm`. If we die after inserting and before committing, the replay
 *    cuts the same unit at the same place and its inserts carry the same token.
 */
import { z } from 'zod';

export const commitStateSchema = z.object({
  v: z.literal(1),
  wm: z.number(),
  through: z.number().int(),
  next: z.object({ end: z.number().int(), wm: z.number() }).nullable(),
});
export type CommitState = z.infer<typeof commitStateSchema>;

export function encodeCommitState(s: CommitState): string {
  return JSON.stringify(s);
}

/** Unknown or foreign metadata (another tool committed here) reads as "no state". */
export function decodeCommitState(metadata: string | null): CommitState | null {
  if (!metadata) return null;
  try {
    const r = commitStateSchema.safeParse(JSON.parse(metadata));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** Token for the unit (from, end] of one partition; the watermark tells two idle flushes of one range apart. */
export function unitToken(topic: string, partition: number, from: number, end: number, wm: number): string {
  return `${topic}/${partition}/${from}-${end}/${wm}`;
}
