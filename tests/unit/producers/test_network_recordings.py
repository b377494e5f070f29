"""Recordings as receivers of a network file (kinds kiwi-wav and sigmf, the replay section):
parsing, the reasons a recording is left out, and a whole run through a recording publisher."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heimdall.core.errors import ConfigError, RecordingError
from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.producers.network import build_recordings, load_network, parse_network, run_network
from heimdall.producers.network_recordings import ReplaySpec, loop_period_ns, replay_recordings
from heimdall.producers.recordings.gpstime import gps_week_and_seconds
from heimdall.producers.recordings.kiwi_wav import read_kiwi_wav, write_kiwi_wav
from heimdall.producers.recordings.replay import kiwi_chunks
from heimdall.producers.recordings.sigmf_io import write_sigmf
from heimdall.schemas.models import ClockSource, IqChunk, Position, SampleFormat, Truth

STAMP = "20171127T104156Z"
START_NS = 1_511_779_316_000_000_000  # 2017-11-27T10:41:56Z
FREQ_HZ = 77_500.0


class FakePublisher:
    """Records what would have been produced (an EventPublisher)."""

    producer: Any = None

    def __init__(self, stop_after_iq: int | None = None, stop: threading.Event | None = None):
        self.events: list[tuple[str, str, Any, int | None]] = []
        self.stop_after_iq = stop_after_iq
        self.stop = stop
        self.n_iq = 0

    def publish(self, topic: str, key: str, event: Any, t_ns: int | None = None) -> None:
        self.events.append((topic, key, event, t_ns))
        if isinstance(event, IqChunk):
            self.n_iq += 1
            if self.stop is not None and self.n_iq == self.stop_after_iq:
                self.stop.set()

    def flush(self, timeout_s: float = 30.0) -> int:
        return 0

    def of(self, topic: str) -> list[Any]:
        return [e[2] for e in self.events if e[0] == topic]


def kiwi_wav(
    folder: Path,
    station: str,
    *,
    n_blocks: int = 60,
    rate_hz: float = 12_001.15,
    lost_after: int | None = None,
    offset_s: float = 0.0,
    position: tuple[float, float] | None = (50.0, 8.0),
    seed: int = 1,
    gps_age_s: int = 0,
) -> Path:
    """A KiwiSDR IQ WAV of ``n_blocks`` blocks stamped at ``rate_hz`` from 10:41:56 UTC
    (+ ``offset_s``), optionally 3 packets lost after block ``lost_after``, with its
    ``<STATION>.gnss_pos.txt`` beside it when ``position`` is given."""
    folder.mkdir(parents=True, exist_ok=True)
    _, sow = gps_week_and_seconds(START_NS)
    blocks = np.arange(n_blocks)
    if lost_after is not None:
        blocks = np.where(blocks > lost_after, blocks + 3, blocks)
    t = sow + offset_s + blocks * 512 / rate_hz
    rng = np.random.default_rng(seed)
    iq = (rng.integers(-3000, 3000, size=2 * n_blocks * 512) / 32768).astype(np.float32)
    path = folder / f"{STAMP}_{int(FREQ_HZ)}_{station}_iq.wav"
    write_kiwi_wav(path, iq.view(np.complex64), t, last_gps_solution=gps_age_s)
    if position is not None:
        lat, lon = position
        (folder / f"{station}.gnss_pos.txt").write_text(
            f"d.{station} = struct('coord', [{lat},{lon}], 'host', 'kiwi.example', 'port', 8073);\n"
        )
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def offline(tmp_path: Path) -> HeimdallSettings:
    return load_settings(data_dir=tmp_path / "heimdall")


# ------------------------------------------------------------------------- parsing


def test_paths_are_relative_to_the_network_file(tmp_path: Path, monkeypatch: Any) -> None:
    kiwi_wav(tmp_path / "data", "AAA")
    net_file = write(
        tmp_path / "nets" / "net.yaml",
        f"""
replay: {{pace: fast, loop: true}}
receivers:
  - id: kiwi-a
    kind: kiwi-wav
    options: {{path: ../data/{STAMP}_77500_AAA_iq.wav, position_file: ../data/AAA.gnss_pos.txt,
               blocks_per_chunk: 4}}
