-- tcp_flows stores each side's RTT histogram as one run of counts from its lowest occupied
-- bucket (`*_rtt_first_bucket`, `*_rtt_bucket_counts`, zeros for empty buckets in between)
-- instead of two parallel arrays of occupied buckets and their counts. The old names stay as
-- ALIAS columns computed from the run, so the rollup views, the API and SQL users read
-- `client_rtt_buckets` / `client_rtt_counts` exactly as before; only inserts change.
--
-- Why (bench/RESULTS.md, issue 6 storage): the bucket indexes were the second-largest thing
-- on disk (3.4 of 34.0 bytes per row and side, plus a second array-size stream). RTT samples of
-- one connection in one slot sit in neighbouring buckets, so a run needs no indexes and its
-- few zeros cost almost nothing after T64: 14.2 -> 9.6 bytes per row for both sides on the
-- bench's rows. Measured on synthetic spreads as well (outliers 8x-100x away from the body):
-- from 3% larger (a handful of samples spread over ~67 buckets) to 13-15% smaller.
--
-- Upgrading while older analyzers still insert the sparse arrays: until the last statement the
-- new columns default to the run computed from them, so those rows are converted as they
-- arrive; after it such inserts fail (the names are aliases) and are retried, uncommitted,
-- until that analyzer runs this version. Existing rows are rewritten once (the mutation is
-- waited for). Each statement may run again after an interruption, except the last once it
-- has succeeded: if the process died between it and recording the version, record 0008 in
-- schema_migrations by hand.
ALTER TABLE tcp_flows
    ADD COLUMN IF NOT EXISTS client_rtt_first_bucket UInt16
        DEFAULT if(empty(client_rtt_buckets), 0, client_rtt_buckets[1])
        CODEC(T64, ZSTD(3)) AFTER server_min_rtt_us,
    ADD COLUMN IF NOT EXISTS client_rtt_bucket_counts Array(UInt32)
        DEFAULT arrayMap(i -> if(indexOf(client_rtt_buckets, i) = 0, 0, client_rtt_counts[indexOf(client_rtt_buckets, i)]),
                         if(empty(client_rtt_buckets), [], range(client_rtt_buckets[1], client_rtt_buckets[-1] + 1)))
        CODEC(T64, ZSTD(3)) AFTER client_rtt_first_bucket,
    ADD COLUMN IF NOT EXISTS server_rtt_first_bucket UInt16
        DEFAULT if(empty(server_rtt_buckets), 0, server_rtt_buckets[1])
        CODEC(T64, ZSTD(3)) AFTER client_rtt_bucket_counts,
    ADD COLUMN IF NOT EXISTS server_rtt_bucket_counts Array(UInt32)
        DEFAULT arrayMap(i -> if(indexOf(server_rtt_buckets, i) = 0, 0, server_rtt_counts[indexOf(server_rtt_buckets, i)]),
                         if(empty(server_rtt_buckets), [], range(server_rtt_buckets[1], server_rtt_buckets[-1] + 1)))
        CODEC(T64, ZSTD(3)) AFTER server_rtt_first_bucket;

-- Writes the defaults into the parts that predate the columns (a re-run after the last
-- statement reads and writes the same values).
ALTER TABLE tcp_flows UPDATE
    client_rtt_first_bucket = client_rtt_first_bucket,
    client_rtt_bucket_counts = client_rtt_bucket_counts,
    server_rtt_first_bucket = server_rtt_first_bucket,
    server_rtt_bucket_counts = server_rtt_bucket_counts
WHERE true
SETTINGS mutations_sync = 2;

-- One ALTER, so no insert sees the defaults gone before the aliases exist. MODIFY, not DROP +
-- ADD: ClickHouse refuses to drop a column a materialized view reads. An alias has no codec.
-- The old arrays' files stay in existing parts until those merge or expire (TTL).
ALTER TABLE tcp_flows
    MODIFY COLUMN client_rtt_first_bucket REMOVE DEFAULT,
    MODIFY COLUMN client_rtt_bucket_counts REMOVE DEFAULT,
    MODIFY COLUMN server_rtt_first_bucket REMOVE DEFAULT,
    MODIFY COLUMN server_rtt_bucket_counts REMOVE DEFAULT,
    MODIFY COLUMN client_rtt_buckets REMOVE CODEC,
    MODIFY COLUMN client_rtt_counts REMOVE CODEC,
    MODIFY COLUMN server_rtt_buckets REMOVE CODEC,
    MODIFY COLUMN server_rtt_counts REMOVE CODEC,
    MODIFY COLUMN client_rtt_buckets Array(UInt16)
        ALIAS arrayFilter((b, c) -> c > 0, arrayMap(i -> toUInt16(client_rtt_first_bucket + i - 1), arrayEnumerate(client_rtt_bucket_counts)), client_rtt_bucket_counts),
    MODIFY COLUMN client_rtt_counts Array(UInt32) ALIAS arrayFilter(c -> c > 0, client_rtt_bucket_counts),
    MODIFY COLUMN server_rtt_buckets Array(UInt16)
        ALIAS arrayFilter((b, c) -> c > 0, arrayMap(i -> toUInt16(server_rtt_first_bucket + i - 1), arrayEnumerate(server_rtt_bucket_counts)), server_rtt_bucket_counts),
    MODIFY COLUMN server_rtt_counts Array(UInt32) ALIAS arrayFilter(c -> c > 0, server_rtt_bucket_counts);
