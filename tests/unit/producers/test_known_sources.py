"""Known sources of a network file: parsing, and their Truth on the chunks' event time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heimdall.core.channels import channel_id_for
from heimdall.core.errors import ConfigError
from heimdall.core.settings import TopicNames
from heimdall.producers.known_sources import SourceSpec, TruthClock, TruthPublisher
from heimdall.producers.network import load_network, parse_network
from heimdall.producers.sim.motion import ScheduleSpec
from heimdall.schemas.models import ClockSource, IqChunk, Position, SampleFormat

S = 1_000_000_000
T2017 = 1_511_779_316_129_236_414  # a DCF77 chunk's start, 2017-11-27T10:41:56.129Z
RX = {"id": "r", "kind": "rtltcp", "address": "h", "position": {"lat": 1, "lon": 2},
      "options": {"freq_hz": 1e8}}  # fmt: skip


def chunk(t_ns: int, *, n: int = 2560, rate: float = 12_001.0, freq: float = 77_500.0) -> IqChunk:
    return IqChunk(
        receiver_id="kiwi-x",
        seq=0,
        t_ns=t_ns,
        clock=ClockSource.GPS,
        center_freq_hz=freq,
        sample_rate_hz=rate,
        sample_format=SampleFormat.CI16,
        iq=np.zeros(n, dtype=np.complex64),
        full_scale_dbm=0.0,
        position=Position(lat_deg=50.0, lon_deg=8.0),
    )


DCF77 = SourceSpec(id="dcf77", lat=50.0152, lon=9.0112, freq_hz=77_500.0)


def test_sources_in_a_network_file(tmp_path: Path) -> None:
    p = tmp_path / "net.yaml"
    p.write_text(
        """
receivers:
  - {id: r, kind: rtltcp, address: h, position: {lat: 1, lon: 2}, options: {freq_hz: 1e8}}
sources:
  - id: dcf77
    lat: 50.0152
    lon: 9.0112
    freq_hz: 77500
  - id: beacon-4u1un
    lat: 40.75
    lon: -73.97
    alt: 60
    freq_hz: 14.1e6
    channel_id: ncdxf-20m
    tx_power_dbm: 50
    schedule: {period_s: 180, on_s: 10, offset_s: 0}