""",
    )
    monkeypatch.chdir(tmp_path / "data")  # the working directory plays no part
    net = load_network(net_file)
    assert net.replay == ReplaySpec(pace="fast", loop=True)
    assert not net.replay.realtime
    r = net.receivers[0]
    assert r.position is None  # a recording's own position is used
    assert r.options == {
        "path": tmp_path / "data" / f"{STAMP}_77500_AAA_iq.wav",
        "position_file": tmp_path / "data" / "AAA.gnss_pos.txt",
        "blocks_per_chunk": 4,
    }
    assert net.model_dump()["replay"] == {"pace": "fast", "loop": True}
    assert ReplaySpec().realtime and ReplaySpec().speed == 1.0 and not ReplaySpec().loop


@pytest.mark.parametrize(
    ("receiver", "extra", "message"),
    [
        (
            "{id: k, kind: kiwi-wav, options: {path: missing.wav}}",
            "",
            "receivers[0].options.path: no such file: {dir}/missing.wav",
        ),
        (
            "{id: k, kind: kiwi-wav, options: {path: a.wav, position_file: nowhere.txt}}",
            "",
            "receivers[0].options.position_file: no such file: {dir}/nowhere.txt",
        ),
        (
            "{id: k, kind: sigmf, options: {path: nothing}}",
            "",
            "receivers[0].options.path: no such file: {dir}/nothing",
        ),
        (
            "{id: k, kind: kiwi-wav, options: {path: a.wav, speed: 2}}",
            "",
            "receivers[0].options.speed: Extra inputs are not permitted",
        ),
        (
            "{id: k, kind: sigmf, options: {path: a.wav, clock: atomic}}",
            "",
            "receivers[0].options.clock: Input should be 'gps', 'ntp' or 'free'",
        ),
        (
            "{id: k, kind: kiwi-wav, options: {path: a.wav, blocks_per_chunk: 0}}",
            "",
            "receivers[0].options.blocks_per_chunk: Input should be greater than or equal to 1",
        ),
        (
            "{id: k, kind: rtltcp, address: h, options: {freq_hz: 1e8}}",
            "",
            "receivers[0]: position: a rtltcp receiver needs position: {lat, lon}",
        ),
        (
            "{id: k, kind: kiwi-wav, options: {path: a.wav}}",
            "replay: {pace: 0}",
            "replay.pace: pace must be a positive number (1 = real time) or fast (got 0)",
        ),
        (
            "{id: k, kind: kiwi-wav, options: {path: a.wav}}",
            "replay: {pace: slow}",
            "replay.pace: pace must be a positive number (1 = real time) or fast (got 'slow')",
        ),
    ],
)
def test_mistakes_are_one_line(tmp_path: Path, receiver: str, extra: str, message: str) -> None:
    (tmp_path / "a.wav").write_bytes(b"")
    path = write(tmp_path / "net.yaml", f"{extra}\nreceivers:\n  - {receiver}\n")
    with pytest.raises(ConfigError) as exc:
        load_network(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.removeprefix(f"{path}: ").startswith(message.replace("{dir}", str(tmp_path))), msg


# ------------------------------------------------------------------- bad recordings


def test_unusable_recordings_are_left_out_with_their_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = kiwi_wav(tmp_path / "good", "GOOD")
    lossy = kiwi_wav(tmp_path / "lossy", "LOSSY", lost_after=20)
    nopos = kiwi_wav(tmp_path / "nopos", "NOPOS", position=None)
    fast = kiwi_wav(tmp_path / "fast", "FAST", rate_hz=12_001 * 1.002)  # +2000 ppm
    broken = tmp_path / "broken" / f"{STAMP}_77500_BROKEN_iq.wav"
    broken.parent.mkdir()
    broken.write_bytes(good.read_bytes()[:5000])
    rx = [
        ("good", good),
        ("lossy", lossy),
        ("nopos", nopos),
        ("fast", fast),
        ("broken", broken),
    ]
    doc = {"receivers": [{"id": i, "kind": "kiwi-wav", "options": {"path": str(p)}} for i, p in rx]}
    with caplog.at_level(logging.WARNING, logger="heimdall.producers"):
        recs, skipped = build_recordings(parse_network(doc))
    assert [r.receiver_id for r in recs] == ["good", "lossy"]
    assert len(skipped) == 3 and all("\n" not in s for s in skipped)
    assert skipped[0].startswith("receivers[2] 'nopos': ")
    assert "no position for station NOPOS" in skipped[0]
    assert "give the receiver a position: {lat, lon} or options.position_file" in skipped[0]
    assert skipped[1].startswith(f"receivers[3] 'fast': {fast}: implausible sample rate: ")
    assert "+2000 ppm from the header's 12001 Hz" in skipped[1]
    assert skipped[2].startswith(f"receivers[4] 'broken': {broken}")
    # lost frames: used, said once, and no chunk spans the gap
    assert any("1 jump(s) of the GPS stamps (lost frames" in m for m in caplog.messages)
    chunks = list(recs[1].make().chunks)
    assert [c.n_samples // 512 for c in chunks[:6]] == [5, 5, 5, 5, 1, 5]
    assert chunks[5].t_ns - chunks[4].t_ns == pytest.approx(4 * 512 / 12_001.15 * 1e9, abs=100)
    # the rate check is an option: this file is accepted with a wider bound
    wide = {"path": str(fast), "max_rate_offset_ppm": 2500}
    doc2 = {"receivers": [{"id": "fast", "kind": "kiwi-wav", "options": wide}]}
    recs2, skipped2 = build_recordings(parse_network(doc2))
    assert [r.receiver_id for r in recs2] == ["fast"] and not skipped2


def test_a_recording_without_gps_time_is_published_with_a_free_clock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stale = kiwi_wav(tmp_path, "STALE", gps_age_s=255)  # the receiver never had a GPS fix
    doc = {"receivers": [{"id": "k", "kind": "kiwi-wav", "options": {"path": str(stale)}}]}
    with caplog.at_level(logging.WARNING, logger="heimdall.producers"):
        recs, skipped = build_recordings(parse_network(doc))
    assert not skipped
    assert any("fewer than two good GPS stamps: published with clock=free" in m
               for m in caplog.messages)  # fmt: skip
    chunks = list(recs[0].make().chunks)
    assert len(chunks) == 12 and {c.clock for c in chunks} == {ClockSource.FREE}
    # timed from the file name instead, at the nominal rate
    assert chunks[0].t_ns == START_NS
    assert chunks[1].t_ns - chunks[0].t_ns == round(5 * 512 / 12_001 * 1e9)


def test_a_network_whose_recordings_are_all_unusable_says_why(
    tmp_path: Path, offline: HeimdallSettings
) -> None:
    nopos = kiwi_wav(tmp_path, "NOPOS", position=None)
    doc = {"receivers": [{"id": "k", "kind": "kiwi-wav", "options": {"path": str(nopos)}}]}
    with pytest.raises(ConfigError, match=r"no receiver of the network can run: receivers\[0\]"):
        run_network(offline, parse_network(doc), publisher=FakePublisher())


# --------------------------------------------------------------------------- runs


def test_a_network_of_recordings_replays_them_together_in_event_time(
    tmp_path: Path, offline: HeimdallSettings
) -> None:
    a = kiwi_wav(tmp_path, "AAA", n_blocks=50, offset_s=0.0, position=(50.0, 8.0), seed=1)
    b = kiwi_wav(tmp_path, "BBB", n_blocks=47, offset_s=0.31, position=(48.0, 2.0), seed=2)
    net_file = write(
        tmp_path / "net.yaml",
        f"""
