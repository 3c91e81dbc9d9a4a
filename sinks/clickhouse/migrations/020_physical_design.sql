-- Physical design (issue 21 item 3), docs/deploy.md.

-- Column codecs: time columns as deltas (DoubleDelta where the column leads the
-- sorting key and so grows within a part, Delta elsewhere) then ZSTD; identifiers, payloads and
-- sample arrays in ZSTD (level 3 for the JSON payloads). A codec change is metadata: new parts
-- are written with it and existing parts are recompressed as they merge (no rewrite at migration
-- time), and rerunning a statement sets the same codec again. Column types are unchanged: the
-- raw tables keep the types their Avro schemas give (raw-ddl.ts), the derived tables already use
-- LowCardinality for their low-cardinality dimensions (cdn, device, country, event types, ...).

ALTER TABLE {db}.raw_playback
  MODIFY COLUMN event_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN received_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN ingested_at CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN event_id CODEC(ZSTD(1)),
  MODIFY COLUMN src_offset CODEC(ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1)),
  MODIFY COLUMN view_id CODEC(ZSTD(1)),
  MODIFY COLUMN viewer_id CODEC(ZSTD(1)),
  MODIFY COLUMN account_id CODEC(ZSTD(1)),
  MODIFY COLUMN content_id CODEC(ZSTD(1)),
  MODIFY COLUMN playhead_ms CODEC(Delta, ZSTD(1));

ALTER TABLE {db}.raw_payments
  MODIFY COLUMN event_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN received_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN ingested_at CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN event_id CODEC(ZSTD(1)),
  MODIFY COLUMN src_offset CODEC(ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1)),
  MODIFY COLUMN payment_id CODEC(ZSTD(1)),
  MODIFY COLUMN account_id CODEC(ZSTD(1));

ALTER TABLE {db}.raw_gifts
  MODIFY COLUMN event_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN received_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN ingested_at CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN event_id CODEC(ZSTD(1)),
  MODIFY COLUMN src_offset CODEC(ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1)),
  MODIFY COLUMN gift_id CODEC(ZSTD(1)),
  MODIFY COLUMN sender_account_id CODEC(ZSTD(1)),
  MODIFY COLUMN creator_id CODEC(ZSTD(1)),
  MODIFY COLUMN stream_id CODEC(ZSTD(1));

ALTER TABLE {db}.raw_moderation
  MODIFY COLUMN event_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN received_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN ingested_at CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN event_id CODEC(ZSTD(1)),
  MODIFY COLUMN src_offset CODEC(ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1)),
  MODIFY COLUMN case_id CODEC(ZSTD(1)),
  MODIFY COLUMN target_id CODEC(ZSTD(1));

ALTER TABLE {db}.raw_jira
  MODIFY COLUMN event_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN received_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN ingested_at CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN event_id CODEC(ZSTD(1)),
  MODIFY COLUMN src_offset CODEC(ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1)),
  MODIFY COLUMN summary CODEC(ZSTD(1)),
  MODIFY COLUMN raw_payload CODEC(ZSTD(3));

ALTER TABLE {db}.raw_catalog
  MODIFY COLUMN event_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN received_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN ingested_at CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN event_id CODEC(ZSTD(1)),
  MODIFY COLUMN src_offset CODEC(ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1)),
  MODIFY COLUMN title CODEC(ZSTD(1));

ALTER TABLE {db}.qoe_minute
  MODIFY COLUMN window_start CODEC(DoubleDelta, ZSTD(1)),
  MODIFY COLUMN content_id CODEC(ZSTD(1)),
  MODIFY COLUMN startup_ms_samples CODEC(ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1));

ALTER TABLE {db}.qoe_views
  MODIFY COLUMN view_id CODEC(ZSTD(1)),
  MODIFY COLUMN viewer_id CODEC(ZSTD(1)),
  MODIFY COLUMN account_id CODEC(ZSTD(1)),
  MODIFY COLUMN content_id CODEC(ZSTD(1)),
  MODIFY COLUMN creator_id CODEC(ZSTD(1)),
  MODIFY COLUMN view_start CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN view_end CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1));

ALTER TABLE {db}.kpi_payments_1m
  MODIFY COLUMN window_start CODEC(DoubleDelta, ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1));

ALTER TABLE {db}.kpi_gifts_1m
  MODIFY COLUMN window_start CODEC(DoubleDelta, ZSTD(1)),
  MODIFY COLUMN creator_id CODEC(ZSTD(1)),
  MODIFY COLUMN sender_account_id CODEC(ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1));

ALTER TABLE {db}.account_activity_1h
  MODIFY COLUMN hour CODEC(DoubleDelta, ZSTD(1)),
  MODIFY COLUMN account_id CODEC(ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1));

ALTER TABLE {db}.safety_events_1m
  MODIFY COLUMN window_start CODEC(DoubleDelta, ZSTD(1)),
  MODIFY COLUMN version CODEC(ZSTD(1));

ALTER TABLE {db}.late_events
  MODIFY COLUMN event_time CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN watermark CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN window_end CODEC(Delta, ZSTD(1)),
  MODIFY COLUMN event_id CODEC(ZSTD(1)),
  MODIFY COLUMN payload CODEC(ZSTD(3));

ALTER TABLE {db}.qoe_minute_rollup
  MODIFY COLUMN minutes CODEC(ZSTD(1));


-- late_events is ordered by source position (processor, topic, partition, offset: how replays
-- rewrite it), while every API answer counts a processor's late events by event_time range
-- (api/late.ts): a min-max index on event_time lets that count skip the granules of other times.
ALTER TABLE {db}.late_events ADD INDEX IF NOT EXISTS late_events_event_time event_time TYPE minmax GRANULARITY 1;

ALTER TABLE {db}.late_events MATERIALIZE INDEX late_events_event_time;
