-- Rollups of the gifts of closed hours for /v1/creators (issue 20), sealed with
-- kpi_business_1h_closed by sinks/clickhouse/rollups.ts (sealBusiness, name 'gifts_1h' in
-- rollup_sealed_business): INSERT … SELECT from the FINAL kpi_gifts_1m rows of hours closed in
-- event time, so each closed hour is summed once and never changes. The top creators read the
-- page's creators from kpi_gifts_creator_1h (one row per hour and creator instead of one per
-- minute, creator and sender) and the page's per-sender sums from kpi_gifts_sender_1h, sorted by
-- creator so that a page of creators reads only their rows; kpi_gifts_1m answers the range's
-- ragged ends and open hours (docs/api.md). Integer sums: the same totals as from kpi_gifts_1m.
-- Emptied with the business tables by a replay (jobTables) and rebuilt as its watermark advances.

CREATE TABLE IF NOT EXISTS {db}.kpi_gifts_creator_1h (
  hour DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
  creator_id String CODEC(ZSTD(1)),
  gifts UInt64,
  coins UInt64,
  value_usd_micros Int64,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (hour, creator_id);

CREATE TABLE IF NOT EXISTS {db}.kpi_gifts_sender_1h (
  creator_id String CODEC(ZSTD(1)),
  hour DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
  sender_account_id String CODEC(ZSTD(1)),
  gifts UInt64,
  coins UInt64,
  value_usd_micros Int64,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (creator_id, hour, sender_account_id);
