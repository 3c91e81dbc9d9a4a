-- Raw tables: Avro enums become Enum8 of their symbols, other strings plain String (were
-- LowCardinality(String), about 5x the insert CPU per value; see sinks/clickhouse/raw-ddl.ts).
-- 001 creates these types on a fresh database; this brings tables created before to the same.
-- Changing a type to the type it has is a no-op, so the file can run again.

ALTER TABLE {db}.raw_playback
  MODIFY COLUMN event_type Enum8('view_start' = 1, 'first_frame' = 2, 'pause' = 3, 'resume' = 4, 'seek_start' = 5, 'seek_end' = 6, 'rebuffer_start' = 7, 'rebuffer_end' = 8, 'rendition_change' = 9, 'error' = 10, 'heartbeat' = 11, 'view_end' = 12),
  MODIFY COLUMN player_state Enum8('starting' = 1, 'playing' = 2, 'paused' = 3, 'seeking' = 4, 'rebuffering' = 5, 'ended' = 6, 'error' = 7),
  MODIFY COLUMN stream_type Enum8('vod' = 1, 'live' = 2),
  MODIFY COLUMN device_category String,
  MODIFY COLUMN os String,
  MODIFY COLUMN app_version String,
  MODIFY COLUMN cdn String,
  MODIFY COLUMN country String,
  MODIFY COLUMN error_code Nullable(String),
  MODIFY COLUMN error_severity Nullable(Enum8('fatal' = 1, 'warning' = 2)),
  MODIFY COLUMN end_reason Nullable(String),
  MODIFY COLUMN src_topic String;

ALTER TABLE {db}.raw_payments
  MODIFY COLUMN kind Enum8('subscription_start' = 1, 'renewal' = 2, 'upgrade' = 3, 'downgrade' = 4, 'cancel' = 5, 'coin_topup' = 6, 'refund' = 7, 'chargeback' = 8),
  MODIFY COLUMN status Enum8('succeeded' = 1, 'failed' = 2),
  MODIFY COLUMN currency String,
  MODIFY COLUMN method Enum8('card' = 1, 'paypal' = 2, 'esewa' = 3, 'khalti' = 4, 'apple_iap' = 5, 'google_play' = 6),
  MODIFY COLUMN plan Enum8('free' = 1, 'basic' = 2, 'standard' = 3, 'premium' = 4),
  MODIFY COLUMN failure_code Nullable(String),
  MODIFY COLUMN country String,
  MODIFY COLUMN src_topic String;

ALTER TABLE {db}.raw_gifts
  MODIFY COLUMN gift_type String,
  MODIFY COLUMN src_topic String;

ALTER TABLE {db}.raw_moderation
  MODIFY COLUMN event_type Enum8('report_created' = 1, 'action_taken' = 2, 'appeal_created' = 3, 'appeal_decided' = 4),
  MODIFY COLUMN target_type Enum8('stream' = 1, 'message' = 2, 'account' = 3, 'content' = 4),
  MODIFY COLUMN policy Enum8('spam' = 1, 'harassment' = 2, 'hate' = 3, 'nudity' = 4, 'violence' = 5, 'self_harm' = 6, 'fraud' = 7, 'copyright' = 8, 'other' = 9),
  MODIFY COLUMN severity Enum8('low' = 1, 'medium' = 2, 'high' = 3, 'critical' = 4),
  MODIFY COLUMN detection_source Enum8('user_report' = 1, 'automated' = 2, 'staff' = 3),
  MODIFY COLUMN action_type Nullable(Enum8('warn' = 1, 'remove' = 2, 'mute' = 3, 'suspend_stream' = 4, 'ban_account' = 5, 'none' = 6)),
  MODIFY COLUMN outcome Nullable(Enum8('upheld' = 1, 'reversed' = 2)),
  MODIFY COLUMN src_topic String;

ALTER TABLE {db}.raw_jira
  MODIFY COLUMN webhook_event Enum8('issue_created' = 1, 'issue_updated' = 2, 'issue_deleted' = 3),
  MODIFY COLUMN project_key String,
  MODIFY COLUMN issue_type String,
  MODIFY COLUMN status String,
  MODIFY COLUMN status_category String,
  MODIFY COLUMN priority String,
  MODIFY COLUMN severity Nullable(String),
  MODIFY COLUMN src_topic String;

ALTER TABLE {db}.raw_catalog
  MODIFY COLUMN genre String,
  MODIFY COLUMN stream_type Enum8('vod' = 1, 'live' = 2),
  MODIFY COLUMN src_topic String;
