/** What the query commands (top, triage, matrix, dns) share: where the API is, calling it, printing tables. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { localInfraConfig } from '@meshlens/deploy/local';

/** The API refused or could not be reached: a message for a person, not a stack trace. */
export class ApiError extends Error {}

/** A command action whose ApiError becomes commander's one-line error (exit code 1). */
export function apiAction<T>(fn: (o: T) => Promise<void>): (this: Command, o: T) => Promise<void> {
  return async function (this: Command, o: T) {
    try {
      await fn(o);
    } catch (err) {
      if (err instanceof ApiError) this.error(`meshlens: ${err.message}`);
      throw err;
    }
  };
}

export interface ClientOptions {
  url: string;
  token?: string;
  from: string;
  to: string;
  json?: boolean;
}

/** A query command with the common options: API address and token, time range, --json. */
export function queryCommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .option('--url <url>', 'API base URL (env MESHLENS_API_URL)', process.env.MESHLENS_API_URL ?? 'http://127.0.0.1:9470')
    .option('--token <token>', 'bearer token (env MESHLENS_API_TOKEN, else the first of MESHLENS_API_TOKENS, else the one `meshlens up` wrote to its state dir)')
    .option('--from <time>', 'start: RFC 3339, now, or relative (-15m)', '-15m')
    .option('--to <time>', 'end: RFC 3339, now, or relative', 'now')
    .option('--json', 'print the API response as JSON');
}

/** The token `meshlens up` generated for the API it runs, when there is one. */
function upToken(): string | undefined {
  try {
    return readFileSync(join(localInfraConfig().stateDir, 'api-token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export async function callApi<T>(o: ClientOptions, path: string, params: Record<string, string | undefined>): Promise<T> {
  const token = o.token ?? process.env.MESHLENS_API_TOKEN ?? process.env.MESHLENS_API_TOKENS?.split(',')[0]?.trim() ?? upToken();
  if (!token) throw new ApiError('no API token: pass --token or set MESHLENS_API_TOKEN');
  const url = new URL(path, o.url);
  for (const [k, v] of Object.entries({ from: o.from, to: o.to, ...params })) if (v !== undefined) url.searchParams.set(k, v);
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } }).catch((err: Error) => {
    throw new ApiError(`cannot reach the API at ${o.url} (${(err.cause as Error | undefined)?.message ?? err.message})`);
  });
  const body = (await res.json()) as T & { message?: string };
  if (!res.ok) throw new ApiError(`${url.pathname}: ${res.status} ${body.message ?? ''}`.trim());
  return body;
}

/** Numbers as people read them: ms with two decimals, rates as percentages, missing as '-'. */
export const fmt = {
  ms: (v: number | null | undefined) => (v === null || v === undefined ? '-' : v.toFixed(2)),
  pct: (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${(v * 100).toFixed(2)}%`),
};

export function printTable(header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  for (const r of cells) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
}

export function printJson(body: unknown): void {
  process.stdout.write(JSON.stringify(body, null, 2) + '\n');
}
