/**
 * Migration 0007's rollups (service pair by pod pair, DNS by name) on a database that already
 * holds data, against real ClickHouse: rows inserted before the migration, rows for earlier
 * minutes inserted after it (late) and rows after its views' start are each counted exactly
 * once, windows across the boundary add up, and the rollup really answers the covered part.
 * Expected numbers come from the fixture's samples; the API without 0007's rollups
 * (`coveredRollups: false`, raw rows and older rollups) must give the same answers.
 * The rows inserted first are in the form before migration 0008 (sparse histogram arrays),
 * so every percentile of them also checks 0008's conversion.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ClickHouseClient } from '@clickhouse/client';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { bucketOf, fromSamples, histogramQuantile } from '@meshlens/schemas';
import { clickhouseClient, migrate, MIGRATIONS_DIR } from '@meshlens/schemas/clickhouse';
import { buildApi } from '../src/index.js';
import { generate, NAMESPACE, rows, WINDOW_MS, type FlowSample } from './support/cluster-fixture.js';

const TOKEN = `t-${randomUUID()}`;
const MINUTE = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();
const ms = (chTime: string) => Date.parse(`${chTime.replace(' ', 'T')}Z`);
const p50 = (flows: FlowSample[]) => {
  const us = histogramQuantile(fromSamples(flows.flatMap((f) => f.rttUs)), 0.5);
  return us === null ? null : us / 1000;
};

// The views start at the minute after the migration; the fixture spans 15 minutes before and after that.
const V0 = Math.floor(Date.now() / MINUTE) * MINUTE + MINUTE;
const fx = generate(V0, 23);
const raw = rows(fx, bucketOf);
const rawBefore0008 = rows(fx, bucketOf, { histogramsBefore0008: true });
// Rows this far before the views' start go in before the migration; the rest after it (those before the start are late).
const EARLY = V0 - 5 * MINUTE;
const ALL = `from=${iso(V0 - WINDOW_MS)}&to=${iso(V0 + WINDOW_MS)}`;

type Edge = { src: string; dst: string; flows: number; rtt_p50_ms: number | null; connect_failures: number; series: { t: string; flows: number }[] };

let ch: ClickHouseClient;
let database: string;
let covered: FastifyInstance;
let uncovered: FastifyInstance;
let viewFrom: number;

async function get(app: FastifyInstance, url: string): Promise<Record<string, unknown>> {
  const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
  return res.json();
}

async function scalar(query: string): Promise<number> {
  const rs = await (await ch.query({ query, format: 'JSONEachRow' })).json<{ v: string | number }>();
  return Number(rs[0]!.v);
}

async function insert(early: boolean): Promise<void> {
  const time = (r: object) => ms(String((r as { slot_start?: string; ts?: string }).slot_start ?? (r as { ts: string }).ts));
  // The early rows go into tables from before 0007, and so before 0008's histogram form.
  for (const [table, values] of Object.entries(early ? rawBefore0008 : raw)) {
    const mine = values.filter((r) => (time(r) < EARLY) === early);
    if (mine.length > 0) await ch.insert({ table, values: mine, format: 'JSONEachRow' });
  }
}

before(async () => {
  const conn = connectionsFor(localInfraConfig());
  database = `meshlens_test_coverage_${randomUUID().replaceAll('-', '')}`;
  const target = { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database };
  await migrate(target, MIGRATIONS_DIR, { before: 7 });
  ch = clickhouseClient(target);
  await insert(true);
  const { applied } = await migrate(target);
  assert.ok(applied.some((m) => m.startsWith('0007_')), 'the new migration ran on the filled database');
  assert.ok(applied.some((m) => m.startsWith('0008_')), 'and 0008 converted the histograms of its rows');
  await insert(false);
  viewFrom = (await scalar(`SELECT toUnixTimestamp(min(view_from)) * 1000 AS v FROM rollup_coverage FINAL`)) * 1;
  // The minute may have turned between computing V0 and migrating: then more rows are late, which is the harder case.
  assert.ok(viewFrom === V0 || viewFrom === V0 + MINUTE, `views start at ${iso(viewFrom)}, expected ${iso(V0)}`);
  covered = await buildApi({ ch, tokens: [TOKEN] });
  uncovered = await buildApi({ ch, tokens: [TOKEN], coveredRollups: false });
});

after(async () => {
  await covered?.close();
  await uncovered?.close();
  await ch?.command({ query: `DROP DATABASE IF EXISTS ${database}` });
  await ch?.close();
});

describe('migration 0007 on a database that already holds data', () => {
  it('its rollups hold exactly the rows from their views start on, minutes and hours alike', async () => {
    const flowsAfter = fx.flows.filter((f) => f.slotMs >= viewFrom).length;
    assert.ok(flowsAfter > 0 && flowsAfter < fx.flows.length, 'rows on both sides of the start');
    assert.equal(await scalar(`SELECT sum(flows) AS v FROM flows_by_edge_1m`), flowsAfter);
    assert.equal(await scalar(`SELECT sum(flows) AS v FROM flows_by_edge_1h`), flowsAfter);
    assert.equal(await scalar(`SELECT count() AS v FROM flows_by_edge_1m WHERE minute < toDateTime(${viewFrom / 1000}, 'UTC')`), 0);
    assert.equal(await scalar(`SELECT sum(connect_failures) AS v FROM flows_by_edge_1m`), (raw.tcp_events as { ts: string }[]).filter((e) => ms(e.ts) >= viewFrom).length);
    assert.equal(await scalar(`SELECT sum(queries) AS v FROM dns_by_name_1m`), fx.dns.filter((d) => d.tsMs >= viewFrom).length);
    assert.equal(await scalar(`SELECT sum(queries) AS v FROM dns_by_name_1h`), fx.dns.filter((d) => d.tsMs >= viewFrom).length);
  });

  for (const by of ['zone', 'node', 'pod'] as const) {
    it(`edges by ${by} across the start count every flow and failure once`, async () => {
      const url = `/api/v1/edges?${ALL}&src=${NAMESPACE}/frontend&dst=${NAMESPACE}/cart&by=${by}&step_ms=60000`;
      const body = await get(covered, url);
      const key = (f: { clientPod: { zone: string; node: string; name: string }; serverPod: { zone: string; node: string; name: string } }) =>
        (by === 'zone' ? [f.clientPod.zone, f.serverPod.zone] : by === 'node' ? [f.clientPod.node, f.serverPod.node] : [f.clientPod.name, f.serverPod.name]).join('>');
      const flows = fx.flows.filter((f) => f.client === 'frontend' && f.server === 'cart');
      // Connect failures have no server pod: by pod they are not shown, as from the raw rows.
      const failures = by === 'pod' ? [] : fx.failures.map((f, i) => ({ ...f, tsMs: ms((raw.tcp_events[i] as { ts: string }).ts) })).filter((f) => f.client === 'frontend' && f.server === 'cart');
      assert.ok(failures.length > 0 || by === 'pod');
      const edges = body.edges as Edge[];
      assert.deepEqual(edges.map((e) => `${e.src}>${e.dst}`).sort(), [...new Set([...flows, ...failures].map(key))].sort());
      for (const e of edges) {
        const mine = flows.filter((f) => key(f) === `${e.src}>${e.dst}`);
        assert.equal(e.flows, mine.length);
        assert.equal(e.rtt_p50_ms, p50(mine));
        assert.equal(e.connect_failures, failures.filter((f) => key(f) === `${e.src}>${e.dst}`).length);
        // One point per minute with flows or failures, in order.
        const minutes = [...mine.map((f) => f.slotMs), ...failures.filter((f) => key(f) === `${e.src}>${e.dst}`).map((f) => f.tsMs)].map((t) => iso(Math.floor(t / MINUTE) * MINUTE));
        assert.deepEqual(e.series.map((p) => p.t), [...new Set(minutes)].sort());
        assert.equal(e.series.reduce((s, p) => s + p.flows, 0), mine.length);
      }
      assert.deepEqual(body, await get(uncovered, url));
    });
  }

  it('adds a step that straddles the start from both sides', async () => {
    // Steps are aligned to the epoch, not to the start: a step length the start minute is not a
    // multiple of puts minutes of both parts into one step (7 minutes unless the clock makes
    // the start a multiple of it; the start is a multiple of all four once in 17,017 minutes).
    const STEP = [7, 11, 13, 17].map((m) => m * MINUTE).find((step) => viewFrom % step !== 0) ?? 7 * MINUTE;
    const url = `/api/v1/edges?${ALL}&src=${NAMESPACE}/frontend&dst=${NAMESPACE}/catalog&by=pod&step_ms=${STEP}`;
    const edges = (await get(covered, url)).edges as Edge[];
    assert.ok(Math.floor(viewFrom / STEP) * STEP < viewFrom, 'a step straddles the start');
    for (const e of edges) {
      const mine = fx.flows.filter((f) => f.client === 'frontend' && f.server === 'catalog' && `${f.clientPod.name}>${f.serverPod.name}` === `${e.src}>${e.dst}`);
      const perStep = new Map<string, number>();
      for (const f of mine) perStep.set(iso(Math.floor(f.slotMs / STEP) * STEP), (perStep.get(iso(Math.floor(f.slotMs / STEP) * STEP)) ?? 0) + 1);
      assert.deepEqual(e.series.map((p) => [p.t, p.flows]), [...perStep]);
    }
    assert.deepEqual(await get(covered, url), await get(uncovered, url));
  });

  it('answers DNS by name across the start, per name exact to the bucket', async () => {
    const url = `/api/v1/dns?${ALL}&by=name`;
    const groups = (await get(covered, url)).groups as { qname: string; queries: number; rcodes: Record<string, number>; latency_p50_ms: number }[];
    const names = [...new Set(fx.dns.map((d) => d.qname))];
    assert.deepEqual(groups.map((g) => g.qname).sort(), names.sort());
    for (const g of groups) {
      const mine = fx.dns.filter((d) => d.qname === g.qname);
      assert.equal(g.queries, mine.length);
      assert.equal(g.rcodes.SERVFAIL ?? 0, mine.filter((d) => d.rcode === 'SERVFAIL').length);
      assert.equal(g.latency_p50_ms, histogramQuantile(fromSamples(mine.map((d) => d.latencyUs)), 0.5)! / 1000);
    }
    assert.deepEqual(await get(covered, url), await get(uncovered, url));
  });

  it('reads the covered part from the rollup itself', async () => {
    // A marker row only the rollup holds: the covered API shows it, the one without 0007's rollups does not.
    const url = `/api/v1/edges?${ALL}&src=${NAMESPACE}/frontend&dst=${NAMESPACE}/cart&by=zone`;
    await ch.insert({
      table: 'flows_by_edge_1m',
      values: [{ minute: Math.floor(viewFrom / 1000) + 60, client_namespace: NAMESPACE, client_workload: 'frontend', server_namespace: NAMESPACE, server_workload: 'cart', path: 'network', client_zone: 'zone-marker', server_zone: 'zone-b', flows: 1 }],
      format: 'JSONEachRow',
    });
    const zones = async (app: FastifyInstance) => ((await get(app, url)).edges as Edge[]).map((e) => e.src);
    assert.ok((await zones(covered)).includes('zone-marker'));
    assert.ok(!(await zones(uncovered)).includes('zone-marker'));
  });

  it('derives the default step from the window and honours an explicit one', async () => {
    const pair = `src=${NAMESPACE}/frontend&dst=${NAMESPACE}/cart&by=zone`;
    const step = async (range: string) => (await get(covered, `/api/v1/edges?${pair}&${range}`)).step_ms;
    assert.equal(await step(ALL), MINUTE);
    assert.equal(await step(`from=${iso(V0 - 3 * 3_600_000)}&to=${iso(V0)}`), 2 * MINUTE);
    assert.equal(await step(`from=${iso(V0 - 86_400_000)}&to=${iso(V0)}`), 15 * MINUTE);
    assert.equal(await step(`from=${iso(V0 - 86_400_000)}&to=${iso(V0)}&step_ms=180000`), 3 * MINUTE);
  });
});
