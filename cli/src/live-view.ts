/**
 * The live summary `up` prints every slot: the busiest connection pairs of the last minute
 * with RTT percentiles from their summed histograms, retransmit rate and failures, and DNS
 * health per server. Read straight from ClickHouse, what a user would query with SQL.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { Connections } from '@meshlens/deploy/local';
import { histogramQuantile } from '@meshlens/schemas';
import { clickhouseClient } from '@meshlens/schemas/clickhouse';

interface PairRow {
  client: string;
  server: string;
  server_port: number;
  flows: string;
  bytes: string;
  rtt: [number[], string[]];
  retrans: string;
  segs: string;
  resets: string;
}

interface DnsRow {
  server_ip: string;
  queries: string;
  noerror: string;
  nxdomain: string;
  servfail: string;
  timeouts: string;
  p50_us: number | null;
  p99_us: number | null;
}

const ms = (us: number | null) => (us === null || Number.isNaN(us) ? '-' : (us / 1000).toFixed(us < 10_000 ? 2 : 1));
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

function table(head: string[], cells: unknown[][]): string {
  // ClickHouse returns 64-bit counts as strings or numbers depending on settings.
  const rows = cells.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

export async function liveSummary(ch: ClickHouseClient, windowS = 60): Promise<string> {
  const pairs = await (
    await ch.query({
      query: `SELECT if(client_workload LIKE 'node:%', concat(client_comm, '@', substring(client_workload, 6)), client_workload) AS client,
                     if(server_workload LIKE 'node:%', concat(server_comm, '@', substring(server_workload, 6)), server_workload) AS server,
                     server_port, count() AS flows, sum(bytes_c2s + bytes_s2c) AS bytes,
                     sumMap(client_rtt_buckets, arrayMap(c -> toUInt64(c), client_rtt_counts)) AS rtt,
                     sum(client_retrans + server_retrans) AS retrans, sum(segs_c2s + segs_s2c) AS segs,
                     sum(resets_by_client + resets_by_server) AS resets
              FROM tcp_flows WHERE slot_start >= now64(3) - toIntervalSecond({w:UInt32})
              GROUP BY client, server, server_port ORDER BY bytes DESC LIMIT 10`,
      query_params: { w: windowS },
      format: 'JSONEachRow',
    })
  ).json<PairRow>();
  const [failures] = await (
    await ch.query({
      query: `SELECT countIf(kind = 'connect_failed') AS failed, countIf(kind = 'syn_timeout') AS syn_timeouts,
                     countIf(kind IN ('reset_sent', 'reset_received')) AS resets
              FROM tcp_events WHERE ts >= now64(3) - toIntervalSecond({w:UInt32})`,
      query_params: { w: windowS },
      format: 'JSONEachRow',
    })
  ).json<{ failed: string; syn_timeouts: string; resets: string }>();
  const dns = await (
    await ch.query({
      query: `SELECT server_ip, count() AS queries, countIf(rcode = 'NOERROR') AS noerror, countIf(rcode = 'NXDOMAIN') AS nxdomain,
                     countIf(rcode = 'SERVFAIL') AS servfail, countIf(rcode = 'TIMEOUT') AS timeouts,
                     quantile(0.5)(latency_us) AS p50_us, quantile(0.99)(latency_us) AS p99_us
              FROM dns_queries WHERE ts >= now64(3) - toIntervalSecond({w:UInt32})
              GROUP BY server_ip ORDER BY queries DESC LIMIT 5`,
      query_params: { w: windowS },
      format: 'JSONEachRow',
    })
  ).json<DnsRow>();

  const pairRows = pairs.map((p) => {
    const h = { idx: p.rtt[0], cnt: p.rtt[1].map(Number) };
    const segs = Number(p.segs);
    return [p.client, `${p.server}:${p.server_port}`, p.flows, Number(p.bytes).toLocaleString('en'), ms(histogramQuantile(h, 0.5)), ms(histogramQuantile(h, 0.99)),
      segs ? pct(Number(p.retrans) / segs) : '-', p.resets];
  });
  const dnsRows = dns.map((d) => [d.server_ip, '', d.queries, d.noerror, d.nxdomain, d.servfail, d.timeouts, ms(d.p50_us), ms(d.p99_us)]);
  return [
    `meshlens — last ${windowS}s, ${new Date().toISOString()}`,
    '',
    pairRows.length ? table(['client', 'server', 'flows', 'bytes', 'rtt p50 ms', 'rtt p99 ms', 'retrans', 'resets'], pairRows) : 'no TCP flows stored yet',
    '',
    `connect failures ${failures?.failed ?? 0}, SYN timeouts ${failures?.syn_timeouts ?? 0}, reset events ${failures?.resets ?? 0}`,
    '',
    dnsRows.length ? table(['dns server', '', 'queries', 'NOERROR', 'NXDOMAIN', 'SERVFAIL', 'timeouts', 'p50 ms', 'p99 ms'], dnsRows) : 'no DNS queries stored yet',
  ].join('\n');
}

/**
 * The summary every slot until `stopped()`, redrawn in place on a terminal and appended
 * otherwise (a log, a test); `header` goes above each one.
 */
export async function runLiveView(conn: Connections, slotMs: number, stopped: () => boolean, header = ''): Promise<void> {
  const ch = clickhouseClient({ url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database: 'meshlens' });
  const tty = process.stdout.isTTY;
  try {
    while (!stopped()) {
      await new Promise((r) => setTimeout(r, slotMs));
      if (stopped()) break;
      const summary = await liveSummary(ch).catch((err: Error) => `summary unavailable: ${err.message}`);
      process.stdout.write((tty ? '\x1b[2J\x1b[H' : '\n') + header + summary + '\n');
    }
  } finally {
    await ch.close();
  }
}
