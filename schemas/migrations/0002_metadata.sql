-- Who is who, for SQL users to join on. The collector writes one row per object version;
-- ReplacingMergeTree keeps the latest, and ip_bindings keeps every interval an IP belonged
-- to an object, because pod IPs are reused and old flows must resolve to the pod of their time.

CREATE TABLE IF NOT EXISTS metadata_objects
(
    kind          LowCardinality(String),
    uid           String,
    version       String,
    observed_at   DateTime64(3, 'UTC'),
    deleted_at    Nullable(DateTime64(3, 'UTC')),
    namespace     LowCardinality(String),
    name          String,
    node          LowCardinality(String),
    zone          LowCardinality(String),
    region        LowCardinality(String),
    workload_kind LowCardinality(String),
    workload_name LowCardinality(String),
    labels        Map(String, String),
    body          String COMMENT 'the whole metadata record as JSON'
)
ENGINE = ReplacingMergeTree(observed_at)
ORDER BY (kind, uid);

CREATE TABLE IF NOT EXISTS ip_bindings
(
    ip            String,
    kind          LowCardinality(String),
    uid           String,
    namespace     LowCardinality(String),
    name          String,
    node          LowCardinality(String),
    zone          LowCardinality(String),
    workload_name LowCardinality(String),
    valid_from    DateTime64(3, 'UTC'),
    valid_to      Nullable(DateTime64(3, 'UTC')),
    observed_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(observed_at)
ORDER BY (ip, valid_from, kind, uid);
