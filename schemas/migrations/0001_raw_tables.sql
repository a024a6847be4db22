-- Raw tables: one row per connection per slot, per TCP event, per DNS query.
-- Labels are LowCardinality: a cluster has few distinct pods/services/zones, and these
-- columns are in every GROUP BY the API runs. RTT histograms are the sparse form of the
-- fixed log-linear layout (schemas/src/histogram.ts): bucket indexes and their counts,
-- which sumMap() adds across rows and rollups without losing bucket precision.
--
-- Every table the analyzer inserts into keeps a non-replicated deduplication window: its
-- inserts carry a token derived from the Kafka offsets they came from, and a replay after
-- a crash between insert and offset commit must be dropped, not stored twice. Without the
-- window (default 0 on a plain MergeTree) the token is silently ignored.
--
-- Codecs: T64 strips the unused high bits of counters and RTTs, Delta turns the increasing
-- bucket indexes of a sparse histogram into small steps; ZSTD then gets flow rows to a few
-- dozen bytes on disk (bench/RESULTS.md).

CREATE TABLE IF NOT EXISTS tcp_flows
(
    slot_start        DateTime64(3, 'UTC'),
    slot_ms           UInt32,
    -- Derived, not stored: unique per row and incompressible, it would cost more than any other column.
    conn_key          String ALIAS concat(client_ip, ':', toString(client_port), '-', server_ip, ':', toString(server_port)),
    observed          Enum8('client' = 1, 'server' = 2, 'both' = 3) COMMENT 'which ends were instrumented and reported',
    matched           Bool ALIAS observed = 'both',
    late              Bool COMMENT 'arrived after the matching watermark had passed its slot',
    path              LowCardinality(String) COMMENT 'network, same_node, same_pod, loopback',
    client_ip         String CODEC(ZSTD(3)),
    client_port       UInt16 CODEC(T64, ZSTD(3)),
    server_ip         String CODEC(ZSTD(3)),
    server_port       UInt16,
    service_ip        String COMMENT 'the address the client dialled when NAT translated it, else empty',
    client_node       LowCardinality(String),
    client_zone       LowCardinality(String),
    client_namespace  LowCardinality(String),
    client_workload   LowCardinality(String) COMMENT 'workload, else external:<dns name>, else the bare IP',
    client_service    LowCardinality(String),
    client_pod        LowCardinality(String),
    client_comm       LowCardinality(String),
    server_node       LowCardinality(String),
    server_zone       LowCardinality(String),
    server_namespace  LowCardinality(String),
    server_workload   LowCardinality(String) COMMENT 'workload, else external:<dns name>, else the bare IP',
    server_service    LowCardinality(String),
    server_pod        LowCardinality(String),
    server_comm       LowCardinality(String),
    bytes_c2s         UInt64 CODEC(T64, ZSTD(3)),
    bytes_s2c         UInt64 CODEC(T64, ZSTD(3)),
    segs_c2s          UInt64 CODEC(T64, ZSTD(3)),
    segs_s2c          UInt64 CODEC(T64, ZSTD(3)),
    client_retrans    UInt64 CODEC(T64, ZSTD(3)),
    server_retrans    UInt64 CODEC(T64, ZSTD(3)),
    client_rto        UInt32,
    server_rto        UInt32,
    resets_by_client  UInt32,
    resets_by_server  UInt32,
    client_srtt_us    UInt32 CODEC(T64, ZSTD(3)),
    server_srtt_us    UInt32 CODEC(T64, ZSTD(3)),
    client_min_rtt_us UInt32 CODEC(T64, ZSTD(3)),
    server_min_rtt_us UInt32 CODEC(T64, ZSTD(3)),
    client_rtt_buckets Array(UInt16) CODEC(Delta, ZSTD(3)),
    client_rtt_counts  Array(UInt32) CODEC(T64, ZSTD(3)),
    server_rtt_buckets Array(UInt16) CODEC(Delta, ZSTD(3)),
    server_rtt_counts  Array(UInt32) CODEC(T64, ZSTD(3)),
    opened            Bool,
    closed            Bool,
    attrs             Map(LowCardinality(String), String) COMMENT 'extra per-side attributes (pid, cgroup, container)'
)
ENGINE = MergeTree
PARTITION BY toDate(slot_start)
-- The API reads raw flows only for pod-pair drill-downs of one service pair over a window.
ORDER BY (client_namespace, client_workload, server_namespace, server_workload, slot_start, server_ip, client_ip)
TTL toDateTime(slot_start) + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tcp_events
(
    ts                DateTime64(3, 'UTC'),
    kind              LowCardinality(String),
    errno             Nullable(UInt16),
    errno_class       LowCardinality(Nullable(String)),
    syn_retrans       UInt8,
    role              LowCardinality(String),
    local_ip          String,
    local_port        UInt16,
    remote_ip         String,
    remote_port       UInt16,
    service_ip        String,
    node              LowCardinality(String),
    zone              LowCardinality(String),
    namespace         LowCardinality(String),
    workload          LowCardinality(String),
    pod               LowCardinality(String),
    comm              LowCardinality(String),
    remote_node       LowCardinality(String),
    remote_zone       LowCardinality(String),
    remote_namespace  LowCardinality(String),
    remote_workload   LowCardinality(String) COMMENT 'workload, else external:<dns name>, else the bare IP',
    remote_service    LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (namespace, workload, ts)
TTL toDateTime(ts) + INTERVAL 14 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS dns_queries
(
    ts                DateTime64(3, 'UTC'),
    client_ip         String,
    client_port       UInt16,
    server_ip         String,
    server_port       UInt16,
    transport         LowCardinality(String),
    qname             String,
    qtype             LowCardinality(String),
    rcode             LowCardinality(String) COMMENT 'NOERROR, NXDOMAIN, SERVFAIL, ... or TIMEOUT',
    latency_us        Nullable(UInt32),
    latency_bucket    UInt16 COMMENT 'bucket of latency_us in the RTT histogram layout, for rollups',
    answers           Array(String),
    ttl_min_s         Nullable(UInt32),
    node              LowCardinality(String),
    zone              LowCardinality(String),
    namespace         LowCardinality(String),
    workload          LowCardinality(String),
    pod               LowCardinality(String),
    comm              LowCardinality(String),
    server_name       LowCardinality(String) COMMENT 'the DNS server as a workload/service when it is one of ours'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (server_ip, qname, ts)
TTL toDateTime(ts) + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 10000;
