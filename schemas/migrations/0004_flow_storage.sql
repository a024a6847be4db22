-- tcp_flows on disk: codecs chosen per column from measured sizes (bench/RESULTS.md,
-- bench/analyzer.bench.ts). Codec-only changes: no data is rewritten, existing parts keep
-- their codecs until merged, and every column keeps its name and type (the rollup views and
-- the API read them as they are).
--
-- attrs: six small per-side values per row under the same keys; ZSTD finds the repeats that
--   the default LZ4 misses (2.4 -> 0.6 bytes per row).
-- *_comm: a LowCardinality index per row, a handful of distinct process names (0.7 -> 0.4).
-- opened, closed, late: flags, mostly false; T64 packs them to bits (0.5 -> 0.1 each).
-- *_rtt_buckets: sorted bucket indexes; Delta across the concatenated arrays jumps at every
--   row boundary, T64 does not care (3.8 -> 3.4 per side).
-- client_port: rows sit by (server_ip, client_ip); successive connections of one client to
--   one server get successive ephemeral ports, so Delta leaves small steps.
ALTER TABLE tcp_flows
    MODIFY COLUMN attrs CODEC(ZSTD(9)),
    MODIFY COLUMN client_comm CODEC(ZSTD(1)),
    MODIFY COLUMN server_comm CODEC(ZSTD(1)),
    MODIFY COLUMN opened CODEC(T64, ZSTD(3)),
    MODIFY COLUMN closed CODEC(T64, ZSTD(3)),
    MODIFY COLUMN late CODEC(T64, ZSTD(3)),
    MODIFY COLUMN client_rtt_buckets CODEC(T64, ZSTD(3)),
    MODIFY COLUMN server_rtt_buckets CODEC(T64, ZSTD(3)),
    MODIFY COLUMN client_port CODEC(Delta, ZSTD(3));
