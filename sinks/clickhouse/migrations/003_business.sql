-- Business KPIs (DOMAIN §4). One-minute windows written by the business processor; hour and day
-- roll-ups are views over them. Rows are partial aggregates per source partition: sum them.
-- Money is in USD micro-dollars (Int64) so sums are exact and independent of order.

CREATE TABLE IF NOT EXISTS {db}.kpi_payments_1m (
  window_start DateTime('UTC'),
  method LowCardinality(String),
  plan LowCardinality(String),
  og_tier UInt8,
  country LowCardinality(String),
  attempts UInt64,
  succeeded UInt64,
  failed UInt64,
  gross_usd_micros Int64,
  refunds_usd_micros Int64,
  chargebacks_usd_micros Int64,
  net_usd_micros Int64,
  topups UInt64,
  topup_usd_micros Int64,
  is_final UInt8,
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (window_start, method, plan, og_tier, country, src_topic, src_partition);

CREATE TABLE IF NOT EXISTS {db}.kpi_gifts_1m (
  window_start DateTime('UTC'),
  creator_id String,
  sender_account_id String,
  gifts UInt64,
  quantity UInt64,
  coins UInt64,
  value_usd_micros Int64,
  is_final UInt8,
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (window_start, creator_id, sender_account_id, src_topic, src_partition);

-- Distinct counts are made mergeable by storing the set itself: one row per (hour, account,
-- source partition) with what the account did. Any roll-up (hour, day, 30 days) counts distinct
-- accounts at query time with uniqExact, so replays and partial rows never double count.
CREATE TABLE IF NOT EXISTS {db}.account_activity_1h (
  hour DateTime('UTC'),
  account_id String,
  played UInt8,
  paid UInt8,
  gifted UInt8,
  net_usd_micros Int64,
  gift_usd_micros Int64,
  is_final UInt8,
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (hour, account_id, src_topic, src_partition);

CREATE VIEW IF NOT EXISTS {db}.kpi_payments_1h AS
SELECT toStartOfHour(m.window_start) AS hour, m.method AS method, m.plan AS plan, m.og_tier AS og_tier, m.country AS country,
  sum(m.attempts) AS attempts, sum(m.succeeded) AS succeeded, sum(m.failed) AS failed,
  sum(m.gross_usd_micros) / 1e6 AS gross_usd, sum(m.refunds_usd_micros) / 1e6 AS refunds_usd,
  sum(m.chargebacks_usd_micros) / 1e6 AS chargebacks_usd, sum(m.net_usd_micros) / 1e6 AS net_usd,
  sum(m.topups) AS topups, sum(m.topup_usd_micros) / 1e6 AS topup_usd,
  if(sum(m.attempts) = 0, 0, sum(m.failed) / sum(m.attempts)) AS failure_rate
FROM {db}.kpi_payments_1m AS m FINAL
GROUP BY hour, method, plan, og_tier, country;

CREATE VIEW IF NOT EXISTS {db}.kpi_payments_1d AS
SELECT toDate(m.window_start) AS day, m.method AS method, m.plan AS plan, m.og_tier AS og_tier, m.country AS country,
  sum(m.attempts) AS attempts, sum(m.succeeded) AS succeeded, sum(m.failed) AS failed,
  sum(m.gross_usd_micros) / 1e6 AS gross_usd, sum(m.refunds_usd_micros) / 1e6 AS refunds_usd,
  sum(m.chargebacks_usd_micros) / 1e6 AS chargebacks_usd, sum(m.net_usd_micros) / 1e6 AS net_usd,
  sum(m.topups) AS topups, sum(m.topup_usd_micros) / 1e6 AS topup_usd,
  if(sum(m.attempts) = 0, 0, sum(m.failed) / sum(m.attempts)) AS failure_rate
FROM {db}.kpi_payments_1m AS m FINAL
GROUP BY day, method, plan, og_tier, country;

-- One row per hour with every headline business KPI.
CREATE VIEW IF NOT EXISTS {db}.kpi_business_1h AS
WITH
  pay AS (
    SELECT toStartOfHour(window_start) AS hour, sum(attempts) AS attempts, sum(failed) AS failed,
      sum(gross_usd_micros) AS gross, sum(refunds_usd_micros) AS refunds, sum(chargebacks_usd_micros) AS chargebacks,
      sum(net_usd_micros) AS net, sum(topups) AS topups, sum(topup_usd_micros) AS topup
    FROM {db}.kpi_payments_1m FINAL GROUP BY hour),
  gift AS (
    SELECT toStartOfHour(window_start) AS hour, sum(gifts) AS gifts, sum(coins) AS coins, sum(value_usd_micros) AS gift_value
    FROM {db}.kpi_gifts_1m FINAL GROUP BY hour),
  act AS (
    SELECT hour, count() AS active_accounts, countIf(net > 0) AS paying_accounts
    FROM (SELECT hour, account_id, sum(net_usd_micros) AS net FROM {db}.account_activity_1h FINAL GROUP BY hour, account_id)
    GROUP BY hour)
SELECT
  act.hour AS hour,
  pay.gross / 1e6 AS gross_usd, pay.refunds / 1e6 AS refunds_usd, pay.chargebacks / 1e6 AS chargebacks_usd,
  pay.net / 1e6 AS revenue_usd, pay.topups AS topups, pay.topup / 1e6 AS topup_usd,
  if(pay.attempts = 0, 0, pay.failed / pay.attempts) AS payment_failure_rate,
  gift.gifts AS gifts, gift.coins AS gift_coins, gift.gift_value / 1e6 AS gift_value_usd,
  act.active_accounts AS active_accounts, act.paying_accounts AS paying_accounts,
  if(act.active_accounts = 0, 0, pay.net / 1e6 / act.active_accounts) AS arpu_usd,
  if(act.paying_accounts = 0, 0, pay.net / 1e6 / act.paying_accounts) AS arppu_usd,
  if(act.active_accounts = 0, 0, act.paying_accounts / act.active_accounts) AS payer_rate
FROM act
LEFT JOIN pay ON pay.hour = act.hour
LEFT JOIN gift ON gift.hour = act.hour;

-- Growth versus the previous hour and versus the same hour over the previous 7 days.
CREATE VIEW IF NOT EXISTS {db}.kpi_business_growth_1h AS
SELECT hour, revenue_usd, active_accounts, payer_rate, payment_failure_rate,
  lagInFrame(revenue_usd, 1) OVER (ORDER BY hour ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev_hour_revenue_usd,
  avg(revenue_usd) OVER (PARTITION BY toHour(hour) ORDER BY toRelativeDayNum(hour) RANGE BETWEEN 7 PRECEDING AND 1 PRECEDING) AS same_hour_7d_avg_revenue_usd,
  avg(payer_rate) OVER (PARTITION BY toHour(hour) ORDER BY toRelativeDayNum(hour) RANGE BETWEEN 7 PRECEDING AND 1 PRECEDING) AS same_hour_7d_avg_payer_rate,
  if(prev_hour_revenue_usd = 0, NULL, revenue_usd / prev_hour_revenue_usd - 1) AS growth_vs_prev_hour,
  if(same_hour_7d_avg_revenue_usd = 0, NULL, revenue_usd / same_hour_7d_avg_revenue_usd - 1) AS growth_vs_7d_same_hour
FROM {db}.kpi_business_1h;

CREATE VIEW IF NOT EXISTS {db}.kpi_active_1d AS
SELECT toDate(hour) AS day, uniqExact(account_id) AS dau,
  uniqExactIf(account_id, paid = 1) AS paying_accounts
FROM {db}.account_activity_1h FINAL
GROUP BY day;

-- Top creators, gifters per creator and gift concentration (share of value from the top 20 %
-- of gifters, by value) per day.
CREATE VIEW IF NOT EXISTS {db}.kpi_creator_gifts_1d AS
SELECT day, creator_id, sum(v) / 1e6 AS gift_value_usd, sum(c) AS coins, sum(g) AS gifts, count() AS gifters,
  if(sum(v) = 0, 0, arraySum(arraySlice(arrayReverseSort(groupArray(v)), 1, toUInt32(ceil(count() * 0.2)))) / sum(v)) AS top20_gifter_share
FROM (
  SELECT toDate(window_start) AS day, creator_id, sender_account_id, sum(value_usd_micros) AS v, sum(coins) AS c, sum(gifts) AS g
  FROM {db}.kpi_gifts_1m FINAL GROUP BY day, creator_id, sender_account_id)
GROUP BY day, creator_id;
