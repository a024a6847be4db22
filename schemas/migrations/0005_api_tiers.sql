-- Query tiers for the API (analyzer/src/api/README.md, "Which rollup answers"): an hourly copy
-- of every minute rollup for long windows, and a per-second node-pair rollup (plus DNS) kept
-- for 3 hours so a short window - an incident of a few agent slots - is answered exactly to
-- the slot instead of being diluted by the whole first minute. Same columns and sparse
-- histogram sums as 0003, so any tier gives the same percentiles for the same rows.
--
-- The hourly tables are fed from the minute tables (a view on a view's target fires on the
-- view's inserts), so they also carry the connect failures; the per-second one reads the raw
-- tables like the minute views do. ORDER BY of the per-second tables starts with the time:
-- they are only ever read for a few minutes at a time.
--
-- Backfill on an existing database: hours from the minute rollups (cheap: they are ~1/30 of
-- the raw rows), the last 2 hours of the per-second tier from the raw tables. The views exist
-- before the backfill runs, so rows the analyzer inserts in the seconds between the two
-- statements for a minute before the backfill's cut-off are counted twice in the new tiers,
-- and rows of the current minute inserted before the view existed are missing from them;
-- both are confined to the minute the migration ran in.

CREATE TABLE IF NOT EXISTS flows_by_service_1h
(
    hour              DateTime('UTC'),
    path              LowCardinality(String),
    client_namespace  LowCardinality(String),
    client_workload   LowCardinality(String),
    server_namespace  LowCardinality(String),
    server_workload   LowCardinality(String),
    server_service    LowCardinality(String),
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
ORDER BY (client_namespace, client_workload, server_namespace, server_workload, server_service, hour, path)
TTL hour + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_service_1h_from_1m TO flows_by_service_1h AS
SELECT toStartOfHour(minute) AS hour, path, client_namespace, client_workload, server_namespace, server_workload, server_service,
    sum(flows) AS flows, sum(flows_matched) AS flows_matched, sum(flows_late) AS flows_late, sum(opened) AS opened, sum(closed) AS closed, sum(bytes_c2s) AS bytes_c2s, sum(bytes_s2c) AS bytes_s2c, sum(segs_c2s) AS segs_c2s, sum(segs_s2c) AS segs_s2c, sum(client_retrans) AS client_retrans, sum(server_retrans) AS server_retrans, sum(rto) AS rto, sum(resets) AS resets, sum(connect_failures) AS connect_failures, sum(syn_timeouts) AS syn_timeouts, sumMap(client_rtt) AS client_rtt, sumMap(server_rtt) AS server_rtt
FROM flows_by_service_1m
GROUP BY hour, path, client_namespace, client_workload, server_namespace, server_workload, server_service;

INSERT INTO flows_by_service_1h
SELECT toStartOfHour(minute) AS hour, path, client_namespace, client_workload, server_namespace, server_workload, server_service,
    sum(flows) AS flows, sum(flows_matched) AS flows_matched, sum(flows_late) AS flows_late, sum(opened) AS opened, sum(closed) AS closed, sum(bytes_c2s) AS bytes_c2s, sum(bytes_s2c) AS bytes_s2c, sum(segs_c2s) AS segs_c2s, sum(segs_s2c) AS segs_s2c, sum(client_retrans) AS client_retrans, sum(server_retrans) AS server_retrans, sum(rto) AS rto, sum(resets) AS resets, sum(connect_failures) AS connect_failures, sum(syn_timeouts) AS syn_timeouts, sumMap(client_rtt) AS client_rtt, sumMap(server_rtt) AS server_rtt
FROM flows_by_service_1m WHERE minute < toStartOfMinute(now())
GROUP BY hour, path, client_namespace, client_workload, server_namespace, server_workload, server_service;

CREATE TABLE IF NOT EXISTS flows_by_zone_1h
(
    hour              DateTime('UTC'),
    path              LowCardinality(String),
    client_zone       LowCardinality(String),
    server_zone       LowCardinality(String),
    client_namespace  LowCardinality(String),
    client_workload   LowCardinality(String),
    server_namespace  LowCardinality(String),
    server_workload   LowCardinality(String),
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
ORDER BY (client_zone, server_zone, hour, client_namespace, client_workload, server_namespace, server_workload, path)
TTL hour + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_zone_1h_from_1m TO flows_by_zone_1h AS
SELECT toStartOfHour(minute) AS hour, path, client_zone, server_zone, client_namespace, client_workload, server_namespace, server_workload,
    sum(flows) AS flows, sum(flows_matched) AS flows_matched, sum(flows_late) AS flows_late, sum(opened) AS opened, sum(closed) AS closed, sum(bytes_c2s) AS bytes_c2s, sum(bytes_s2c) AS bytes_s2c, sum(segs_c2s) AS segs_c2s, sum(segs_s2c) AS segs_s2c, sum(client_retrans) AS client_retrans, sum(server_retrans) AS server_retrans, sum(rto) AS rto, sum(resets) AS resets, sum(connect_failures) AS connect_failures, sum(syn_timeouts) AS syn_timeouts, sumMap(client_rtt) AS client_rtt, sumMap(server_rtt) AS server_rtt
FROM flows_by_zone_1m
GROUP BY hour, path, client_zone, server_zone, client_namespace, client_workload, server_namespace, server_workload;

INSERT INTO flows_by_zone_1h
SELECT toStartOfHour(minute) AS hour, path, client_zone, server_zone, client_namespace, client_workload, server_namespace, server_workload,
    sum(flows) AS flows, sum(flows_matched) AS flows_matched, sum(flows_late) AS flows_late, sum(opened) AS opened, sum(closed) AS closed, sum(bytes_c2s) AS bytes_c2s, sum(bytes_s2c) AS bytes_s2c, sum(segs_c2s) AS segs_c2s, sum(segs_s2c) AS segs_s2c, sum(client_retrans) AS client_retrans, sum(server_retrans) AS server_retrans, sum(rto) AS rto, sum(resets) AS resets, sum(connect_failures) AS connect_failures, sum(syn_timeouts) AS syn_timeouts, sumMap(client_rtt) AS client_rtt, sumMap(server_rtt) AS server_rtt
FROM flows_by_zone_1m WHERE minute < toStartOfMinute(now())
GROUP BY hour, path, client_zone, server_zone, client_namespace, client_workload, server_namespace, server_workload;

CREATE TABLE IF NOT EXISTS flows_by_node_1h
(
    hour              DateTime('UTC'),
    path              LowCardinality(String),
    client_zone       LowCardinality(String),
    server_zone       LowCardinality(String),
    client_node       LowCardinality(String),
    server_node       LowCardinality(String),
    client_namespace  LowCardinality(String),
    client_workload   LowCardinality(String),
    server_namespace  LowCardinality(String),
    server_workload   LowCardinality(String),
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
ORDER BY (client_zone, server_zone, client_node, server_node, hour, client_namespace, client_workload, server_namespace, server_workload, path)
TTL hour + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_node_1h_from_1m TO flows_by_node_1h AS
SELECT toStartOfHour(minute) AS hour, path, client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload,
    sum(flows) AS flows, sum(flows_matched) AS flows_matched, sum(flows_late) AS flows_late, sum(opened) AS opened, sum(closed) AS closed, sum(bytes_c2s) AS bytes_c2s, sum(bytes_s2c) AS bytes_s2c, sum(segs_c2s) AS segs_c2s, sum(segs_s2c) AS segs_s2c, sum(client_retrans) AS client_retrans, sum(server_retrans) AS server_retrans, sum(rto) AS rto, sum(resets) AS resets, sum(connect_failures) AS connect_failures, sum(syn_timeouts) AS syn_timeouts, sumMap(client_rtt) AS client_rtt, sumMap(server_rtt) AS server_rtt
FROM flows_by_node_1m
GROUP BY hour, path, client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload;

INSERT INTO flows_by_node_1h
SELECT toStartOfHour(minute) AS hour, path, client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload,
    sum(flows) AS flows, sum(flows_matched) AS flows_matched, sum(flows_late) AS flows_late, sum(opened) AS opened, sum(closed) AS closed, sum(bytes_c2s) AS bytes_c2s, sum(bytes_s2c) AS bytes_s2c, sum(segs_c2s) AS segs_c2s, sum(segs_s2c) AS segs_s2c, sum(client_retrans) AS client_retrans, sum(server_retrans) AS server_retrans, sum(rto) AS rto, sum(resets) AS resets, sum(connect_failures) AS connect_failures, sum(syn_timeouts) AS syn_timeouts, sumMap(client_rtt) AS client_rtt, sumMap(server_rtt) AS server_rtt
FROM flows_by_node_1m WHERE minute < toStartOfMinute(now())
GROUP BY hour, path, client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload;

CREATE TABLE IF NOT EXISTS flows_by_node_1s
(
    second            DateTime('UTC'),
    path              LowCardinality(String),
    client_zone       LowCardinality(String),
    server_zone       LowCardinality(String),
    client_node       LowCardinality(String),
    server_node       LowCardinality(String),
    client_namespace  LowCardinality(String),
    client_workload   LowCardinality(String),
    server_namespace  LowCardinality(String),
    server_workload   LowCardinality(String),
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
PARTITION BY toStartOfHour(second)
ORDER BY (second, client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload, path)
TTL second + INTERVAL 3 HOUR
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_node_1s_from_flows TO flows_by_node_1s AS
SELECT
    toDateTime(slot_start, 'UTC') AS second,
    path,
    client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload,
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
GROUP BY second, path, client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_node_1s_from_events TO flows_by_node_1s AS
SELECT
    toDateTime(ts, 'UTC') AS second,
    '' AS path,
    zone AS client_zone, remote_zone AS server_zone, node AS client_node, remote_node AS server_node, namespace AS client_namespace, workload AS client_workload, remote_namespace AS server_namespace, remote_workload AS server_workload,
    toUInt64(0) AS flows, toUInt64(0) AS flows_matched, toUInt64(0) AS flows_late, toUInt64(0) AS opened, toUInt64(0) AS closed,
    toUInt64(0) AS bytes_c2s, toUInt64(0) AS bytes_s2c, toUInt64(0) AS segs_c2s, toUInt64(0) AS segs_s2c,
    toUInt64(0) AS client_retrans, toUInt64(0) AS server_retrans, toUInt64(0) AS rto, toUInt64(0) AS resets,
    countIf(kind = 'connect_failed') AS connect_failures,
    countIf(kind = 'syn_timeout') AS syn_timeouts,
    (CAST([] AS Array(UInt16)), CAST([] AS Array(UInt64))) AS client_rtt,
    (CAST([] AS Array(UInt16)), CAST([] AS Array(UInt64))) AS server_rtt
FROM tcp_events
WHERE role = 'client' AND kind IN ('connect_failed', 'syn_timeout')
GROUP BY second, path, client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload;

INSERT INTO flows_by_node_1s
SELECT
    toDateTime(slot_start, 'UTC') AS second,
    path,
    client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload,
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
WHERE slot_start >= now() - INTERVAL 2 HOUR AND slot_start < toStartOfMinute(now())
GROUP BY second, path, client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload;

INSERT INTO flows_by_node_1s
SELECT
    toDateTime(ts, 'UTC') AS second,
    '' AS path,
    zone AS client_zone, remote_zone AS server_zone, node AS client_node, remote_node AS server_node, namespace AS client_namespace, workload AS client_workload, remote_namespace AS server_namespace, remote_workload AS server_workload,
    toUInt64(0) AS flows, toUInt64(0) AS flows_matched, toUInt64(0) AS flows_late, toUInt64(0) AS opened, toUInt64(0) AS closed,
    toUInt64(0) AS bytes_c2s, toUInt64(0) AS bytes_s2c, toUInt64(0) AS segs_c2s, toUInt64(0) AS segs_s2c,
    toUInt64(0) AS client_retrans, toUInt64(0) AS server_retrans, toUInt64(0) AS rto, toUInt64(0) AS resets,
    countIf(kind = 'connect_failed') AS connect_failures,
    countIf(kind = 'syn_timeout') AS syn_timeouts,
    (CAST([] AS Array(UInt16)), CAST([] AS Array(UInt64))) AS client_rtt,
    (CAST([] AS Array(UInt16)), CAST([] AS Array(UInt64))) AS server_rtt
FROM tcp_events
WHERE role = 'client' AND kind IN ('connect_failed', 'syn_timeout') AND ts >= now() - INTERVAL 2 HOUR AND ts < toStartOfMinute(now())
GROUP BY second, path, client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload;

CREATE TABLE IF NOT EXISTS dns_by_server_1h
(
    hour              DateTime('UTC'),
    server_ip         String,
    server_name       LowCardinality(String),
    zone              LowCardinality(String),
    namespace         LowCardinality(String),
    workload          LowCardinality(String),
    rcode             LowCardinality(String),
    queries           SimpleAggregateFunction(sum, UInt64),
    timeouts          SimpleAggregateFunction(sum, UInt64),
    latency           SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (server_ip, server_name, hour, zone, namespace, workload, rcode)
TTL hour + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS dns_by_server_1h_from_1m TO dns_by_server_1h AS
SELECT toStartOfHour(minute) AS hour, server_ip, server_name, zone, namespace, workload, rcode, sum(queries) AS queries, sum(timeouts) AS timeouts, sumMap(latency) AS latency
FROM dns_by_server_1m
GROUP BY hour, server_ip, server_name, zone, namespace, workload, rcode;

INSERT INTO dns_by_server_1h
SELECT toStartOfHour(minute) AS hour, server_ip, server_name, zone, namespace, workload, rcode, sum(queries) AS queries, sum(timeouts) AS timeouts, sumMap(latency) AS latency
FROM dns_by_server_1m WHERE minute < toStartOfMinute(now())
GROUP BY hour, server_ip, server_name, zone, namespace, workload, rcode;

CREATE TABLE IF NOT EXISTS dns_by_server_1s
(
    second            DateTime('UTC'),
    server_ip         String,
    server_name       LowCardinality(String),
    zone              LowCardinality(String),
    namespace         LowCardinality(String),
    workload          LowCardinality(String),
    rcode             LowCardinality(String),
    queries           SimpleAggregateFunction(sum, UInt64),
    timeouts          SimpleAggregateFunction(sum, UInt64),
    latency           SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toStartOfHour(second)
ORDER BY (second, zone, server_ip, server_name, namespace, workload, rcode)
TTL second + INTERVAL 3 HOUR
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS dns_by_server_1s_from_queries TO dns_by_server_1s AS
SELECT
    toDateTime(ts, 'UTC') AS second,
    server_ip, server_name, zone, namespace, workload, rcode,
    count() AS queries,
    countIf(rcode = 'TIMEOUT') AS timeouts,
    sumMap(if(latency_us IS NULL, CAST([] AS Array(UInt16)), [latency_bucket]),
           if(latency_us IS NULL, CAST([] AS Array(UInt64)), [toUInt64(1)])) AS latency
FROM dns_queries
GROUP BY second, server_ip, server_name, zone, namespace, workload, rcode;

INSERT INTO dns_by_server_1s
SELECT
    toDateTime(ts, 'UTC') AS second,
    server_ip, server_name, zone, namespace, workload, rcode,
    count() AS queries,
    countIf(rcode = 'TIMEOUT') AS timeouts,
    sumMap(if(latency_us IS NULL, CAST([] AS Array(UInt16)), [latency_bucket]),
           if(latency_us IS NULL, CAST([] AS Array(UInt64)), [toUInt64(1)])) AS latency
FROM dns_queries WHERE ts >= now() - INTERVAL 2 HOUR AND ts < toStartOfMinute(now())
GROUP BY second, server_ip, server_name, zone, namespace, workload, rcode;
