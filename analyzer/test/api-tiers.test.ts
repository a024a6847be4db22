/**
 * Which rollup answers a window (api/tiers.ts) against real ClickHouse: a short incident is
 * seen undiluted, hours + minutes answer long windows exactly like minutes alone, and
 * migration 0005 backfills its tiers on a database that already holds data. Expected numbers
 * come from the fixture's samples; the minute-only API (the path before the tiers existed)
 * is the control that shows the short-window case fails without them.
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
import { DEGRADED, FAILING_NODE, generate, rows, SLOT_MS, type Fixture, type FlowSample } from './support/cluster-fixture.js';

const TOKEN = `t-${randomUUID()}`;
const MINUTE = 60_000;
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const p50 = (flows: FlowSample[]) => histogramQuantile(fromSamples(flows.flatMap((f) => f.rttUs)), 0.5)! / 1000;
const degraded = (f: FlowSample) => f.clientPod.zone === DEGRADED.src && f.serverPod.zone === DEGRADED.dst;

interface Db {
  ch: ClickHouseClient;
  database: string;
  tiered: FastifyInstance;
  minuteOnly: FastifyInstance;
}
const dbs: Db[] = [];

async function openDb(name: string, fill: (target: Parameters<typeof migrate>[0], ch: ClickHouseClient) => Promise<void>): Promise<Db> {
  const conn = connectionsFor(localInfraConfig());
  const database = `meshlens_test_${name}_${randomUUID().replaceAll('-', '')}`;
  const target = { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database };
  const ch = clickhouseClient(target);
  const db: Db = { ch, database, tiered: await buildApi({ ch, tokens: [TOKEN] }), minuteOnly: await buildApi({ ch, tokens: [TOKEN], tiers: ['1m'] }) };
  dbs.push(db);
  await fill(target, ch);
  return db;
}

async function insert(ch: ClickHouseClient, fx: Fixture, histogramsBefore0008 = false): Promise<void> {
  for (const [table, values] of Object.entries(rows(fx, bucketOf, { histogramsBefore0008 }))) await ch.insert({ table, values, format: 'JSONEachRow' });
}

async function get(app: FastifyInstance, url: string): Promise<Record<string, unknown>> {
  const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
  return res.json();
}

after(async () => {
  for (const db of dbs) {
    await db.tiered.close();
    await db.minuteOnly.close();
    await db.ch.command({ query: `DROP DATABASE IF EXISTS ${db.database}` });
    await db.ch.close();
  }
});

describe('a 30 s incident in the last minute', () => {
  // The incident fills the second half of the last whole minute, so the minute around it also holds 30 s of baseline.
  const INCIDENT = Math.floor((Date.now() - MINUTE) / MINUTE) * MINUTE + 30_000;
  const LENGTH = 30_000;
  const fx = generate(INCIDENT, 11, LENGTH);
  const WINDOW = `from=${iso(INCIDENT)}&to=${iso(INCIDENT + LENGTH)}`;
  const incident = fx.flows.filter((f) => f.incident && degraded(f));
  const before30s = fx.flows.filter((f) => f.slotMs >= INCIDENT - LENGTH && f.slotMs < INCIDENT && degraded(f));
  let db: Db;

  before(async () => {
    db = await openDb('tiers_short', async (target, ch) => {
      await migrate(target);
      await insert(ch, fx);
    });
    assert.equal(new Set(incident.map((f) => f.slotMs)).size, LENGTH / SLOT_MS, 'three slots of incident');
  });

  it('the matrix shows the incident p50 of exactly its slots', async () => {
    const cell = async (app: FastifyInstance) => {
      const body = (await get(app, `/api/v1/zones/matrix?${WINDOW}&metric=rtt_p50`)) as { zones: string[]; matrix: (number | null)[][] };
      return body.matrix[body.zones.indexOf(DEGRADED.src)]![body.zones.indexOf(DEGRADED.dst)];
    };
    assert.equal(await cell(db.tiered), p50(incident));
    // Control: minutes alone answer with the whole minute, half of it before the incident.
    const wholeMinute = fx.flows.filter((f) => f.slotMs >= INCIDENT - 30_000 && f.slotMs < INCIDENT + LENGTH && degraded(f));
    assert.equal(await cell(db.minuteOnly), p50(wholeMinute));
    assert.notEqual(p50(wholeMinute), p50(incident));
  });

  it('triage names the incident against the 30 s before it, with undiluted numbers', async () => {
    type Finding = { symptom: string; zone_pairs: { src_zone: string; dst_zone: string }[]; scope: string; nodes: string[]; incident: number; baseline: number | null };
    const findings = (await get(db.tiered, `/api/v1/triage?zone=${DEGRADED.src}&${WINDOW}`)).findings as Finding[];
    const summary = findings.map((f) => `${f.symptom} ${f.zone_pairs.map((p) => `${p.src_zone}>${p.dst_zone}`).join(',')} ${f.scope === 'nodes' ? `nodes:${f.nodes.join(',')}` : 'zone'}`);
    assert.deepEqual(summary.sort(), [`connectivity ${DEGRADED.src}>zone-b nodes:${FAILING_NODE}`, `latency ${DEGRADED.src}>${DEGRADED.dst} zone`]);
    const latency = findings.find((f) => f.symptom === 'latency')!;
    assert.equal(latency.incident, p50(incident));
    assert.equal(latency.baseline, p50(before30s));
    // Control: with minutes alone both windows are the same minute, and nothing got worse.
    assert.deepEqual((await get(db.minuteOnly, `/api/v1/triage?zone=${DEGRADED.src}&${WINDOW}`)).findings, []);
  });
});

describe('migration 0005 on a database that already holds data', () => {
  // 75 minutes of traffic ending at the last whole hour: one whole hour for the hourly tier, minutes around it.
  const H = Math.floor(Date.now() / HOUR) * HOUR;
  const fx = generate(H - HOUR, 13, HOUR);
  let db: Db;

  before(async () => {
    db = await openDb('tiers_backfill', async (target, ch) => {
      await migrate(target, MIGRATIONS_DIR, { before: 5 });
      await insert(ch, fx, true);
      const { applied } = await migrate(target);
      assert.ok(applied.some((m) => m.startsWith('0005_')), 'the new migration ran on the filled database');
    });
  });

  it('answers a long window from hours and minutes exactly as from minutes alone', async () => {
    // Ragged edges: the whole hour comes from the hourly tier, the minutes on both sides from the minute tier.
    for (const url of [
      `/api/v1/services?from=${iso(H - 75 * MINUTE + 20_000)}&to=${iso(H)}`,
      `/api/v1/zones/matrix?from=${iso(H - 70 * MINUTE)}&to=${iso(H - 90_000)}&metric=rtt_p99`,
      `/api/v1/rankings?from_zone=zone-a&from=${iso(H - 75 * MINUTE)}&to=${iso(H)}`,
      `/api/v1/dns?by=client&from=${iso(H - 75 * MINUTE)}&to=${iso(H)}`,
    ]) {
      assert.deepEqual(await get(db.tiered, url), await get(db.minuteOnly, url), url);
    }
    const services = (await get(db.tiered, `/api/v1/services?from=${iso(H - 75 * MINUTE)}&to=${iso(H)}`)).services as { name: string; inbound: { flows: number } | null }[];
    assert.equal(services.find((s) => s.name === 'catalog')!.inbound!.flows, fx.flows.filter((f) => f.server === 'catalog').length);
  });

  it('backfilled the per-second tier for recent windows', async () => {
    // Minute-aligned and recent: the per-second tier answers it, and must agree with the minute tier.
    const url = `/api/v1/zones/matrix?from=${iso(H - 5 * MINUTE)}&to=${iso(H)}&metric=rtt_p50`;
    const fine = (await get(db.tiered, url)) as { cells: { flows: number }[] };
    assert.ok(fine.cells.length > 0);
    assert.deepEqual(fine, await get(db.minuteOnly, url));
  });
});
