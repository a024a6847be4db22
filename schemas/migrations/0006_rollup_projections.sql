-- Every API question is "this window": the service- and node-pair minute rollups are sorted
-- by pair first, and a pair holds only a few granules a day, so each granule spans hours and
-- a 15-minute window read most of the table (node pairs: about 800,000 rows to find 30,000 at
-- 50 million flows a day; bench/RESULTS.md). A projection sorted by minute lets ClickHouse read
-- just the window when no pair is given (services, triage, edges by node), while filters on
-- the leading pair still use the table's own order; ClickHouse picks whichever reads fewer
-- marks. The zone-pair and DNS rollups lead with a handful of zone pairs or servers, so their
-- order already keeps a window together.
--
-- AggregatingMergeTree only allows projections when merges rebuild them. MATERIALIZE builds
-- them for existing parts in the background (a mutation); new parts get them on insert.

ALTER TABLE flows_by_service_1m MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE flows_by_service_1m ADD PROJECTION IF NOT EXISTS by_minute (SELECT * ORDER BY minute);

ALTER TABLE flows_by_service_1m MATERIALIZE PROJECTION by_minute;

ALTER TABLE flows_by_node_1m MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE flows_by_node_1m ADD PROJECTION IF NOT EXISTS by_minute (SELECT * ORDER BY minute);

ALTER TABLE flows_by_node_1m MATERIALIZE PROJECTION by_minute;
