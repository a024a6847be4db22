// The demo topology through the whole pipeline (lab pods -> eBPF agents -> Kafka -> analyzer ->
// ClickHouse -> API), checked against ground truth from outside meshlens: ping RTTs, the
// impairments the lab was told to apply, and what the pods themselves counted. One run of
// about four minutes: a baseline of at least 40 s up to a minute boundary, then all four
// incidents at once for one whole minute, then the checks.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clickhouseClient } from '@meshlens/schemas/clickhouse';
import {
  DemoLab,
  DNS_DELAY_MS,
  DNS_NAMES,
  expectedTriage,
  fitsTolerated,
  toleratedTriage,
  INCIDENT,
  INCIDENT_KINDS,
  injectIncident,
  NAMES,
  NODES,
  ZONE_DELAY_MS,
  ZONE_KEYS,
  zonePairKey,
  type ExpectedFinding,
  type FinalPodStats,
  type ZoneKey,
} from '@meshlens/e2e/demo';
import { startDemoStack, type DemoStack } from '@meshlens/cli/demo-stack';

const PREFIX = 'hde';
const SLOT_MS = 3000;
const RATE = 24;
const MINUTE = 60_000;
const n = NAMES;

interface Finding {
  symptom: string;
  scope: string;
  nodes: string[];
  zone_pairs: { src_zone: string; dst_zone: string }[];
  services: string[];
  baseline: number | null;
  incident: number;
}

const iso = (ms: number) => new Date(ms).toISOString();
const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));
/** Representative host of a zone for pings: neither the loss node nor the blackholed one. */
const pingHost = (z: ZoneKey) => NODES.find((x) => x.zone === z && x.host !== INCIDENT.loss.host && x.host !== INCIDENT.blackhole.host)!.host;