"""
    )
    net = load_network(p)
    dcf, bcn = net.sources
    assert dcf.channel == channel_id_for(77_500.0) == "0.0775MHz"
    assert dcf.schedule is None and dcf.tx_power_dbm is None and dcf.alt == 0.0
    assert bcn.channel == "ncdxf-20m" and bcn.tx_power_dbm == 50.0
    assert bcn.schedule == ScheduleSpec(period_s=180, on_s=10, offset_s=0)
    tr = bcn.truth(T2017)
    assert (tr.source_id, tr.t_ns, tr.freq_hz, tr.channel_id) == (
        "beacon-4u1un", T2017, 14.1e6, "ncdxf-20m"
    )  # fmt: skip
    assert tr.position == Position(lat_deg=40.75, lon_deg=-73.97, alt_m=60.0)
    assert parse_network({"receivers": [RX]}).sources == ()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"id": "a", "lat": 91, "lon": 0, "freq_hz": 1e6},
         "sources[0].lat: Input should be less than or equal to 90 (got 91)"),
        ({"id": "a", "lat": 0, "lon": 0},
         "sources[0].freq_hz: Field required"),
        ({"id": "a b", "lat": 0, "lon": 0, "freq_hz": 1e6},
         "sources[0].id: 'a b' must be letters, digits and . _ : - (it is the Kafka key)"),
        ({"id": "a", "lat": 0, "lon": 0, "freq_hz": 1e6, "power": 3},
         "sources[0].power: Extra inputs are not permitted"),
        ({"id": "a", "lat": 0, "lon": 0, "freq_hz": 1e6, "schedule": {"period_s": 60, "on_s": 61}},
         "sources[0].schedule: on_s must not exceed period_s"),
    ],
)  # fmt: skip
def test_source_mistakes_are_one_line(source: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_network({"receivers": [RX], "sources": [source]}, "net.yaml")
    assert str(exc.value).startswith(f"net.yaml: {message}"), str(exc.value)


def test_duplicate_source_ids_are_refused() -> None:
    src = {"id": "a", "lat": 0, "lon": 0, "freq_hz": 1e6}
    with pytest.raises(ConfigError, match="sources: source id 'a' appears more than once"):
        parse_network({"receivers": [RX], "sources": [src, src]})


def test_schedule() -> None:
    sch = ScheduleSpec(period_s=180, on_s=10, offset_s=20)
    base = 1_700_000_000 // 180 * 180 * S  # a whole multiple of the period since the epoch
    assert [bool(sch.is_on(base + k * S, 0.0)) for k in (0, 19, 20, 29, 30, 199, 200, 210)] == [
        False, False, True, True, False, False, True, False
    ]  # fmt: skip
    src = SourceSpec(id="b", lat=0, lon=0, freq_hz=14.1e6, schedule=sch)
    assert src.truth(base + 25 * S).transmitting and not src.truth(base + 35 * S).transmitting


def test_truth_at_the_first_chunk_then_every_whole_second() -> None:
    clock = TruthClock([DCF77])
    dur = round(2560 / 12_001.0 * 1e9)  # 213.3 ms
    t = T2017
    got: list[int] = []
    for k in range(20):  # 4.27 s of chunks
        got += [x.t_ns for x in clock.due(chunk(t + k * dur))]
    end = T2017 + 20 * dur
    assert got == [T2017] + [s * S for s in range(T2017 // S + 1, (end - 1) // S + 1)]
    assert len(got) == 1 + 4


def test_one_truth_per_second_however_many_receivers_hear_it() -> None:
    clock = TruthClock([DCF77])
    dur = round(2560 / 12_001.0 * 1e9)
    starts = sorted(
        T2017 + off + k * dur for off in (0, 70_000_000, 150_000_000) for k in range(10)
    )
    got = [x.t_ns for t in starts for x in clock.due(chunk(t))]
    assert got == [T2017, (T2017 // S + 1) * S, (T2017 // S + 2) * S]


def test_only_sources_in_the_chunks_band() -> None:
    other = SourceSpec(id="other", lat=0, lon=0, freq_hz=77_500.0 + 6_100)  # beyond 12 kHz / 2
    edge = SourceSpec(id="edge", lat=0, lon=0, freq_hz=77_500.0 - 6_000)
    clock = TruthClock([DCF77, other, edge])
    assert [x.source_id for x in clock.due(chunk(T2017, rate=12_000.0))] == ["dcf77", "edge"]


def test_a_new_time_line_starts_again() -> None:
    clock = TruthClock([DCF77])
    assert [x.t_ns for x in clock.due(chunk(T2017 + 100 * S))] == [T2017 + 100 * S]
    # 100 s earlier: another time line (a loop, a recording beside a live receiver)
    assert [x.t_ns for x in clock.due(chunk(T2017))] == [T2017]
    # a little earlier than the last truth (receivers' jitter): nothing again
    assert clock.due(chunk(T2017 - 10_000_000)) == []


def test_truth_publisher_labels_only_iq_chunks() -> None:
    topics = TopicNames()

    class Inner:
        producer = object()

        def __init__(self) -> None:
            self.events: list[tuple[str, str, Any, int | None]] = []

        def publish(self, topic: str, key: str, event: Any, t_ns: int | None = None) -> None:
            self.events.append((topic, key, event, t_ns))

        def flush(self, timeout_s: float = 30.0) -> int:
            return 7

    inner = Inner()
    pub = TruthPublisher(inner, [DCF77], topics)
    assert pub.producer is inner.producer
    c = chunk(T2017)
    pub.publish(topics.features, "0.0775MHz", c, T2017)  # not the IQ topic: passed through
    pub.publish(topics.iq, "kiwi-x", c, T2017)
    assert [(e[0], e[1], e[3]) for e in inner.events] == [
        (topics.features, "0.0775MHz", T2017),
        (topics.truth, "dcf77", T2017),
        (topics.iq, "kiwi-x", T2017),
    ]
    assert pub.truths == {"dcf77": 1} and pub.flush() == 7
