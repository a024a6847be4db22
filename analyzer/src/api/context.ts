/** What every route module gets: the ClickHouse client and the reply for a range that fails the cross-field checks. */
import { z } from 'zod';
import type { ClickHouseClient } from '@clickhouse/client';
import type { FastifyReply } from 'fastify';
import { chSeconds, resolveRange, type Range } from './params.js';

export interface ApiContext {
  ch: ClickHouseClient;
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

/** Rollup rows whose minute overlaps the range: a minute is the rollups' resolution. */
export const MINUTES_IN_RANGE = `minute >= toStartOfMinute(toDateTime({from:UInt32}, 'UTC')) AND minute < toDateTime({to:UInt32}, 'UTC')`;

export function rangeParams(r: Range): { from: number; to: number } {
  return { from: chSeconds(r.fromMs), to: Math.ceil(r.toMs / 1000) };
}

const errorSchema = z.object({ statusCode: z.number(), error: z.string(), message: z.string() });
/** Error answers every route documents next to its own 200. */
export const ERROR_RESPONSES = { 400: errorSchema.describe('a bad parameter, named in message'), 401: errorSchema.describe('missing or wrong bearer token') };
