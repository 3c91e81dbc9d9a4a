-- Startup percentiles of each sealed qoe_series_rollup row, stored (issue 20). A series whose step
-- is the rollup's step (the 24 h series at 5 min) has one row per point, so the point's
-- nearest-rank startup p50 / p95 are those of the row's own samples: computed once here instead
-- of sorting every sample of the range on each call (2.3 M samples for the 24 h series by cdn at
-- 100 M events). The expressions are the catalog's (nearestRankSql over `p_startup_samples`,
-- contracts/metrics-catalog.ts; tests/integration/rollups.test.ts checks the text); DEFAULT, so an
-- insert that leaves them out (sealQoe) gets them computed from the row it writes, and a part
-- written before this migration computes them when read until MATERIALIZE has stored them.
-- Metric columns are `m_<metric>`: values of a catalog metric over the row, not partials.
ALTER TABLE {db}.qoe_series_rollup
  ADD COLUMN IF NOT EXISTS m_startup_p50_ms Nullable(UInt64) DEFAULT if(length(p_startup_samples) = 0, NULL, arrayElement(arraySort(p_startup_samples), toUInt64(greatest(1, ceil(0.5 * length(p_startup_samples)))))),
  ADD COLUMN IF NOT EXISTS m_startup_p95_ms Nullable(UInt64) DEFAULT if(length(p_startup_samples) = 0, NULL, arrayElement(arraySort(p_startup_samples), toUInt64(greatest(1, ceil(0.95 * length(p_startup_samples))))));

ALTER TABLE {db}.qoe_series_rollup MATERIALIZE COLUMN m_startup_p50_ms, MATERIALIZE COLUMN m_startup_p95_ms SETTINGS mutations_sync = 2;
