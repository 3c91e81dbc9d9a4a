-- The creator of the gift rollups (migration 021) as LowCardinality(String) (issue 20). The top
-- creators' second query filters kpi_gifts_sender_1h by the page's creators (`creator_id IN
-- {ids}`) before its per-sender sums: with a plain String that filter hashed the creator string
-- of every row of the granules read, about 15 ms of the query's 62 ms on the 10 M bench data;
-- with a dictionary it is tested once per distinct creator of a part (62 -> 44 ms, same answer,
-- bench/RESULTS.md). A platform's creators number thousands to hundreds of thousands, each hour's
-- part holds those that received gifts in it: the cardinality LowCardinality is made for.
-- A key column may change to LowCardinality in place (same values, same sort order): a mutation
-- rewrites the parts, waited for here. Rerunning it is a no-op.
ALTER TABLE {db}.kpi_gifts_sender_1h MODIFY COLUMN creator_id LowCardinality(String) CODEC(ZSTD(1)) SETTINGS mutations_sync = 2;

ALTER TABLE {db}.kpi_gifts_creator_1h MODIFY COLUMN creator_id LowCardinality(String) CODEC(ZSTD(1)) SETTINGS mutations_sync = 2;
