-- Rollups for the two questions that read raw rows before (analyzer/src/api/README.md,
-- "Rollups that start at their migration"): one service pair broken down by zone, node or pod
-- pair (GET /api/v1/edges), and DNS by query name (GET /api/v1/dns?by=name).
--
-- flows_by_edge_*: sorted by service pair first, so one pair's window is a contiguous range of
-- a few rows per pod pair and minute, whatever the step. Zones and nodes ride along (a pod
-- lives on one node), so the same rows answer by=zone and by=node without more cardinality.
-- Connect failures come from tcp_events with the client's pod and an empty server pod (the
-- failing end has none) and path '' - by=pod leaves them out, as the raw rows did.
-- dns_by_name_*: per name and rcode, sorted by time (a window asks for all names at once).
--
-- Upgrading without double counting: a view only sees inserts made after it exists, so the
-- migration writes down, before creating the views, the first whole minute they are
-- responsible for (rollup_coverage.view_from, the next minute) and the views drop rows before
-- it. Every row from view_from on reaches the rollup exactly once; a late row for an earlier
-- minute is not in it at all. The API answers time before `covered_from` (= view_from, until
-- a backfill of the closed past moves it back) from the raw tables, so old windows stay right.

CREATE TABLE IF NOT EXISTS rollup_coverage
(
    rollup        LowCardinality(String),
    view_from     DateTime('UTC') COMMENT 'the views keep rows from here on; never changes',
    covered_from  DateTime('UTC') COMMENT 'the rollup holds every row from here on',
    updated       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated)
ORDER BY rollup;

-- Written once: a re-run of a half-applied migration must not move the views' start.
INSERT INTO rollup_coverage (rollup, view_from, covered_from)
SELECT r, toStartOfMinute(now()) + 60, toStartOfMinute(now()) + 60 FROM (SELECT arrayJoin(['flows_by_edge', 'dns_by_name']) AS r)
WHERE r NOT IN (SELECT rollup FROM rollup_coverage);

CREATE TABLE IF NOT EXISTS flows_by_edge_1m
(
    minute            DateTime('UTC'),
    client_namespace  LowCardinality(String),
    client_workload   LowCardinality(String),
    server_namespace  LowCardinality(String),
    server_workload   LowCardinality(String),
    path              LowCardinality(String),
    client_zone       LowCardinality(String),
    server_zone       LowCardinality(String),
    client_node       LowCardinality(String),
    server_node       LowCardinality(String),
    client_pod        String,
    server_pod        String,
    flows             SimpleAggregateFunction(sum, UInt64),
    flows_matched     SimpleAggregateFunction(sum, UInt64),
    flows_late        SimpleAggregateFunction(sum, UInt64),
    opened            SimpleAggregateFunction(sum, UInt64),
    closed            SimpleAggregateFunction(sum, UInt64),
    bytes_c2s         SimpleAggregateFunction(sum, UInt64),
    bytes_s2c         SimpleAggregateFunction(sum, UInt64),
    segs_c2s          SimpleAggregateFunction(sum, UInt64),
    segs_s2c          SimpleAggregateFunction(sum, UInt64),
    client_retrans    SimpleAggregateFunction(sum, UInt64),
    server_retrans    SimpleAggregateFunction(sum, UInt64),
    rto               SimpleAggregateFunction(sum, UInt64),
    resets            SimpleAggregateFunction(sum, UInt64),
    connect_failures  SimpleAggregateFunction(sum, UInt64),
    syn_timeouts      SimpleAggregateFunction(sum, UInt64),
    client_rtt        SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64))),
    server_rtt        SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (client_namespace, client_workload, server_namespace, server_workload, minute, path, client_zone, server_zone, client_node, server_node, client_pod, server_pod)
TTL minute + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_edge_1m_from_flows TO flows_by_edge_1m AS
SELECT
    toStartOfMinute(slot_start) AS minute,
    client_namespace, client_workload, server_namespace, server_workload, path, client_zone, server_zone, client_node, server_node, client_pod, server_pod,
    count() AS flows,
    countIf(observed = 'both') AS flows_matched,
    countIf(late) AS flows_late,
    countIf(opened) AS opened,
    countIf(closed) AS closed,
    sum(bytes_c2s) AS bytes_c2s,
    sum(bytes_s2c) AS bytes_s2c,
    sum(segs_c2s) AS segs_c2s,
    sum(segs_s2c) AS segs_s2c,
    sum(client_retrans) AS client_retrans,
    sum(server_retrans) AS server_retrans,
    sum(client_rto + server_rto) AS rto,
    sum(resets_by_client + resets_by_server) AS resets,
    toUInt64(0) AS connect_failures,
    toUInt64(0) AS syn_timeouts,
    sumMap(client_rtt_buckets, client_rtt_counts) AS client_rtt,
    sumMap(server_rtt_buckets, server_rtt_counts) AS server_rtt
