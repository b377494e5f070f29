"""The Faust application: three agents chained by topics, each working on batches of events.

``features``   rf.iq.v1 → rf.features.v1        (one measurement per chunk, the DSP vectorised
               over the batch; measurements are keyed by **channel id** where they are made, so
               the association reads them without a repartition topic and decodes each once)
``associate``  rf.features.v1 → rf.observations.v1  (event-time windows per channel, kept in
               the changelogged table ``associate-windows``)
``localize``   rf.observations.v1 → rf.localizations.v1 (the classical RSS estimate, and the
               active ONNX model's beside it, each marked with its ``method``; the model is
               hot-reloaded from rf.models.v1 by :class:`heimdall.streams.model_watch.ModelWatcher`;
               with ``HEIMDALL_TRACK`` each is also published tracked in time, method
               ``<method>+track``, the tracks kept in the changelogged table
               ``localize-tracks``: :mod:`heimdall.streams.track`)

Values travel as raw bytes and are decoded with :class:`heimdall.schemas.serde.Serde`, so that
an event that cannot be decoded or is invalid goes to the dead-letter topic untouched, with
the reason, and the agent goes on.

Each agent takes what is waiting for it, up to ``HEIMDALL_BATCH_MAX_EVENTS`` events, and sends
the batch's outputs; the batch's events are acked once the broker has all of them, and Faust
commits acked offsets every half second (:mod:`heimdall.streams.batching`).

All measurements of one channel meet in one associate task: that is also where GPS-timed IQ
of one emission from several receivers can meet for in-stream TDOA (carried with the
measurement of a GPS-clocked receiver, keyed by the same channel).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
from faust.types import TP

from heimdall.core import metrics
from heimdall.core.errors import EstimationError, InvalidEventError, SchemaError
from heimdall.core.settings import HeimdallSettings
from heimdall.ml.estimators.track import TrackConfig
from heimdall.ml.tdoa.calibration import PooledVariance
from heimdall.schemas.models import IqChunk, Localization, Measurement, Observation
from heimdall.schemas.serde import Serde
from heimdall.streams.associate import (
    WindowPolicy,
    add_measurement,
    build_observation,
    close_ready,
    new_state,
)
from heimdall.streams.batching import (
    Batch,
    DeadLetter,
    Record,
    batches,
    current_event,
    produce_batch,
)
from heimdall.streams.features import measure_chunks
from heimdall.streams.localize import (
    MIN_HYBRID_RSS,
    localize_hybrid,
    localize_onnx,
    localize_rss,
    localize_tdoa,
)
from heimdall.streams.model_watch import ModelWatcher
from heimdall.streams.tdoa import TdoaBlock, TdoaSessions, is_tdoa_snippet, tdoa_observation
from heimdall.streams.track import STREAM_GATE, track_key, track_localization

log = logging.getLogger(__name__)

#: How often Faust commits the acked offsets (its default is 2.8 s).
COMMIT_INTERVAL_S = 0.5
#: How often the associate stage checks for windows that wall time alone made closable.
ASSOC_TICK_S = 0.5


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
    ssl_context = k.ssl_context()  # None unless SSL or SASL_SSL
    if k.sasl:
        assert k.sasl_password is not None  # KafkaSettings checks SASL settings are complete
        opts["broker_credentials"] = faust.SASLCredentials(
            username=k.sasl_username,
            password=k.sasl_password.get_secret_value(),
            mechanism=k.sasl_mechanism,
            ssl_context=ssl_context,  # a context makes it SASL_SSL, none SASL_PLAINTEXT
        )
    elif ssl_context is not None:
        opts["broker_credentials"] = faust.SSLCredentials(ssl_context)
    return opts


def create_app(settings: HeimdallSettings) -> faust.App:
    """Build the Faust app with its topics, tables and agents."""
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
        # Per partition and fetch. Tansu holds every fetch for the whole fetch wait, so this
        # bounds a worker's rate: with 1 MB (~100 IQ chunks) two workers took 1,906 chunks/s
        # off a backlog, with 4 MB 4,725 (bench pipeline, 500 receivers). Much larger fetches
        # let a replayed backlog of one partition run seconds ahead of the others (16 MB:
        # ~1,600 chunks), past the association's start-up grace.
        consumer_max_fetch_size=4 * 1024 * 1024,
        broker_max_poll_records=settings.batch_max_events,
        broker_commit_interval=COMMIT_INTERVAL_S,
        # A stop waits until every taken event is processed and acked.
        stream_wait_empty=True,
    )
    app.heimdall_fetch_max_wait_ms = settings.kafka.fetch_max_wait_ms  # type: ignore[attr-defined]
    t = settings.topics

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    serde = Serde.from_settings(settings)
    policy = WindowPolicy.from_seconds(settings.assoc_window_s, settings.assoc_min_receivers)
    max_samples = settings.max_chunk_samples
    batch_max = settings.batch_max_events
    window_s = settings.assoc_window_s
    windows = app.Table("associate-windows", default=new_state, partitions=settings.partitions)
    tracks = app.Table("localize-tracks", default=dict, partitions=settings.partitions)
    track_cfg = TrackConfig(
        accel_psd_m2_s3=settings.track_accel_psd,
        max_gap_s=settings.track_max_gap_s,
        gate=STREAM_GATE,
    )

    async def send(batch: Batch, records: list[Record], dead: list[DeadLetter], stage: str) -> None:
        for d in dead:
            log.warning("%s: to DLQ: %s", stage, d.reason)
        seconds = time.perf_counter() - batch.started_s
        metrics.record_batch(stage, len(batch), len(records), len(dead), seconds)
        batch.delivery += await produce_batch(
            app.producer, records, dead, dlq_topic=t.dlq, stage=stage
        )

    snippets_topic = t.snippets if settings.tdoa else None

    @app.agent(raw_topic(t.iq), name="features")
    async def features(stream: faust.StreamT[bytes]) -> None:
        async for batch in batches(stream, batch_max):
            records, dead = features_batch(
                batch.events, serde, max_samples, t.features, snippets_topic
            )
            await send(batch, records, dead, "features")

    def observations(channel_id: str, closed: list[tuple[int, dict[str, Any]]]) -> list[Record]:
        out = []
        for k, members in closed:
            obs = build_observation(channel_id, k, members, policy)
            if obs is not None:
                value = serde.encode(obs)
                out.append(
                    Record(t.observations, obs.channel_id.encode(), value, (k + 1) * window_s)
                )
        return out

    #: An event of each channel seen here: its partition is where the channel's state lives.
    channel_events: dict[str, faust.types.EventT] = {}

    @app.agent(raw_topic(t.features), name="associate")
    async def associate(stream: faust.StreamT[bytes]) -> None:
        async for batch in batches(stream, batch_max):
            dead: list[DeadLetter] = []
            by_channel: dict[str, list[tuple[faust.types.EventT, Measurement]]] = {}
            for event in batch:
                try:
                    m = serde.decode(event.value, expect=Measurement)
                    m.validate()
                except (SchemaError, InvalidEventError) as exc:
                    dead.append(DeadLetter(event, str(exc)))
                    continue
                if m.detected:
                    by_channel.setdefault(m.channel_id, []).append((event, m))
            records: list[Record] = []
            for channel_id, items in by_channel.items():
                channel_events[channel_id] = items[-1][0]
                with current_event(items[-1][0]):  # a table default is a write: give it a partition
                    state = windows[channel_id]
                for event, m in items:
                    result = add_measurement(state, m, policy)
                    if result.late:
                        reason = f"late: window of t_ns={m.t_ns} already closed"
                        dead.append(DeadLetter(event, reason))
                    records += observations(channel_id, result.closed)
            await send(batch, records, dead, "associate")
            for channel_id, items in by_channel.items():  # the changelog of the new state
                with current_event(items[-1][0]):
                    windows[channel_id] = windows[channel_id]

    def forget_moved(events: dict[str, faust.types.EventT]) -> list[str]:
        """Forget, and return, the channels whose partition moved to another worker."""
        assigned = app.consumer.assignment()
        moved = [
            channel_id
            for channel_id, event in events.items()
            if TP(event.message.topic, event.message.partition) not in assigned
        ]
        for channel_id in moved:
            del events[channel_id]
        return moved

    @app.timer(interval=ASSOC_TICK_S)
    async def close_quiet_windows() -> None:
        """Close windows that wall time alone made closable (every source of a channel idle)."""
        if app.rebalancing or not channel_events:
            return
        forget_moved(channel_events)
        records: list[Record] = []
        touched = []
        for channel_id, event in list(channel_events.items()):
            if channel_id not in windows:
                continue
            closed = close_ready(windows[channel_id], policy)
            if closed:
                records += observations(channel_id, closed)
                touched.append((channel_id, event))
        if touched:
            metrics.EVENTS_OUT.labels("associate").inc(len(records))
            futures = await produce_batch(app.producer, records, [], dlq_topic=t.dlq, stage="tick")
            await asyncio.gather(*futures)
            for channel_id, event in touched:
                with current_event(event):
                    windows[channel_id] = windows[channel_id]

    sessions = TdoaSessions(settings.tdoa_window_s)
    #: An event of each channel with open TDOA blocks: its partition says who owns the channel.
    tdoa_channel_events: dict[str, faust.types.EventT] = {}

    async def tdoa_records(blocks: list[TdoaBlock]) -> list[Record]:
        out = []
        for block in blocks:
            try:  # the correlations run in a thread: the event loop keeps heartbeating
                obs = await asyncio.to_thread(
                    tdoa_observation, block, settings.tdoa_method, settings.tdoa_max_receivers
                )
            except EstimationError as exc:
                log.warning("tdoa: %s block at %d: %s", block.channel_id, block.start_ns, exc)
                continue
            if obs is not None:
                value = serde.encode(obs)
                out.append(
                    Record(t.observations, obs.channel_id.encode(), value, obs.window_end_ns / 1e9)
                )
        return out

    @app.agent(raw_topic(t.snippets), name="tdoa")
    async def tdoa(stream: faust.StreamT[bytes]) -> None:
        async for batch in batches(stream, batch_max):
            measured, dead = measure_batch(batch.events, serde, max_samples)
            closed: list[TdoaBlock] = []
            for event, chunk, m in measured:
                tdoa_channel_events[m.channel_id] = event
                blocks, late = sessions.add(chunk, m)
                if late:
                    dead.append(DeadLetter(event, f"late: TDOA block of t_ns={chunk.t_ns} closed"))
                closed += blocks
            await send(batch, await tdoa_records(closed), dead, "tdoa")

    @app.timer(interval=ASSOC_TICK_S)
    async def close_quiet_blocks() -> None:
        """Close TDOA blocks whose receivers all went quiet (the end of a recording)."""
        if app.rebalancing or not tdoa_channel_events:
            return
        sessions.drop(forget_moved(tdoa_channel_events))
        records = await tdoa_records(sessions.close_ready())
        for channel_id in [c for c in tdoa_channel_events if c not in sessions]:
            del tdoa_channel_events[channel_id]
        if records:
            metrics.EVENTS_OUT.labels("tdoa").inc(len(records))
            futures = await produce_batch(app.producer, records, [], dlq_topic=t.dlq, stage="tdoa")
            await asyncio.gather(*futures)

    watcher = ModelWatcher(settings, serde, settings.model_name)

    @app.task
    async def watch_models() -> None:
        watcher.start()

    #: Per channel: the pooled variance factor of its TDOA fixes (kept by this worker; a
    #: restarted or rebalanced worker starts again from the prior, i.e. the measured sigmas).
    tdoa_variance: dict[str, PooledVariance] = {}

    def tdoa_fixes(
        event: faust.types.EventT, obs: Observation, dead: list[DeadLetter]
    ) -> list[tuple[faust.types.EventT, Localization]]:
        try:
            fix = localize_tdoa(obs, tdoa_variance.setdefault(obs.channel_id, PooledVariance()))
        except EstimationError as exc:
            dead.append(DeadLetter(event, f"tdoa: {exc}"))
            return []
        out = [(event, fix)]
        if len(obs.members) >= MIN_HYBRID_RSS:
            try:
                out.append((event, localize_hybrid(obs, fix)))
            except EstimationError as exc:
                log.info("hybrid %s: %s", obs.channel_id, exc)
        return out

    @app.agent(raw_topic(t.observations), name="localize")
    async def localize(stream: faust.StreamT[bytes]) -> None:
        async for batch in batches(stream, batch_max):
            dead: list[DeadLetter] = []
            decoded: list[tuple[faust.types.EventT, Observation]] = []
            for event in batch:
                try:
                    obs = serde.decode(event.value, expect=Observation)
                    obs.validate()
                except (SchemaError, InvalidEventError) as exc:
                    dead.append(DeadLetter(event, str(exc)))
                    continue
                decoded.append((event, obs))
            estimates: list[tuple[faust.types.EventT, Localization]] = []
            rss_only = []
            for event, obs in decoded:
                if obs.tdoa_pairs:  # a TDOA block: its fixes are tdoa (and hybrid)
                    estimates += tdoa_fixes(event, obs, dead)
                    continue
                rss_only.append((event, obs))
                try:
                    estimates.append((event, localize_rss(obs)))
                except EstimationError as exc:
                    dead.append(DeadLetter(event, f"rss-ml: {exc}"))
            model = watcher.active
            if model is not None and rss_only:
                onnx = localize_onnx([obs for _, obs in rss_only], model)
                estimates += [(event, loc) for (event, _), loc in zip(rss_only, onnx, strict=True)]
            if settings.track:
                for event, loc in list(estimates):
                    key = track_key(loc)
                    with current_event(event):
                        state, tracked = track_localization(loc, tracks[key], track_cfg)
                        if tracked is not None:
                            tracks[key] = state
                            estimates.append((event, tracked))
            records = [
                Record(t.localizations, loc.channel_id.encode(), serde.encode(loc), loc.t_ns / 1e9)
                for _, loc in estimates
            ]
            now_s = time.time()
            for _, loc in estimates:
                metrics.observe_latency(loc.method, loc.t_ns / 1e9, now_s)
            await send(batch, records, dead, "localize")

    return app


def measure_batch(
    events: Sequence[faust.types.EventT], serde: Serde, max_samples: int
) -> tuple[list[tuple[faust.types.EventT, IqChunk, Measurement]], list[DeadLetter]]:
    """Decode, validate and measure a batch of IQ chunks (the DSP vectorised over the batch).

    Returns each good event with its chunk and measurement, and a dead letter (with the
    one-line reason) for each event that is undecodable, invalid or cannot be measured.
    """
    dead: list[DeadLetter] = []
    chunks: list[IqChunk] = []
    sources: list[faust.types.EventT] = []
    for event in events:
        try:
            chunk = serde.decode(event.value, expect=IqChunk)
            chunk.validate(max_samples)
        except (SchemaError, InvalidEventError) as exc:
            dead.append(DeadLetter(event, str(exc)))
            continue
        chunks.append(chunk)
        sources.append(event)
    measured = []
    for event, chunk, m in zip(sources, chunks, measure_chunks(chunks), strict=True):
        if isinstance(m, InvalidEventError):
            dead.append(DeadLetter(event, str(m)))
        else:
            measured.append((event, chunk, m))
    return measured, dead


def features_batch(
    events: Sequence[faust.types.EventT],
    serde: Serde,
    max_samples: int,
    topic: str,
    snippets_topic: str | None = None,
) -> tuple[list[Record], list[DeadLetter]]:
    """Decode, validate and measure a batch of IQ chunks; the measurements keyed by channel.

    With ``snippets_topic``, a GPS-timed chunk whose channel is detected is also forwarded
    there untouched, keyed by channel, for the TDOA stage (:mod:`heimdall.streams.tdoa`).
    """
    measured, dead = measure_batch(events, serde, max_samples)
    records = []
    for event, chunk, m in measured:
        key = m.channel_id.encode()
        records.append(Record(topic, key, serde.encode(m), m.t_ns / 1e9))
        if snippets_topic is not None and is_tdoa_snippet(chunk, m):
            records.append(Record(snippets_topic, key, event.value, m.t_ns / 1e9))
    return records, dead
