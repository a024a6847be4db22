/** What every route module gets: the ClickHouse client and the reply for a range that fails the cross-field checks. */
import { z } from 'zod';
import type { ClickHouseClient } from '@clickhouse/client';
import type { FastifyReply } from 'fastify';
import { chSeconds, resolveRange, type Range } from './params.js';
import type { Params } from './db.js';
import { rollupSource, type Family, type Tier } from './tiers.js';
import type { Coverage } from './coverage.js';

export interface ApiContext {
  ch: ClickHouseClient;
  /** Rollup tiers to read besides the minute tier (tiers.ts). */
  tiers: readonly Tier[];
  /** Since when the rollups of migration 0007 hold every row (coverage.ts). */
  coverage: Coverage;
}

/** The rows of a rollup family for a range as a FROM item (tiers.ts picks the tables), with its parameters. */
export function source(ctx: ApiContext, family: Family, range: Range, where = '', opts: { stepS?: number; prefix?: string } = {}): { from: string; params: Params; resolutionMs: number } {
  const s = rollupSource(family, range, where, { tiers: ctx.tiers, stepS: opts.stepS }, opts.prefix);
  return { from: s.sql, params: s.params, resolutionMs: s.resolutionMs };
}

/** The one 400 shape, for checks zod cannot make alone (they need two parameters or the clock). */
export function badRequest(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message });
}

/** The resolved range, or null after replying 400 with the reason. */
export function rangeOr400(q: { from: string; to: string }, reply: FastifyReply): Range | null {
  const r = resolveRange(q.from, q.to);
  if (typeof r === 'string') {
    void badRequest(reply, r);
    return null;
  }
  return r;
}


/** Bounds for raw-table queries, which are exact to the second. */
export function rangeParams(r: Range): { from: number; to: number } {
  return { from: chSeconds(r.fromMs), to: Math.ceil(r.toMs / 1000) };
}

const errorSchema = z.object({ statusCode: z.number(), error: z.string(), message: z.string() });
/** Error answers every route documents next to its own 200. */
export const ERROR_RESPONSES = { 400: errorSchema.describe('a bad parameter, named in message'), 401: errorSchema.describe('missing or wrong bearer token') };