FROM tcp_flows
WHERE slot_start >= (SELECT min(view_from) FROM rollup_coverage WHERE rollup = 'flows_by_edge')
GROUP BY minute, client_namespace, client_workload, server_namespace, server_workload, path, client_zone, server_zone, client_node, server_node, client_pod, server_pod;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_edge_1m_from_events TO flows_by_edge_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    namespace AS client_namespace, workload AS client_workload, remote_namespace AS server_namespace, remote_workload AS server_workload,
    '' AS path, zone AS client_zone, remote_zone AS server_zone, node AS client_node, remote_node AS server_node, pod AS client_pod, '' AS server_pod,
    toUInt64(0) AS flows, toUInt64(0) AS flows_matched, toUInt64(0) AS flows_late, toUInt64(0) AS opened, toUInt64(0) AS closed,
    toUInt64(0) AS bytes_c2s, toUInt64(0) AS bytes_s2c, toUInt64(0) AS segs_c2s, toUInt64(0) AS segs_s2c,
    toUInt64(0) AS client_retrans, toUInt64(0) AS server_retrans, toUInt64(0) AS rto, toUInt64(0) AS resets,
    countIf(kind = 'connect_failed') AS connect_failures,
    countIf(kind = 'syn_timeout') AS syn_timeouts,
    (CAST([] AS Array(UInt16)), CAST([] AS Array(UInt64))) AS client_rtt,
    (CAST([] AS Array(UInt16)), CAST([] AS Array(UInt64))) AS server_rtt
FROM tcp_events
WHERE role = 'client' AND kind IN ('connect_failed', 'syn_timeout')
  AND ts >= (SELECT min(view_from) FROM rollup_coverage WHERE rollup = 'flows_by_edge')
GROUP BY minute, client_namespace, client_workload, server_namespace, server_workload, path, client_zone, server_zone, client_node, server_node, client_pod, server_pod;

CREATE TABLE IF NOT EXISTS flows_by_edge_1h
(
    hour              DateTime('UTC'),
    client_namespace  LowCardinality(String),
    client_workload   LowCardinality(String),
    server_namespace  LowCardinality(String),
    server_workload   LowCardinality(String),
    path              LowCardinality(String),
    client_zone       LowCardinality(String),
    server_zone       LowCardinality(String),
    client_node       LowCardinality(String),
    server_node       LowCardinality(String),
    client_pod        String,
    server_pod        String,
    flows             SimpleAggregateFunction(sum, UInt64),
    flows_matched     SimpleAggregateFunction(sum, UInt64),
    flows_late        SimpleAggregateFunction(sum, UInt64),
    opened            SimpleAggregateFunction(sum, UInt64),
    closed            SimpleAggregateFunction(sum, UInt64),
    bytes_c2s         SimpleAggregateFunction(sum, UInt64),
    bytes_s2c         SimpleAggregateFunction(sum, UInt64),
    segs_c2s          SimpleAggregateFunction(sum, UInt64),
    segs_s2c          SimpleAggregateFunction(sum, UInt64),
    client_retrans    SimpleAggregateFunction(sum, UInt64),
    server_retrans    SimpleAggregateFunction(sum, UInt64),
    rto               SimpleAggregateFunction(sum, UInt64),
    resets            SimpleAggregateFunction(sum, UInt64),
    connect_failures  SimpleAggregateFunction(sum, UInt64),
    syn_timeouts      SimpleAggregateFunction(sum, UInt64),
    client_rtt        SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64))),
    server_rtt        SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (client_namespace, client_workload, server_namespace, server_workload, hour, path, client_zone, server_zone, client_node, server_node, client_pod, server_pod)
TTL hour + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_edge_1h_from_1m TO flows_by_edge_1h AS
SELECT toStartOfHour(minute) AS hour, client_namespace, client_workload, server_namespace, server_workload, path, client_zone, server_zone, client_node, server_node, client_pod, server_pod,
    sum(flows) AS flows, sum(flows_matched) AS flows_matched, sum(flows_late) AS flows_late, sum(opened) AS opened, sum(closed) AS closed, sum(bytes_c2s) AS bytes_c2s, sum(bytes_s2c) AS bytes_s2c, sum(segs_c2s) AS segs_c2s, sum(segs_s2c) AS segs_s2c, sum(client_retrans) AS client_retrans, sum(server_retrans) AS server_retrans, sum(rto) AS rto, sum(resets) AS resets, sum(connect_failures) AS connect_failures, sum(syn_timeouts) AS syn_timeouts, sumMap(client_rtt) AS client_rtt, sumMap(server_rtt) AS server_rtt
FROM flows_by_edge_1m
GROUP BY hour, client_namespace, client_workload, server_namespace, server_workload, path, client_zone, server_zone, client_node, server_node, client_pod, server_pod;

CREATE TABLE IF NOT EXISTS dns_by_name_1m
(
    minute            DateTime('UTC'),
    qname             String,
    rcode             LowCardinality(String),
    queries           SimpleAggregateFunction(sum, UInt64),
    latency           SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, qname, rcode)
TTL minute + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS dns_by_name_1m_from_queries TO dns_by_name_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    qname, rcode,
    count() AS queries,
    sumMap(if(latency_us IS NULL, CAST([] AS Array(UInt16)), [latency_bucket]),
           if(latency_us IS NULL, CAST([] AS Array(UInt64)), [toUInt64(1)])) AS latency
FROM dns_queries
WHERE ts >= (SELECT min(view_from) FROM rollup_coverage WHERE rollup = 'dns_by_name')
GROUP BY minute, qname, rcode;

CREATE TABLE IF NOT EXISTS dns_by_name_1h
(
    hour              DateTime('UTC'),
    qname             String,
    rcode             LowCardinality(String),
    queries           SimpleAggregateFunction(sum, UInt64),
    latency           SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, qname, rcode)
TTL hour + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS dns_by_name_1h_from_1m TO dns_by_name_1h AS
SELECT toStartOfHour(minute) AS hour, qname, rcode, sum(queries) AS queries, sumMap(latency) AS latency
FROM dns_by_name_1m
GROUP BY hour, qname, rcode;
