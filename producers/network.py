"""The receiver network file: which receivers to run, where they are, how to reach them.

YAML (``.yaml``/``.yml``, or any other name) or JSON (``.json``), validated with pydantic; a
mistake is one :class:`~heimdall.core.errors.ConfigError` line naming the file and the field
path (``network.yaml: receivers[1].position.lat: Input should be less than or equal to
90 (got 91)``). Example::

    name: turin-vhf                       # optional
    runtime:                              # optional, every adapter (AdapterOptions)
      stall_timeout_s: 10
      backoff_base_s: 0.5
      backoff_cap_s: 60
      buffer_chunks: 64
      status_interval_s: 10
    receivers:
      - id: rtl-lingotto
        kind: rtltcp                      # openwebrx, kiwisdr, rtltcp, sigmf, kiwi-wav, sim
        address: 192.168.1.20:1234        # host:port, or a URL for the web receivers
        position: {lat: 45.0318, lon: 7.6650, alt: 240}
        antenna: discone on the roof
        calibration_offset_db: -3.5       # added to every power this receiver reports
        bands: [{low_hz: 144e6, high_hz: 146e6}]   # or [[144e6, 146e6]]
        enabled: true
        options:                          # kind-specific, validated per kind
          freq_hz: 145.5e6
          gain_db: 29.7
          sample_rate_hz: 1152000
      - id: kiwi-df0kl                    # a recording as a receiver (kiwi-wav, sigmf)
        kind: kiwi-wav
        options: {path: 20171127T104156Z_77500_DF0KL_iq.wav}   # relative to this file
    replay: {pace: 1.0, loop: false}      # optional: pace of the recordings ("fast")
    sources:                              # optional: known transmitters, labelled as Truth
      - {id: dcf77, lat: 50.0152, lon: 9.0112, freq_hz: 77500}

The recording kinds and the ``replay`` section are described in
:mod:`heimdall.producers.network_recordings`, ``sources`` in
:mod:`heimdall.producers.known_sources`. A recording receiver's ``position`` is optional
(the recording's own is used: a KiwiSDR station's ``gnss_pos`` file, SigMF's
``core:geolocation``); every other kind needs one.

:func:`run_network` runs every receiver whose kind has an adapter in one process (one
asyncio loop, one producer) and replays every recording receiver (merged by event time, on a
thread of its own when live receivers run too); receivers of kinds that cannot run, and
recordings that cannot be used, are reported (one line each), not silently ignored. With
``sources``, every IQ chunk published carries the truth of the known sources it hears
(:class:`~heimdall.producers.known_sources.TruthPublisher`). Adding a kind: an options
model (pydantic, ``extra="forbid"``; for a live receiver the adapter's own config, an
:class:`~heimdall.producers.adapters.options.AdapterConfig`) and a builder in :data:`KINDS`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from heimdall.core.errors import ConfigError, HeimdallError
from heimdall.core.ids import check_key_id, first_repeated
from heimdall.core.settings import HeimdallSettings
from heimdall.producers.adapters.base import AdapterOptions, ReceiverAdapter, ReceiverInfo
from heimdall.producers.adapters.kiwisdr import KiwiSdrAdapter, KiwiSdrConfig
from heimdall.producers.adapters.openwebrx import OpenWebRxAdapter, OpenWebRxConfig
from heimdall.producers.adapters.options import AdapterConfig, one_line, split_host_port
from heimdall.producers.adapters.pump import EventPublisher
from heimdall.producers.adapters.rtltcp import RtlTcpAdapter, RtlTcpConfig
from heimdall.producers.adapters.runtime import RunSummary, run_adapters
from heimdall.producers.known_sources import SourceSpec, TruthPublisher
from heimdall.producers.network_recordings import (
    RECORDING_KINDS,
    KiwiWavOptions,
    RecordingReceiver,
    ReplaySpec,
    SigmfOptions,
    open_recording,
    replay_recordings,
)
from heimdall.producers.publisher import Publisher
from heimdall.producers.recordings.replay import ReplayStats
from heimdall.schemas.models import Band, Position

__all__ = [
    "ALL_KINDS",
    "KINDS",
    "NetworkRun",
    "NetworkSpec",
    "ReceiverSpec",
    "build_adapters",
    "build_recordings",
    "load_network",
    "parse_network",
    "run_network",
    "split_host_port",
]

log = logging.getLogger(__name__)

#: Every receiver kind a network file may name.
ALL_KINDS = ("openwebrx", "kiwisdr", "rtltcp", "sigmf", "kiwi-wav", "sim")
Kind = Literal["openwebrx", "kiwisdr", "rtltcp", "sigmf", "kiwi-wav", "sim"]
#: Makes the adapter of one receiver (ValueError / ConfigError: its options are wrong).
Builder = Callable[["ReceiverSpec", AdapterOptions], ReceiverAdapter]


# ------------------------------------------------------------------------ schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PositionSpec(_Strict):
    """WGS84 antenna position: degrees, metres above the ellipsoid."""

    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    alt: float = 0.0

    def to_position(self) -> Position:
        return Position(lat_deg=self.lat, lon_deg=self.lon, alt_m=self.alt)


class BandSpec(_Strict):
    """A covered frequency range, Hz; ``[low, high]`` is accepted too."""

    low_hz: float = Field(gt=0)
    high_hz: float = Field(gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        if isinstance(data, list | tuple) and len(data) == 2:
            return {"low_hz": data[0], "high_hz": data[1]}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> BandSpec:
        if self.high_hz <= self.low_hz:
            raise ValueError(f"high_hz {self.high_hz:g} must be above low_hz {self.low_hz:g}")
        return self


class RuntimeSpec(_Strict):
    """Adapter runtime options (:class:`~heimdall.producers.adapters.base.AdapterOptions`)."""

    buffer_chunks: int = Field(64, ge=1)
    connect_timeout_s: float = Field(10.0, gt=0)
    stall_timeout_s: float = Field(10.0, gt=0)
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_cap_s: float = Field(60.0, gt=0)
    status_interval_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _cap(self) -> RuntimeSpec:
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("backoff_cap_s must be at least backoff_base_s")
        return self

    def to_options(self) -> AdapterOptions:
        return AdapterOptions(**self.model_dump())


class ReceiverSpec(_Strict):
    """One receiver of the network file (``options`` is validated per kind)."""

    id: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(check_key_id)]
    kind: Kind
    address: str | None = Field(None, description="host:port, or the receiver's URL")
    position: PositionSpec | None = None
    antenna: str | None = None
    calibration_offset_db: float = 0.0
    bands: tuple[BandSpec, ...] = ()
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _url_alias(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "url" in data and "address" not in data:
            data = dict(data)
            data["address"] = data.pop("url")
        return data

    @model_validator(mode="after")
    def _positioned(self) -> ReceiverSpec:
        if self.position is None and self.kind not in RECORDING_KINDS:
            raise ValueError(f"position: a {self.kind} receiver needs position: {{lat, lon}}")
        return self

    def info(self) -> ReceiverInfo:
        if self.position is None:
            raise ConfigError(f"receiver {self.id!r}: no position")
        return ReceiverInfo(
            receiver_id=self.id,
            kind=self.kind,
            position=self.position.to_position(),
            url=self.address,
            antenna=self.antenna,
            calibration_offset_db=self.calibration_offset_db,
            bands=tuple(Band(low_hz=b.low_hz, high_hz=b.high_hz) for b in self.bands),
        )


class NetworkSpec(_Strict):
    """A whole network file."""

    name: str | None = None
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    replay: ReplaySpec = Field(default_factory=ReplaySpec)
    receivers: tuple[ReceiverSpec, ...] = Field(min_length=1)
    sources: tuple[SourceSpec, ...] = ()

    @field_validator("sources")
    @classmethod
    def _unique_sources(cls, v: tuple[SourceSpec, ...]) -> tuple[SourceSpec, ...]:
        if (again := first_repeated(s.id for s in v)) is not None:
            raise ValueError(f"source id {again!r} appears more than once")
        return v

    @field_validator("receivers")
    @classmethod
    def _unique_ids(cls, v: tuple[ReceiverSpec, ...]) -> tuple[ReceiverSpec, ...]:
        if (again := first_repeated(r.id for r in v)) is not None:
            raise ValueError(f"receiver id {again!r} appears more than once")
        return v


# ------------------------------------------------------------------ live kinds


def _build_live(
    config: type[AdapterConfig],
    adapter: Callable[[ReceiverInfo, Any, AdapterOptions], ReceiverAdapter],
) -> Builder:
    """The builder of a live kind: its ``options`` and ``address`` make ``config``.

    The options model is the adapter's own config (:mod:`.adapters.options`): the file's
    ``options`` are its fields but the connection fields, which ``address`` gives.
    """

    def build(spec: ReceiverSpec, opts: AdapterOptions) -> ReceiverAdapter:
        cfg = config.model_validate(_live_values(spec, config))
        return adapter(spec.info(), cfg, opts)

    return build


def _live_values(spec: ReceiverSpec, config: type[AdapterConfig]) -> dict[str, Any]:
    """``options`` with the connection fields taken from ``address`` (ValueError if absent)."""
    if not spec.address:
        raise ValueError(f"address: a {spec.kind} receiver needs address: {_ADDRESS[spec.kind]}")
    given = [f for f in config.connection_fields if f in spec.options]
    if given:
        raise ValueError(
            f"options.{given[0]}: give it as the receiver's address: {_ADDRESS[spec.kind]}"
        )
    return {**spec.options, **config.from_address(spec.address)}


_ADDRESS = {"rtltcp": "host:port", "openwebrx": "ws://host:port/ws/", "kiwisdr": "host:port"}


@dataclass(frozen=True)
class KindSpec:
    """How to build an adapter of one kind (``build=None``: the kind has no adapter yet).

    ``options`` validates the receiver's ``options`` mapping when the file is loaded.
    ``recording``: the kind is a recording, replayed by :func:`build_recordings`.
    """

    build: Builder | None
    options: type[BaseModel] | None = None
    note: str = ""
    recording: bool = False


#: kind → builder. Kinds with ``build=None`` are valid in a file but cannot run yet.
KINDS: dict[str, KindSpec] = {
    "rtltcp": KindSpec(_build_live(RtlTcpConfig, RtlTcpAdapter), RtlTcpConfig),
    "openwebrx": KindSpec(_build_live(OpenWebRxConfig, OpenWebRxAdapter), OpenWebRxConfig),
    "kiwisdr": KindSpec(_build_live(KiwiSdrConfig, KiwiSdrAdapter), KiwiSdrConfig),
    "sigmf": KindSpec(None, SigmfOptions, recording=True),
    "kiwi-wav": KindSpec(None, KiwiWavOptions, recording=True),
    "sim": KindSpec(None, note="simulated receivers run with `heimdall simulate`, not here"),
}


# ------------------------------------------------------------------------ loading


def parse_network(
    data: Any, source: str = "network", base_dir: str | Path | None = None
) -> NetworkSpec:
    """Validate a decoded network document; errors are one ConfigError line.

    Relative paths of recording receivers are resolved against ``base_dir`` (the network
    file's folder; default: the working directory) and kept absolute in the result.
    """
    try:
        net = NetworkSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {one_line(exc)}") from None
    # kind-specific options, with the full path in the message
    receivers = list(net.receivers)
    for i, r in enumerate(net.receivers):
        kind = KINDS[r.kind]
        if kind.options is None:
            continue
        values: dict[str, Any] = r.options
        if issubclass(kind.options, AdapterConfig):  # a live kind: address + options
            try:
                values = _live_values(r, kind.options)
            except ValueError as exc:
                raise ConfigError(f"{source}: receivers[{i}].{exc}") from None
        try:
            o = kind.options.model_validate(values, context={"base_dir": base_dir})
        except ValidationError as exc:
            raise ConfigError(f"{source}: {one_line(exc, ('receivers', i, 'options'))}") from None
        if kind.recording:  # keep the resolved paths
            receivers[i] = r.model_copy(update={"options": o.model_dump(exclude_unset=True)})
    return net.model_copy(update={"receivers": tuple(receivers)})


def load_network(path: str | Path) -> NetworkSpec:
    """Read and validate a network file (JSON by ``.json``, YAML otherwise)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the network file: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()
        raise ConfigError(f"{p}: not valid {p.suffix.lstrip('.') or 'YAML'}: "
                          + " ".join(s.strip() for s in first[:3])) from None  # fmt: skip
    return parse_network(data, str(p), base_dir=p.parent)


# ------------------------------------------------------------------------ running


def build_adapters(net: NetworkSpec) -> tuple[list[ReceiverAdapter], list[str]]:
    """The adapters of the enabled receivers, and one line per receiver that cannot run.

    Raises
    ------
    ConfigError
        When an implemented kind's options are inconsistent (one line with the path).
    """
    opts = net.runtime.to_options()
    adapters: list[ReceiverAdapter] = []
    skipped: list[str] = []
    for i, r in enumerate(net.receivers):
        kind = KINDS[r.kind]
        if not r.enabled or kind.recording:
            continue
        if kind.build is None:
            runnable = ", ".join(sorted(k for k, v in KINDS.items() if v.build or v.recording))
            skipped.append(
                f"receivers[{i}] {r.id!r}: kind {r.kind!r} cannot run yet ({kind.note}; "
                f"runnable kinds: {runnable})"
            )
            continue
        try:
            adapters.append(kind.build(r, opts))
        except (ConfigError, ValueError) as exc:
            msg = str(exc).removeprefix("Value error, ")
            raise ConfigError(f"receivers[{i}] {r.id!r}: {msg}") from None
    return adapters, skipped


def build_recordings(net: NetworkSpec) -> tuple[list[RecordingReceiver], list[str]]:
    """The enabled recording receivers that can be replayed, and one line per one that cannot.

    Each recording is read here; one that cannot be a receiver (unreadable, no position, an
    implausible sample rate, no samples) is left out with its reason, never stopping the
    others. What is worth knowing about a usable one (lost frames, no GPS time base) is
    logged as a warning.
    """
    out: list[RecordingReceiver] = []
    skipped: list[str] = []
    for i, r in enumerate(net.receivers):
        kind = KINDS[r.kind]
        if not r.enabled or not kind.recording or kind.options is None:
            continue
        opts = kind.options.model_validate(r.options)
        assert isinstance(opts, KiwiWavOptions | SigmfOptions)
        try:
            rec = open_recording(
                r.id,
                r.kind,
                opts,
                position=r.position.to_position() if r.position is not None else None,
                calibration_offset_db=r.calibration_offset_db,
            )
        except (HeimdallError, OSError, ValueError) as exc:
            skipped.append(f"receivers[{i}] {r.id!r}: {exc}")
            continue
        for note in rec.notes:
            log.warning("receivers[%d] %r: %s", i, r.id, note)
        out.append(rec)
    return out, skipped


@dataclass
class NetworkRun:
    """The result of :func:`run_network`: what the live receivers did, what the recordings
    published (``replay``, None without recordings), the truths published per known source,
    and the receivers not run."""

    summary: RunSummary
    skipped: list[str] = field(default_factory=list)
    replay: ReplayStats | None = None
    truths: dict[str, int] = field(default_factory=dict)


def run_network(
    settings: HeimdallSettings,
    network: NetworkSpec | str | Path,
    *,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    publisher: EventPublisher | None = None,
) -> NetworkRun:
    """Run every runnable receiver of ``network`` in this process until stopped.

    One asyncio loop reads all live receivers, one Kafka producer publishes their chunks
    (``settings.topics.iq``), measurements (``settings.topics.features``: the OpenWebRX
    adapter's) and statuses (``settings.topics.receivers``). The recording receivers are
    replayed together (:func:`~heimdall.producers.network_recordings.replay_recordings`)
    through the same producer: on this thread when there is no live receiver, and then the
    run ends when the recordings end (unless ``replay.loop``); on a thread of their own
    otherwise, the run ending with the live receivers'. With ``sources`` the known sources'
    truth goes to ``settings.topics.truth`` on the chunks' event time
    (:class:`~heimdall.producers.known_sources.TruthPublisher`). Receivers that cannot run
    are logged (one warning line each) and listed in the result; if none can run,
    :class:`ConfigError` says why.
    """
    net = network if isinstance(network, NetworkSpec) else load_network(network)
    adapters, skipped = build_adapters(net)
    recordings, unusable = build_recordings(net)
    skipped += unusable
    for line in skipped:
        log.warning("not running %s", line)
    if not adapters and not recordings:
        raise ConfigError(
            "no receiver of the network can run: " + "; ".join(skipped or ["all are disabled"])
        )
    pub: EventPublisher = publisher or Publisher(settings)
    labels = TruthPublisher(pub, net.sources, settings.topics) if net.sources else None
    pub = labels or pub
    stop = stop or threading.Event()
    result = NetworkRun(RunSummary(), skipped)
    if not adapters:
        t0 = time.monotonic()
        timer = threading.Timer(duration_s, stop.set) if duration_s is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            result.replay = replay_recordings(
                settings, recordings, net.replay, publisher=pub, stop=stop
            )
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()
        result.summary.wall_s = time.monotonic() - t0
    else:
        stop_replay = threading.Event()
        replayed: list[ReplayStats] = []
        thread = None
        if recordings:
            thread = threading.Thread(
                target=lambda: replayed.append(
                    replay_recordings(
                        settings, recordings, net.replay, publisher=pub, stop=stop_replay
                    )
                ),
                name="heimdall-network-replay",
            )
            thread.start()
        try:
            result.summary = run_adapters(
                settings,
                adapters,
                duration_s=duration_s,
                stop=stop,
                publisher=pub,
                status_interval_s=net.runtime.status_interval_s,
            )
        finally:
            stop_replay.set()
            if thread is not None:
                thread.join()
        result.replay = replayed[0] if replayed else None
    result.truths = dict(labels.truths) if labels is not None else {}
    return result
