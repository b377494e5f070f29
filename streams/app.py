"""The Faust application: three agents chained by topics.

``features``   rf.iq.v1 → rf.features.v1        (one measurement per chunk)
``associate``  rf.features.v1 → rf.observations.v1  (re-keyed by channel, event-time windows
               kept in the changelogged table ``associate-windows``)
``localize``   rf.observations.v1 → rf.localizations.v1 (the classical RSS estimate, and the
               active ONNX model's beside it, each marked with its ``method``; the model is
               hot-reloaded from rf.models.v1 by :class:`heimdall.streams.models.ModelWatcher`;
               with ``HEIMDALL_TRACK`` each is also published tracked in time, method
               ``<method>+track``, the tracks kept in the changelogged table
               ``localize-tracks``: :mod:`heimdall.streams.track`)

Values travel as raw bytes and are decoded with :class:`heimdall.schemas.serde.Serde`, so that
an event that cannot be decoded or is invalid goes to the dead-letter topic untouched, with
the reason, and the agent goes on.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from heimdall.core.errors import EstimationError, InvalidEventError, SchemaError
from heimdall.core.settings import HeimdallSettings
from heimdall.ml.estimators.track import TrackConfig
from heimdall.schemas.dlq import dlq_headers
from heimdall.schemas.models import IqChunk, Measurement, Observation
from heimdall.schemas.serde import Serde
from heimdall.streams.associate import WindowPolicy, add_measurement, build_observation, new_state
from heimdall.streams.features import measure_chunk
from heimdall.streams.localize import localize_onnx, localize_rss
from heimdall.streams.models import ModelWatcher
from heimdall.streams.track import STREAM_GATE, track_key, track_localization

log = logging.getLogger(__name__)


def faust_broker_options(settings: HeimdallSettings) -> dict[str, Any]:
    """Faust/aiokafka options: the broker, its credentials, and group timeouts for a fast join.

    DESIGN.md measured that with the client defaults a worker waits ~30 s for its first event;
    with a 6 s session and rebalance timeout and a 1 s heartbeat it takes ~6 s.
    """
    k = settings.kafka
    servers = ";".join(f"heimdall://{s.strip()}" for s in (k.bootstrap_servers or "").split(","))
    opts: dict[str, Any] = {
        "broker": servers,
        "broker_session_timeout": k.session_timeout_ms / 1000.0,
        "broker_heartbeat_interval": 1.0,
        "broker_rebalance_timeout": k.session_timeout_ms / 1000.0,
    }
    if k.sasl_mechanism and k.sasl_username and k.sasl_password is not None:
        opts["broker_credentials"] = faust.SASLCredentials(
            username=k.sasl_username,
            password=k.sasl_password.get_secret_value(),
            mechanism=k.sasl_mechanism,
            ssl_context=None,
        )
    return opts


def create_app(settings: HeimdallSettings) -> faust.App:
    """Build the Faust app with its topics, table and agents."""
    app = faust.App(
        settings.streams_app_id,
        **faust_broker_options(settings),
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_compression_type=settings.kafka.compression_type,
        producer_max_request_size=8 * 1024 * 1024,
        # Small fetches keep partitions interleaved: with a 16 MB fetch a replayed backlog of
        # one partition (~1600 IQ chunks) was processed before the next partition's first,
        # putting receivers seconds apart and past the association's start-up grace.
        consumer_max_fetch_size=1024 * 1024,
        broker_max_poll_records=200,
        stream_wait_empty=False,
    )
    app.heimdall_fetch_max_wait_ms = settings.kafka.fetch_max_wait_ms  # type: ignore[attr-defined]
    t = settings.topics

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    iq_topic = raw_topic(t.iq)
    features_topic = raw_topic(t.features)
    observations_topic = raw_topic(t.observations)
    localizations_topic = raw_topic(t.localizations)
    dlq_topic = raw_topic(t.dlq)
    serde = Serde(settings.schema_registry.url)
    policy = WindowPolicy.from_seconds(settings.assoc_window_s, settings.assoc_min_receivers)
    max_samples = settings.max_chunk_samples
    windows = app.Table("associate-windows", default=new_state, partitions=settings.partitions)
    tracks = app.Table("localize-tracks", default=dict, partitions=settings.partitions)
    track_cfg = TrackConfig(
        accel_psd_m2_s3=settings.track_accel_psd,
        max_gap_s=settings.track_max_gap_s,
        gate=STREAM_GATE,
    )

    async def dead_letter(event: faust.types.EventT, reason: str, stage: str) -> None:
        msg = event.message
        log.warning("%s: to DLQ: %s", stage, reason)
        await dlq_topic.send(
            key=msg.key,
            value=msg.value,
            headers=dlq_headers(
                reason, topic=msg.topic, partition=msg.partition, offset=msg.offset, stage=stage
            ),
        )

    @app.agent(iq_topic, name="features")
    async def features(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                chunk = serde.decode(event.value, expect=IqChunk)
                chunk.validate(max_samples)
                m = measure_chunk(chunk)
            except (SchemaError, InvalidEventError) as exc:
                await dead_letter(event, str(exc), "features")
                continue
            await features_topic.send(
                key=m.receiver_id.encode(), value=serde.encode(m), timestamp=m.t_ns / 1e9
            )

    def channel_key(value: bytes) -> bytes:
        try:
            return serde.decode(value, expect=Measurement).channel_id.encode()
        except SchemaError:
            return b"\x00undecodable"  # decoded again, and dead-lettered, in the agent

    @app.agent(features_topic, name="associate")
    async def associate(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.group_by(channel_key, name="channel").events():
            try:
                m = serde.decode(event.value, expect=Measurement)
            except SchemaError as exc:
                await dead_letter(event, str(exc), "associate")
                continue
            if not m.detected:
                continue
            result = add_measurement(windows[m.channel_id], m, policy)
            windows[m.channel_id] = result.state
            if result.late:
                await dead_letter(
                    event, f"late: window of t_ns={m.t_ns} already closed", "associate"
                )
            for k, members in result.closed:
                obs = build_observation(m.channel_id, k, members, policy)
                if obs is not None:
                    await observations_topic.send(
                        key=obs.channel_id.encode(),
                        value=serde.encode(obs),
                        timestamp=obs.window_end_ns / 1e9,
                    )

    watcher = ModelWatcher(settings, serde, settings.model_name)

    @app.task
    async def watch_models() -> None:
        watcher.start()

    @app.agent(observations_topic, name="localize")
    async def localize(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                obs = serde.decode(event.value, expect=Observation)
            except SchemaError as exc:
                await dead_letter(event, str(exc), "localize")
                continue
            estimates = []
            try:
                estimates.append(localize_rss(obs))
            except EstimationError as exc:
                await dead_letter(event, f"rss-ml: {exc}", "localize")
            model = watcher.active
            if model is not None:
                estimates.append(localize_onnx(obs, model))
            if settings.track:
                for loc in list(estimates):
                    key = track_key(loc)
                    state, tracked = track_localization(loc, tracks[key], track_cfg)
                    if tracked is not None:
                        tracks[key] = state
                        estimates.append(tracked)
            for loc in estimates:
                await localizations_topic.send(
                    key=loc.channel_id.encode(), value=serde.encode(loc), timestamp=loc.t_ns / 1e9
                )

    return app