describe('demo topology end to end', () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlens-demo-e2e-'));
  let ch: ReturnType<typeof clickhouseClient>;
  let demo: DemoLab;
  let stack: DemoStack;
  const pingBase = new Map<string, number>();
  const pingIncident = new Map<string, number>();
  let t0 = 0;
  let incidentAt = 0;
  let incidentEnd = 0;
  let finalStats: Map<string, FinalPodStats>;
  let pingDns = 0;
  /**
   * Per freshness mark: ms from its connection's close until the API shows it (-1 when it did
   * not within a minute), and from the end of the slot it closed in: the pipeline's own share.
   */
  const freshness: { ms: number; afterSlotMs: number }[] = [];

  const api = async <T>(path: string, q: Record<string, string>): Promise<T> => {
    const res = await fetch(`${stack.apiUrl}${path}?${new URLSearchParams(q)}`, { headers: { authorization: `Bearer ${stack.token}` } });
    assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
    return (await res.json()) as T;
  };

  /** Sends one marked request and polls the API until the pod pair shows one more flow. */
  const markSeenAfterMs = async (): Promise<{ ms: number; afterSlotMs: number }> => {
    const flows = async () => {
      const body = await api<{ edges: { src: string; dst: string; flows: number }[] }>('/api/v1/edges', {
        src: n.service('web'),
        dst: n.service('api'),
        by: 'pod',
        from: iso(t0),
        to: 'now',
      });
      return body.edges.find((e) => e.src === n.pod('a1') && e.dst === n.pod('a2'))?.flows ?? 0;
    };
    const before = await flows();
    const mark = await demo.mark('a1', 'a2');
    assert.ok(mark.ok, 'the marked request failed');
    while (Date.now() - mark.at < 60_000) {
      if ((await flows()) > before) {
        const now = Date.now();
        return { ms: now - mark.at, afterSlotMs: now - (Math.floor(mark.at / SLOT_MS) + 1) * SLOT_MS };
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    return { ms: -1, afterSlotMs: -1 };
  };

  before(async () => {
    const tStart = Date.now();
    demo = await DemoLab.create({ prefix: PREFIX });
    // At once: four different paths, each pinged for 4 s.
    await Promise.all([
      ...([['a', 'b'], ['a', 'c'], ['b', 'c']] as const).map(async ([x, y]) => pingBase.set(zonePairKey(x, y), await demo.pingRttMs(pingHost(x), pingHost(y)))),
      demo.pingRttMs(pingHost('b'), 'dns').then((ms) => (pingDns = ms)),
    ]);
    stack = await startDemoStack(demo, { slotMs: SLOT_MS, dir });
    const c = stack.connections;
    ch = clickhouseClient({ url: c.clickhouseUrl, username: c.clickhouseUser, password: c.clickhousePassword, database: 'meshlens' });
    process.stderr.write(`# lab + stack up in ${((Date.now() - tStart) / 1000).toFixed(1)} s\n`);

    t0 = Date.now();
    demo.setRate(RATE);
    // Baseline: at least 40 s, ending on a minute boundary (the API's rollups have minute resolution).
    incidentAt = Math.ceil((t0 + 40_000) / MINUTE) * MINUTE;
    incidentEnd = incidentAt + MINUTE;
    // Injected just before the boundary, so that no connection of the incident minute still saw the healthy network.
    await sleepUntil(incidentAt - 1000);
    await Promise.all(INCIDENT_KINDS.map((k) => injectIncident(demo, k)));
    const [x, y] = INCIDENT.latency.zones;
    pingIncident.set(zonePairKey(x, y), await demo.pingRttMs(pingHost(x), pingHost(y)));
    // Freshness during steady traffic: connections between two pods that never talk otherwise
    // (same zone, so no incident touches them), each awaited in the API before the next.
    while (Date.now() < incidentEnd - 15_000) freshness.push(await markSeenAfterMs());
    await sleepUntil(incidentEnd + 200);
    finalStats = await demo.stopTraffic();
    // Everything of the run has landed once the stored connections stop changing for three slots.
    let last = '';
    for (let same = 0, deadline = Date.now() + 90_000; same < 3 && Date.now() < deadline; ) {
      const rows = await (await ch.query({ query: `SELECT count(), sum(bytes_c2s) FROM tcp_flows WHERE slot_start >= {t:DateTime64(3)}`, query_params: { t: iso(t0 - MINUTE).replace('Z', '') }, format: 'CSV' })).text();
      same = rows === last ? same + 1 : 0;
      last = rows;
      await new Promise((r) => setTimeout(r, SLOT_MS));
    }
    process.stderr.write(`# run done in ${((Date.now() - tStart) / 1000).toFixed(1)} s\n`);
  });

  after(async () => {
    await stack?.stop();
    await demo?.destroy();
    await ch?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('zone matrix rtt_p50 matches the ping RTT of each zone pair, before and during the latency incident', async () => {
    type Cell = { src_zone: string; dst_zone: string; value: number | null };
    const base = await api<{ cells: Cell[] }>('/api/v1/zones/matrix', { metric: 'rtt_p50', from: iso(Math.floor(t0 / MINUTE) * MINUTE), to: iso(incidentAt) });
    const inc = await api<{ cells: Cell[] }>('/api/v1/zones/matrix', { metric: 'rtt_p50', from: iso(incidentAt), to: iso(incidentEnd) });
    const report: string[] = [];
    const check = (cells: Cell[], x: ZoneKey, y: ZoneKey, truth: number, what: string, injectedEachWayMs: number) => {
      const cell = cells.find((c) => c.src_zone === n.zone(x) && c.dst_zone === n.zone(y));
      const tol = Math.max(0.05 * truth, 0.5);
      report.push(`${what} ${x}->${y}: api ${cell?.value?.toFixed(2)} ms, ping ${truth.toFixed(2)} ms (injected ${2 * injectedEachWayMs} ms)`);
      assert.ok(cell?.value != null && Math.abs(cell.value - truth) <= tol, report.at(-1));
    };
    for (const x of ZONE_KEYS) for (const y of ZONE_KEYS) if (x !== y) check(base.cells, x, y, pingBase.get(zonePairKey(x, y))!, 'baseline', ZONE_DELAY_MS[zonePairKey(x, y)]!);
    const [x, y] = INCIDENT.latency.zones;
    const injected = ZONE_DELAY_MS[zonePairKey(x, y)]! + INCIDENT.latency.extraMsEachWay;
    check(inc.cells, x, y, pingIncident.get(zonePairKey(x, y))!, 'incident', injected);
    check(inc.cells, y, x, pingIncident.get(zonePairKey(x, y))!, 'incident', injected);
    process.stderr.write(report.map((l) => `# ${l}\n`).join(''));
  });

  for (const z of ZONE_KEYS) {
    it(`triage of zone ${z} finds exactly the incidents that touch it`, async () => {
      const body = await api<{ findings: Finding[] }>('/api/v1/triage', {
        zone: n.zone(z),
        from: iso(incidentAt),
        to: iso(incidentEnd),
        baseline_from: iso(Math.floor(t0 / MINUTE) * MINUTE),
        baseline_to: iso(incidentAt),
      });
      const byContent = (p: object, q: object) => JSON.stringify(p).localeCompare(JSON.stringify(q));
      const got = body.findings
        .map((f): ExpectedFinding => ({
          symptom: f.symptom as ExpectedFinding['symptom'],
          scope: f.scope as ExpectedFinding['scope'],
          nodes: [...f.nodes].sort(),
          zonePairs: f.symptom === 'dns' ? [] : f.zone_pairs.map((p) => `${p.src_zone}->${p.dst_zone}`).sort(),
          services: [...f.services].sort(),
        }))
        .sort(byContent);
      process.stderr.write(`# triage ${n.zone(z)}: ${body.findings.map((f) => `${f.symptom} ${f.scope} [${f.nodes}] ${f.zone_pairs.map((p) => `${p.src_zone}->${p.dst_zone}`)} ${f.baseline?.toFixed(3)}->${f.incident.toFixed(3)}`).join('; ')}\n`);
      const want = expectedTriage(z).sort(byContent);
      const wanted = new Set(want.map((f) => JSON.stringify(f)));
      const tolerated = toleratedTriage(z);
      const extra = got.filter((f) => !wanted.has(JSON.stringify(f)) && !tolerated.some((e) => fitsTolerated(f, e)));
      assert.deepEqual([got.filter((f) => wanted.has(JSON.stringify(f))), extra], [want, []], `triage of ${n.zone(z)}: [found of the expected, unexpected]`);
    });
  }

  it('matches both ends of >= 99% of the lab connections, each with the bytes its pod counted', async () => {
    const ips = NODES.map((x) => demo.ip4(x.host));
    type Stored = { client: string; server: string; both: number; service_ip: string; c2s: string; s2c: string; rows: unknown[] };
    const stored = await (
      await ch.query({
        // Per connection (the pods never use a 4-tuple twice in a run): matched if any of its
        // rows has both ends; bytes from one end's view (a connection whose ends landed in
        // different rows would otherwise count twice).
        query: `SELECT concat(client_ip, ':', toString(client_port)) AS client, concat(server_ip, ':', toString(server_port)) AS server,
                       max(observed = 'both') AS both, max(service_ip) AS service_ip,
                       greatest(sumIf(bytes_c2s, observed != 'server'), sumIf(bytes_c2s, observed != 'client')) AS c2s,
                       greatest(sumIf(bytes_s2c, observed != 'server'), sumIf(bytes_s2c, observed != 'client')) AS s2c,
                       groupArray((slot_start, observed, bytes_c2s, bytes_s2c)) AS rows
                FROM tcp_flows
                WHERE slot_start >= {t:DateTime64(3)} AND client_ip IN {ips:Array(String)} AND path = 'network'
                GROUP BY client_ip, client_port, server_ip, server_port
                HAVING c2s + s2c > 0`,
        query_params: { t: iso(t0 - MINUTE).replace('Z', ''), ips },
        format: 'JSONEachRow',
      })
    ).json<Stored>();
    const byClient = new Map<string, Stored[]>();
    for (const x of stored) byClient.set(x.client, [...(byClient.get(x.client) ?? []), x]);
    // The ground truth: every connection a pod made, by its client address and port.
    const pods = new Map<string, { target: string; ok: boolean; sent: number; received: number }>();
    for (const [host, st] of finalStats) for (const [port, target, ok, sent, received] of st.connections) pods.set(`${demo.ip4(host)}:${port}`, { target, ok: ok === 1, sent, received });
    const vip = (target: string) => target.startsWith(`${demo.vip.ip4}:`);
    const completed = [...pods].filter(([, c]) => c.ok);
    const viaVip = completed.filter(([, c]) => vip(c.target));
    /** Why a completed connection does not count as matched, or null when it does. */
    const unmatched = ([client, c]: (typeof completed)[number]): string | null => {
      const xs = byClient.get(client) ?? [];
      if (xs.length === 0) return 'not stored';
      if (xs.length > 1) return 'stored as two connections';
      if (!xs[0]!.both) return 'one end only';
      return vip(c.target) && xs[0]!.service_ip !== demo.vip.ip4 ? 'service IP lost' : null;
    };
    const show = (client: string) => `${client} ${JSON.stringify(pods.get(client) ?? null)} ${JSON.stringify(byClient.get(client) ?? null)}`;
    const findings = new Map<string, string[]>();
    const note = (what: string, client: string) => findings.set(what, [...(findings.get(what) ?? []), show(client)]);
    for (const conn of completed) {
      const why = unmatched(conn);
      if (why) note(why, conn[0]);
      const x = byClient.get(conn[0])?.[0];
      if (x && (Number(x.c2s) !== conn[1].sent || Number(x.s2c) !== conn[1].received)) note('bytes differ', conn[0]);
    }
    for (const client of byClient.keys()) if (!pods.has(client)) note('stored, made by no pod', client);
    // Stored with bytes although its pod gave up on it (a request that timed out after data flowed): allowed, shown.
    for (const client of byClient.keys()) if (pods.get(client)?.ok === false) note('stored, given up by its pod', client);
    const share = (among: typeof completed) => among.filter((x) => unmatched(x) === null).length / among.length;
    const line = `connections: pods completed ${completed.length} (via service IP ${viaVip.length}) and gave up on ${pods.size - completed.length}; stored ${stored.length}; ` +
      `matched ${(100 * share(completed)).toFixed(2)}% (via service IP ${(100 * share(viaVip)).toFixed(2)}%)` +
      [...findings].map(([k, v]) => `; ${k}: ${v.length} [${v.join(' | ')}]`).join('');
    process.stderr.write(`# ${line}\n`);
    assert.ok(completed.length > 1000 && viaVip.length > 0, line);
    assert.ok(share(completed) >= 0.99 && share(viaVip) >= 0.99, line);
    assert.ok((findings.get('bytes differ')?.length ?? 0) <= 0.001 * completed.length, line);
    assert.equal(findings.get('stored, made by no pod')?.length ?? 0, 0, line);
  });

  it('DNS: per-server rcode mix and latency match what the lab server was told to answer', async () => {
    type Group = { server_ip: string; queries: number; rcodes: Record<string, number>; latency_p50_ms: number | null };
    const all = await api<{ groups: Group[] }>('/api/v1/dns', { by: 'server', from: iso(Math.floor(t0 / MINUTE) * MINUTE), to: 'now' });
    const healthy = await api<{ groups: Group[] }>('/api/v1/dns', { by: 'server', from: iso(Math.floor(t0 / MINUTE) * MINUTE), to: iso(incidentAt) });
    const g = all.groups.find((x) => x.server_ip === demo.lab.dns.ip4);
    const h = healthy.groups.find((x) => x.server_ip === demo.lab.dns.ip4);
    assert.ok(g && h, JSON.stringify(all));
    const truth: Record<string, number> = {};
    for (const s of finalStats.values()) for (const d of Object.values(s.dns)) for (const [rc, c] of Object.entries(d.rcodes)) truth[rc] = (truth[rc] ?? 0) + c;
    process.stderr.write(`# dns rcodes api ${JSON.stringify(g.rcodes)} pods ${JSON.stringify(truth)}; p50 before the incident: api ${h.latency_p50_ms} ms, ping RTT to the server ${pingDns} ms (injected ${2 * DNS_DELAY_MS} ms)\n`);
    // What the server was told: the three names' answers, SERVFAIL only for the flaky name after the incident.
    assert.deepEqual(Object.keys(truth).sort(), ['NOERROR', 'NXDOMAIN', 'SERVFAIL']);
    for (const rc of Object.keys(truth)) {
      const tol = Math.max(2, 0.01 * truth[rc]!);
      assert.ok(Math.abs((g.rcodes[rc] ?? 0) - truth[rc]!) <= tol, `${rc}: api ${g.rcodes[rc]} vs pods ${truth[rc]}`);
    }
    const flaky = finalStats.get(NODES.find((x) => x.zone === INCIDENT.latency.zones[0])!.host)!.dns[DNS_NAMES.flaky]!;
    assert.ok((flaky.rcodes.SERVFAIL ?? 0) > 0 && (flaky.rcodes.NOERROR ?? 0) > 0);
    // At least the network round trip the lab imposes (ping), at most what the pods' resolvers
    // measured, which adds their own event loop to the same exchange.
    const pods = finalStats.get(pingHost('b'))!.dns[DNS_NAMES.ok]!.latencyMs.sort((a, b) => a - b);
    const podP50 = pods[Math.floor(pods.length / 2)]!;
    process.stderr.write(`# dns p50: api ${h.latency_p50_ms} ms, ping ${pingDns} ms, pod resolver ${podP50} ms\n`);
    assert.ok(h.latency_p50_ms !== null && h.latency_p50_ms >= pingDns - 0.1 && h.latency_p50_ms <= podP50, `p50 ${h.latency_p50_ms} ms vs ping ${pingDns} ms, pods ${podP50} ms`);
  });

  it('a connection is queryable in the API within one slot plus 10 s of closing', () => {
    const seen = `seen after ${freshness.map((f) => f.ms).join(', ')} ms; after the end of their slot: ${freshness.map((f) => f.afterSlotMs).join(', ')} ms`;
    process.stderr.write(`# freshness: marks ${seen} (slot ${SLOT_MS} ms)\n`);
    assert.ok(freshness.length >= 2, `only ${freshness.length} marks`);
    for (const f of freshness) assert.ok(f.ms >= 0 && f.ms <= SLOT_MS + 10_000, seen);
  });
});
