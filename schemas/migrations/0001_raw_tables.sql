-- Raw tables: one row per connection per slot, per TCP event, per DNS query.
-- Labels are LowCardinality: a cluster has few distinct pods/services/zones, and these
-- columns are in every GROUP BY the API runs. RTT histograms are the sparse form of the
-- fixed log-linear layout (schemas/src/histogram.ts): bucket indexes and their counts,
-- which sumMap() adds across rows and rollups without losing bucket precision.

CREATE TABLE IF NOT EXISTS tcp_flows
(
    slot_start        DateTime64(3, 'UTC'),
    slot_ms           UInt32,
    conn_key          String,
    matched           Bool COMMENT 'both ends were instrumented and met',
    late              Bool COMMENT 'arrived after the matching watermark',
    path              LowCardinality(String) COMMENT 'network, loopback, same_pod, same_node',
    client_ip         String,
    client_port       UInt16,
    server_ip         String,
    server_port       UInt16,
    service_ip        Nullable(String) COMMENT 'the address the client dialled when NAT translated it',
    client_node       LowCardinality(String),
    client_zone       LowCardinality(String),
    client_namespace  LowCardinality(String),
    client_workload   LowCardinality(String),
    client_pod        LowCardinality(String),
    client_comm       LowCardinality(String),
    server_node       LowCardinality(String),
    server_zone       LowCardinality(String),
    server_namespace  LowCardinality(String),
    server_workload   LowCardinality(String),
    server_service    LowCardinality(String),
    server_pod        LowCardinality(String),
    server_comm       LowCardinality(String),
    bytes_c2s         UInt64,
    bytes_s2c         UInt64,
    segs_c2s          UInt64,
    segs_s2c          UInt64,
    client_retrans    UInt64,
    server_retrans    UInt64,
    client_rto        UInt32,
    server_rto        UInt32,
    resets_by_client  UInt32,
    resets_by_server  UInt32,
    client_srtt_us    UInt32,
    server_srtt_us    UInt32,
    client_rtt_buckets Array(UInt16),
    client_rtt_counts  Array(UInt64),
    server_rtt_buckets Array(UInt16),
    server_rtt_counts  Array(UInt64),
    opened            Bool,
    closed            Bool,
    attrs             Map(LowCardinality(String), String) COMMENT 'extra per-side attributes (pid, cgroup, container)'
)
ENGINE = MergeTree
PARTITION BY toDate(slot_start)
ORDER BY (client_namespace, client_workload, server_namespace, server_workload, slot_start, conn_key)
TTL toDateTime(slot_start) + INTERVAL 7 DAY;

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
    service_ip        Nullable(String),
    node              LowCardinality(String),
    zone              LowCardinality(String),
    namespace         LowCardinality(String),
    workload          LowCardinality(String),
    pod               LowCardinality(String),
    comm              LowCardinality(String),
    remote_node       LowCardinality(String),
    remote_zone       LowCardinality(String),
    remote_namespace  LowCardinality(String),
    remote_workload   LowCardinality(String),
    remote_name       String COMMENT 'service, pod or external:<dns name> of the remote'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (namespace, workload, ts)
TTL toDateTime(ts) + INTERVAL 14 DAY;

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
    answers           Array(String),
    ttl_min_s         Nullable(UInt32),
    node              LowCardinality(String),
    zone              LowCardinality(String),
    namespace         LowCardinality(String),
    workload          LowCardinality(String),
    pod               LowCardinality(String),
    comm              LowCardinality(String),
    server_name       LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (server_ip, qname, ts)
TTL toDateTime(ts) + INTERVAL 7 DAY;
