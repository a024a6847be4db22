-- Minute rollups kept by materialized views, one table per level the API drills into.
-- Counters are SimpleAggregateFunction(sum) and RTT histograms SimpleAggregateFunction(sumMap)
-- over the sparse (bucket, count) arrays: adding histograms bucket by bucket is exact, so a
-- percentile read from any rollup is exact to one bucket of the fixed layout, the same answer
-- the raw rows give. Connect failures and SYN timeouts come from tcp_events (client side:
-- the local end is the client) into the same tables, so one query sees RTT, loss and
-- connectivity of a pair together.
-- `path` (network, same_node, same_pod, loopback) stays a dimension: the zone matrix and
-- peer latencies read path = 'network' and are not skewed by a sidecar talking to its app;
-- connect failures carry no path ('').
-- The dedup window matters here too: a replayed insert into tcp_flows is dropped, and with
-- deduplicate_blocks_in_dependent_materialized_views the views' blocks are dropped with it.

-- per service pair: services list, peers, rankings from a service
CREATE TABLE IF NOT EXISTS flows_by_service_1m
(
    minute            DateTime('UTC'),
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
PARTITION BY toYYYYMM(minute)
ORDER BY (client_namespace, client_workload, server_namespace, server_workload, server_service, minute, path)
TTL minute + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_service_1m_from_flows TO flows_by_service_1m AS
SELECT
    toStartOfMinute(slot_start) AS minute,
    path,
    client_namespace, client_workload, server_namespace, server_workload, server_service,
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
GROUP BY minute, path, client_namespace, client_workload, server_namespace, server_workload, server_service;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_service_1m_from_events TO flows_by_service_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    '' AS path,
    namespace AS client_namespace, workload AS client_workload, remote_namespace AS server_namespace, remote_workload AS server_workload, remote_service AS server_service,
    toUInt64(0) AS flows, toUInt64(0) AS flows_matched, toUInt64(0) AS flows_late, toUInt64(0) AS opened, toUInt64(0) AS closed,
    toUInt64(0) AS bytes_c2s, toUInt64(0) AS bytes_s2c, toUInt64(0) AS segs_c2s, toUInt64(0) AS segs_s2c,
    toUInt64(0) AS client_retrans, toUInt64(0) AS server_retrans, toUInt64(0) AS rto, toUInt64(0) AS resets,
    countIf(kind = 'connect_failed') AS connect_failures,
    countIf(kind = 'syn_timeout') AS syn_timeouts,
    (CAST([] AS Array(UInt16)), CAST([] AS Array(UInt64))) AS client_rtt,
    (CAST([] AS Array(UInt16)), CAST([] AS Array(UInt64))) AS server_rtt
FROM tcp_events
WHERE role = 'client' AND kind IN ('connect_failed', 'syn_timeout')
GROUP BY minute, client_namespace, client_workload, server_namespace, server_workload, server_service;

-- per zone pair (and service pair inside it): the zone matrix, triage, edges by zone
CREATE TABLE IF NOT EXISTS flows_by_zone_1m
(
    minute            DateTime('UTC'),
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
PARTITION BY toYYYYMM(minute)
ORDER BY (client_zone, server_zone, minute, client_namespace, client_workload, server_namespace, server_workload, path)
TTL minute + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_zone_1m_from_flows TO flows_by_zone_1m AS
SELECT
    toStartOfMinute(slot_start) AS minute,
    path,
    client_zone, server_zone, client_namespace, client_workload, server_namespace, server_workload,
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
GROUP BY minute, path, client_zone, server_zone, client_namespace, client_workload, server_namespace, server_workload;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_zone_1m_from_events TO flows_by_zone_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    '' AS path,
    zone AS client_zone, remote_zone AS server_zone, namespace AS client_namespace, workload AS client_workload, remote_namespace AS server_namespace, remote_workload AS server_workload,
    toUInt64(0) AS flows, toUInt64(0) AS flows_matched, toUInt64(0) AS flows_late, toUInt64(0) AS opened, toUInt64(0) AS closed,
    toUInt64(0) AS bytes_c2s, toUInt64(0) AS bytes_s2c, toUInt64(0) AS segs_c2s, toUInt64(0) AS segs_s2c,
    toUInt64(0) AS client_retrans, toUInt64(0) AS server_retrans, toUInt64(0) AS rto, toUInt64(0) AS resets,
    countIf(kind = 'connect_failed') AS connect_failures,
    countIf(kind = 'syn_timeout') AS syn_timeouts,
    (CAST([] AS Array(UInt16)), CAST([] AS Array(UInt64))) AS client_rtt,
    (CAST([] AS Array(UInt16)), CAST([] AS Array(UInt64))) AS server_rtt
FROM tcp_events
WHERE role = 'client' AND kind IN ('connect_failed', 'syn_timeout')
GROUP BY minute, client_zone, server_zone, client_namespace, client_workload, server_namespace, server_workload;

-- per node pair: triage naming the nodes, edges by node
CREATE TABLE IF NOT EXISTS flows_by_node_1m
(
    minute            DateTime('UTC'),
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
PARTITION BY toYYYYMM(minute)
ORDER BY (client_zone, server_zone, client_node, server_node, minute, client_namespace, client_workload, server_namespace, server_workload, path)
TTL minute + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_node_1m_from_flows TO flows_by_node_1m AS
SELECT
    toStartOfMinute(slot_start) AS minute,
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
GROUP BY minute, path, client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload;

CREATE MATERIALIZED VIEW IF NOT EXISTS flows_by_node_1m_from_events TO flows_by_node_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
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
GROUP BY minute, client_zone, server_zone, client_node, server_node, client_namespace, client_workload, server_namespace, server_workload;

-- DNS health per server and client workload: query counts, rcode mix, timeouts and a
-- latency histogram in the same bucket layout, so DNS latency percentiles are exact too.
CREATE TABLE IF NOT EXISTS dns_by_server_1m
(
    minute            DateTime('UTC'),
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
PARTITION BY toYYYYMM(minute)
ORDER BY (server_ip, server_name, minute, zone, namespace, workload, rcode)
TTL minute + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS dns_by_server_1m_from_queries TO dns_by_server_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    server_ip, server_name, zone, namespace, workload, rcode,
    count() AS queries,
    countIf(rcode = 'TIMEOUT') AS timeouts,
    sumMap(if(latency_us IS NULL, CAST([] AS Array(UInt16)), [latency_bucket]),
           if(latency_us IS NULL, CAST([] AS Array(UInt64)), [toUInt64(1)])) AS latency
FROM dns_queries
GROUP BY minute, server_ip, server_name, zone, namespace, workload, rcode;