replay: {{pace: fast}}
receivers:
  - {{id: kiwi-a, kind: kiwi-wav, options: {{path: {a.name}}}}}
  - id: kiwi-b
    kind: kiwi-wav
    position: {{lat: 45.5, lon: 9.25, alt: 120}}
    calibration_offset_db: -3
    options: {{path: {b.name}}}
sources:
  - {{id: dcf77, lat: 50.0152, lon: 9.0112, freq_hz: 77500}}
  - {{id: elsewhere, lat: 1, lon: 2, freq_hz: 198000}}
""",
    )
    pub = FakePublisher()
    result = run_network(offline, net_file, publisher=pub)
    t = offline.topics
    iq: list[IqChunk] = pub.of(t.iq)
    ref_a = list(kiwi_chunks(read_kiwi_wav(a), position=Position(lat_deg=50.0, lon_deg=8.0)))
    ref_b = list(kiwi_chunks(read_kiwi_wav(b), position=Position(lat_deg=45.5, lon_deg=9.25)))
    assert result.replay is not None and result.replay.chunks == {"kiwi-a": 10, "kiwi-b": 10}
    assert len(ref_a) == len(ref_b) == 10 and len(iq) == 20
    # merged by event time, each receiver's chunks its recording's, under the receiver's id
    assert [c.t_ns for c in iq] == sorted(c.t_ns for c in ref_a + ref_b)
    got_a = [c for c in iq if c.receiver_id == "kiwi-a"]
    got_b = [c for c in iq if c.receiver_id == "kiwi-b"]
    assert [c.t_ns for c in got_a] == [c.t_ns for c in ref_a]
    assert [c.t_ns for c in got_b] == [c.t_ns for c in ref_b]
    assert all(c.clock is ClockSource.GPS and c.source == "kiwi-wav" for c in iq)
    assert got_a[0].position == Position(lat_deg=50.0, lon_deg=8.0, alt_m=0.0)  # gnss_pos
    assert got_b[0].position == Position(lat_deg=45.5, lon_deg=9.25, alt_m=120.0)  # the file's
    assert {c.full_scale_dbm for c in got_a} == {0.0} and {c.full_scale_dbm for c in got_b} == {-3}
    assert time.gmtime(iq[0].t_ns // 10**9)[:6] == (2017, 11, 27, 10, 41, 56)
    # the keys are the receiver ids, every chunk is published with its event time
    assert all(e[1] == e[2].receiver_id and e[3] == e[2].t_ns for e in pub.events if e[0] == t.iq)
    # truth of the source heard (77.5 kHz), at the first chunk then every whole second
    truths: list[Truth] = pub.of(t.truth)
    assert {x.source_id for x in truths} == {"dcf77"} and result.truths == {"dcf77": len(truths)}
    first = iq[0].t_ns
    end = max(c.t_ns + round(c.n_samples / c.sample_rate_hz * 1e9) for c in iq)
    whole = [k * 10**9 for k in range(first // 10**9 + 1, (end - 1) // 10**9 + 1)]
    assert [x.t_ns for x in truths] == [first, *whole]
    assert truths[0].channel_id == "0.0775MHz" and truths[0].transmitting
    assert truths[0].position == Position(lat_deg=50.0152, lon_deg=9.0112, alt_m=0.0)
    # each truth goes out before the chunk that made it due
    order = [e[0] for e in pub.events if e[0] in (t.iq, t.truth)]
    assert order[:2] == [t.truth, t.iq]
    # ONLINE and OFFLINE statuses of both receivers
    statuses = pub.of(t.receivers)
    assert [(s.receiver_id, s.state.value) for s in statuses] == [
        ("kiwi-a", "online"), ("kiwi-b", "online"), ("kiwi-a", "offline"), ("kiwi-b", "offline")
    ]  # fmt: skip


def test_sigmf_recordings_are_receivers_too(tmp_path: Path, offline: HeimdallSettings) -> None:
    t0 = 1_767_225_600_000_000_000
    rng = np.random.default_rng(3)
    chunks = [
        IqChunk(
            receiver_id="recorded-as",
            seq=k,
            t_ns=t0 + k * 100_000_000,
            clock=ClockSource.NTP,
            center_freq_hz=145.5e6,
            sample_rate_hz=48_000.0,
            sample_format=SampleFormat.CF32,
            iq=(rng.standard_normal(4800) + 1j * rng.standard_normal(4800)).astype(np.complex64),
            full_scale_dbm=-20.0,
            position=Position(lat_deg=45.0, lon_deg=7.6),
            source="sigmf",
        )
        for k in range(5)
    ]
    write_sigmf(chunks, tmp_path / "rec" / "usrp")
    net = load_network(
        write(
            tmp_path / "net.yaml",
            """
