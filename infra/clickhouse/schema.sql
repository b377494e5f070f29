-- Heimdall history tables (ClickHouse / chDB). Applied by heimdall.infra.clickhouse.apply_schema;
-- every statement is idempotent (IF NOT EXISTS). `{db}` is replaced with the quoted database.
--
-- Idempotence: every table is a ReplacingMergeTree whose ORDER BY ends with event_id, and the
-- other ORDER BY columns and the partition are functions of the event itself, so a replayed
-- event collapses onto its first copy. Until a merge runs both copies are stored: read with
-- FINAL (SELECT count() FROM t FINAL counts distinct events).
-- Partitions are days of event time (ts, materialized from the event's nanosecond time).
-- Enums are LowCardinality(String) so that a new Avro symbol needs no ALTER.
-- ingested_at is the insert time (the sink's latency as seen from the store).

CREATE TABLE IF NOT EXISTS {db}.features
(
    event_id            UUID,
    chunk_id            UUID,
    receiver_id         LowCardinality(String),
    t_ns                Int64,
    ts                  DateTime64(9, 'UTC') MATERIALIZED fromUnixTimestamp64Nano(t_ns, 'UTC'),
    duration_s          Float64,
    clock               LowCardinality(String),
    lat_deg             Float64,
    lon_deg             Float64,
    alt_m               Float64,
    channel_id          LowCardinality(String),
    channel_freq_hz     Float64,
    channel_bw_hz       Float64,
    power_dbm           Float64,
    noise_floor_dbm_hz  Float64,
    snr_db              Float64,
    freq_offset_hz      Float64,
    occupied_bw_hz      Float64,
    detected            Bool,
    psd_dbm_hz          Array(Float32) CODEC(ZSTD(3)),
    psd_bin_hz          Float64,
    chunk_published_ns  Int64,
    published_ns        Int64,
    ingested_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (channel_id, receiver_id, t_ns, event_id);

CREATE TABLE IF NOT EXISTS {db}.observations
(
    event_id                   UUID,
    channel_id                 LowCardinality(String),
    channel_freq_hz            Float64,
    window_start_ns            Int64,
    window_end_ns              Int64,
    ts                         DateTime64(9, 'UTC')
                                   MATERIALIZED fromUnixTimestamp64Nano(window_start_ns, 'UTC'),
    n_members                  UInt16,
    members Nested
    (
        receiver_id            String,
        lat_deg                Float64,
        lon_deg                Float64,
        alt_m                  Float64,
        clock                  LowCardinality(String),
        t_ns                   Int64,
        power_dbm              Float64,
        power_std_db           Float64,
        snr_db                 Float64,
        noise_floor_dbm_hz     Float64,
        freq_offset_hz         Float64,
        n_measurements         UInt32,
        measurement_ids        Array(String)
    ),
    tdoa_pairs Nested
    (
        receiver_a             String,
        receiver_b             String,
        tdoa_s                 Float64,
        sigma_s                Float64
    ),
    latest_chunk_published_ns  Int64,
    upstream_latency_s         Float64,
    published_ns               Int64,
    ingested_at                DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (channel_id, window_start_ns, event_id);

CREATE TABLE IF NOT EXISTS {db}.localizations
(
    event_id              UUID,
    observation_id        UUID,
    channel_id            LowCardinality(String),
    t_ns                  Int64,
    ts                    DateTime64(9, 'UTC') MATERIALIZED fromUnixTimestamp64Nano(t_ns, 'UTC'),
    lat_deg               Float64,
    lon_deg               Float64,
    alt_m                 Float64,
    cov_ee_m2             Float64,
    cov_en_m2             Float64,
    cov_nn_m2             Float64,
    -- horizontal DRMS, metres: sqrt of the trace of the 2x2 covariance
    drms_m                Float64 MATERIALIZED sqrt(greatest(cov_ee_m2 + cov_nn_m2, 0)),
    method                LowCardinality(String),
    model_version         Nullable(String),
    n_receivers           UInt16,
    converged             Bool,
    params                Map(String, Float64),
    processing_latency_s  Float64,
    published_ns          Int64,
    ingested_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (channel_id, t_ns, event_id);

CREATE TABLE IF NOT EXISTS {db}.truth
(
    event_id          UUID,
    source_id         LowCardinality(String),
    t_ns              Int64,
    ts                DateTime64(9, 'UTC') MATERIALIZED fromUnixTimestamp64Nano(t_ns, 'UTC'),
    lat_deg           Float64,
    lon_deg           Float64,
    alt_m             Float64,
    channel_id        Nullable(String),
    freq_hz           Float64,
    tx_power_dbm      Nullable(Float64),
    waveform          LowCardinality(String),
    transmitting      Bool,
    velocity_enu_mps  Array(Float64),
    ingested_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (source_id, t_ns, event_id);