replay: {pace: fast}
receivers:
  - {id: usrp-1, kind: sigmf, options: {path: rec/usrp.sigmf-meta, chunk_samples: 2400}}
  - {id: usrp-2, kind: sigmf, options: {path: rec/usrp, clock: gps},
     position: {lat: 44, lon: 8}, calibration_offset_db: 2}
""",
        )
    )
    pub = FakePublisher()
    result = run_network(offline, net, publisher=pub)
    iq: list[IqChunk] = pub.of(offline.topics.iq)
    one = [c for c in iq if c.receiver_id == "usrp-1"]
    two = [c for c in iq if c.receiver_id == "usrp-2"]
    assert result.replay is not None and result.replay.chunks == {"usrp-1": 10, "usrp-2": 3}
    assert [c.t_ns for c in one] == [t0 + k * 50_000_000 for k in range(10)]
    assert [c.n_samples for c in two] == [9600, 9600, 4800]  # the default, 0.2 s
    assert {c.clock for c in one} == {ClockSource.NTP} and {c.clock for c in two} == {
        ClockSource.GPS
    }
    assert one[0].position == Position(lat_deg=45.0, lon_deg=7.6)
    assert two[0].position == Position(lat_deg=44.0, lon_deg=8.0)
    assert {c.full_scale_dbm for c in one} == {-20.0} and {c.full_scale_dbm for c in two} == {-18.0}
    assert np.array_equal(
        np.concatenate([c.iq for c in two]), np.concatenate([c.iq for c in chunks])
    )
    assert result.truths == {} and not pub.of(offline.topics.truth)


def test_loop_continues_event_time_by_whole_seconds(
    tmp_path: Path, offline: HeimdallSettings
) -> None:
    a = kiwi_wav(tmp_path, "AAA", n_blocks=30)  # 30 × 512 / 12001.15 = 1.28 s
    net = parse_network(
        {"replay": {"pace": "fast", "loop": True},
         "receivers": [{"id": "kiwi-a", "kind": "kiwi-wav", "options": {"path": str(a)}}]}
    )  # fmt: skip
    recs, _ = build_recordings(net)
    period = loop_period_ns(recs)
    assert period == 2 * 10**9  # 1.28 s rounded up to whole seconds
    stop = threading.Event()
    pub = FakePublisher(stop_after_iq=16, stop=stop)  # passes of 6 chunks: into the third
    stats = replay_recordings(offline, recs, net.replay, publisher=pub, stop=stop)
    iq: list[IqChunk] = pub.of(offline.topics.iq)
    assert stats.stopped and len(iq) == 16
    one = [c.t_ns for c in iq[:6]]
    assert [c.t_ns for c in iq] == [t + k * period for k in range(3) for t in one][:16]
    assert [c.seq for c in iq] == list(range(16))
    assert len({c.event_id for c in iq}) == 16
    assert np.array_equal(iq[12].iq, iq[0].iq) and iq[12].clock is ClockSource.GPS


class _Producer:
    def poll(self, timeout: float = 0) -> int:
        return 0


def test_recordings_beside_a_live_receiver(tmp_path: Path, offline: HeimdallSettings) -> None:
    """A live receiver that cannot connect and a recording: the recording is replayed on its
    own thread and the run ends with the live receivers (here: when the test says stop)."""
    a = kiwi_wav(tmp_path, "AAA", n_blocks=50)
    net = parse_network(
        {
            "replay": {"pace": "fast"},
            "runtime": {"backoff_base_s": 0.05, "backoff_cap_s": 0.1},
            "receivers": [
                {"id": "rtl-down", "kind": "rtltcp", "address": "127.0.0.1:9",
                 "position": {"lat": 45, "lon": 7}, "options": {"freq_hz": 145.5e6}},
                {"id": "kiwi-a", "kind": "kiwi-wav", "options": {"path": str(a)}},
            ],
            "sources": [{"id": "dcf77", "lat": 50.0152, "lon": 9.0112, "freq_hz": 77500}],
        }
    )  # fmt: skip
    stop = threading.Event()
    pub = FakePublisher(stop_after_iq=10, stop=stop)  # the recording's last chunk
    pub.producer = _Producer()
    result = run_network(offline, net, publisher=pub, stop=stop)
    assert result.replay is not None and result.replay.chunks == {"kiwi-a": 10}
    assert [s.receiver_id for s in result.summary.adapters] == ["rtl-down"]
    assert result.summary.adapters[0].chunks == 0  # nothing to connect to
    assert result.truths == {"dcf77": 3} and len(pub.of(offline.topics.truth)) == 3
    assert {e[2].receiver_id for e in pub.events if e[0] == offline.topics.receivers} == {
        "rtl-down", "kiwi-a"
    }  # fmt: skip


def test_a_recording_that_fails_midway_ends_alone(
    tmp_path: Path, offline: HeimdallSettings, caplog: pytest.LogCaptureFixture
) -> None:
    a = kiwi_wav(tmp_path, "AAA", n_blocks=50)
    b = kiwi_wav(tmp_path, "BBB", n_blocks=50, seed=2)
    net = parse_network(
        {"replay": {"pace": "fast"},
         "receivers": [{"id": i, "kind": "kiwi-wav", "options": {"path": str(p)}}
                       for i, p in (("kiwi-a", a), ("kiwi-b", b))]}
    )  # fmt: skip
    recs, _ = build_recordings(net)

    def failing(make: Any) -> Any:
        def chunks() -> Any:
            for k, c in enumerate(make().chunks):
                if k == 3:
                    raise RecordingError(f"{a}: cannot read samples: cut short")
                yield c

        return lambda: dataclasses.replace(make(), chunks=chunks())

    recs[0] = dataclasses.replace(recs[0], make=failing(recs[0].make))
    pub = FakePublisher()
    with caplog.at_level(logging.ERROR, logger="heimdall.producers"):
        stats = replay_recordings(offline, recs, net.replay, publisher=pub)
    assert stats.chunks == {"kiwi-a": 3, "kiwi-b": 10} and not stats.stopped
    assert f"kiwi-a: the recording stopped after 3 chunks: {a}: cannot read samples: cut short" in (
        caplog.messages
    )
