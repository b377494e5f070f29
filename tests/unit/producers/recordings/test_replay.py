"""Recordings as IQ chunks, merged and paced, published through a recording publisher."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from heimdall.core.errors import RecordingError
from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.core.shared_data import shared_data_dir
from heimdall.producers.publisher import Publisher
from heimdall.producers.recordings import replay as replay_module
from heimdall.producers.recordings.kiwi_wav import read_kiwi_wav, write_kiwi_wav
from heimdall.producers.recordings.replay import (
    kiwi_chunks,
    kiwi_position,
    kiwi_source,
    replay,
    replay_kiwi_wav,
)
from heimdall.producers.recordings.sigmf_io import read_sigmf, sigmf_chunks, write_sigmf
from heimdall.schemas.models import ClockSource, IqChunk, Position, ReceiverStatus, SampleFormat

DATA = shared_data_dir("kiwi-dcf77")
WAVS = sorted(DATA.glob("*_iq.wav"))

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared KiwiSDR data not present")


class FakePublisher:
    """Records what would have been produced, and when (by ``clock``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.events: list[tuple[str, str, Any, int | None, float]] = []
        self.clock = clock

    def publish(self, topic: str, key: str, event: Any, t_ns: int | None = None) -> None:
        self.events.append((topic, key, event, t_ns, self.clock()))

    def flush(self, timeout_s: float = 30.0) -> int:
        return 0


class FakeClock(threading.Event):
    """The replay's wall clock, which moves only when the replay waits.

    Used as the replay's ``stop`` event (its ``wait(delay)`` is the pacing) and, patched in
    as ``replay.time``, as its ``time.monotonic``: the pacing is then checked exactly, not
    against a wall-clock window that a loaded machine stretches. ``stop_after_s`` sets the
    event when that much time has passed, as a user's Ctrl-C would.
    """

    def __init__(self, stop_after_s: float | None = None) -> None:
        super().__init__()
        self.now_s = 1000.0
        self.stop_at_s = None if stop_after_s is None else self.now_s + stop_after_s

    def monotonic(self) -> float:
        return self.now_s

    def time_ns(self) -> int:
        return time.time_ns()

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None and timeout > 0
        if self.stop_at_s is not None and self.now_s + timeout >= self.stop_at_s:
            self.now_s = self.stop_at_s
            self.set()
            return True
        self.now_s += timeout
        return False


@pytest.fixture
def offline_settings(tmp_path: Path) -> HeimdallSettings:
    return load_settings(data_dir=tmp_path)


def iq_events(pub: FakePublisher, settings: HeimdallSettings) -> list[IqChunk]:
    return [e[2] for e in pub.events if e[0] == settings.topics.iq]


def test_kiwi_chunks_fields() -> None:
    rec = read_kiwi_wav(WAVS[0])  # DF0KL
    pos = kiwi_position(rec)
    chunks = list(kiwi_chunks(rec, position=pos, blocks_per_chunk=5))
    assert len(chunks) == -(-rec.n_blocks // 5) == 138
    assert [c.seq for c in chunks] == list(range(138))
    assert sum(c.n_samples for c in chunks) == rec.n_samples
    assert {c.n_samples for c in chunks[:-1]} == {2560}
    assert np.array_equal(np.concatenate([c.iq for c in chunks]), rec.samples)
    c0 = chunks[0]
    assert c0.receiver_id == "kiwi-df0kl" and c0.source == "kiwi-wav"
    assert c0.center_freq_hz == 77_500.0 and c0.sample_rate_hz == rec.fitted_rate_hz
    assert c0.sample_format is SampleFormat.CI16 and c0.position == pos
    assert all(c.clock is ClockSource.GPS for c in chunks)  # solutions are 0-5 s old
    # t_ns: the UTC time of each chunk's first sample, GPS-derived
    utc = rec.sample_times_utc_ns()
    assert [c.t_ns for c in chunks] == [int(utc[k * 2560]) for k in range(138)]
    # block 1's stamp (124934.171899011 s of GPS week 1977, which began 2017-11-25T23:59:42
    # UTC) less one block of 512 samples: 2017-11-27T10:41:56.129236 UTC
    week_start_ns = 1_511_654_382 * 10**9
    expected = week_start_ns + 124_934_171_899_011 - 512 / rec.fitted_rate_hz * 1e9
    assert c0.t_ns == pytest.approx(expected, abs=2)
    steps = np.diff([c.t_ns for c in chunks[:-1]])
    # chunk spacing follows the stamps, which step by up to ~0.2 µs at DF0KL's GPS updates
    assert np.abs(steps - 2560 / rec.fitted_rate_hz * 1e9).max() < 400  # ns
    for c in chunks:
        c.validate(1 << 20)


def test_clock_is_free_where_the_solution_is_old() -> None:
    rec = read_kiwi_wav(WAVS[0], max_solution_age_s=3)
    pos = kiwi_position(rec)
    chunks = list(kiwi_chunks(rec, position=pos, blocks_per_chunk=1))
    old = rec.last_gps_solution >= 3
    assert 0 < old.sum() < rec.n_blocks
    assert [c.clock is ClockSource.FREE for c in chunks] == old.tolist()


def test_chunks_do_not_span_a_gap(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    rate = 12_001.2
    n = np.r_[0:12, 15:30] * 512  # three packets lost after block 11
    t = 100.0 + n / rate
    iq = (rng.integers(-3000, 3000, size=2 * 27 * 512) / 32768).astype(np.float32)
    p = write_kiwi_wav(tmp_path / "20200101T000000Z_10000_GAP_iq.wav", iq.view(np.complex64), t)
    rec = read_kiwi_wav(p)
    chunks = list(kiwi_chunks(rec, position=Position(lat_deg=1, lon_deg=2), blocks_per_chunk=5))
    assert [c.n_samples // 512 for c in chunks] == [5, 5, 2, 5, 5, 5]
    # the chunk after the gap starts 3 packets (+ its own 2 blocks) after the one before it
    gap_ns = chunks[3].t_ns - chunks[2].t_ns
    assert gap_ns == pytest.approx((2 + 3) * 512 / rate * 1e9, abs=5)


def test_unnamed_file_needs_frequency_and_date(tmp_path: Path) -> None:
    p = tmp_path / "x.wav"
    p.write_bytes(WAVS[0].read_bytes())
    rec = read_kiwi_wav(p)
    with pytest.raises(RecordingError, match="centre frequency unknown"):
        next(kiwi_chunks(rec, position=Position(lat_deg=0, lon_deg=0)))
    with pytest.raises(RecordingError, match="recording date unknown"):
        next(kiwi_chunks(rec, position=Position(lat_deg=0, lon_deg=0), center_freq_hz=77.5e3))
    with pytest.raises(RecordingError, match="no position for station x"):
        kiwi_position(rec)


def test_replay_merges_receivers_in_event_time(offline_settings: HeimdallSettings) -> None:
    pub = FakePublisher()
    stats = replay_kiwi_wav(offline_settings, WAVS, realtime=False, publisher=cast(Publisher, pub))
    t = offline_settings.topics
    statuses = [e[2] for e in pub.events if e[0] == t.receivers]
    assert len(statuses) == 6 and all(isinstance(s, ReceiverStatus) for s in statuses)
    assert [s.state.value for s in statuses] == ["online"] * 3 + ["offline"] * 3
    chunks = iq_events(pub, offline_settings)
    assert [c.t_ns for c in chunks] == sorted(c.t_ns for c in chunks)
    assert stats.chunks == {"kiwi-df0kl": 138, "kiwi-f1jek": 136, "kiwi-hb9ryz": 139}
    assert stats.samples["kiwi-f1jek"] == 680 * 512
    # key = receiver id, timestamp = event time, published_ns set at publication
    for topic, key, event, t_ns, _ in pub.events:
        if topic == t.iq:
            assert key == event.receiver_id and t_ns == event.t_ns and event.published_ns > 0
    # the first chunks of the three receivers lie within half a second
    firsts = {c.receiver_id: c.t_ns for c in reversed(chunks)}
    assert max(firsts.values()) - min(firsts.values()) < 0.5e9


def test_replay_is_paced(
    offline_settings: HeimdallSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At speed 20, 29.3 s of recording take 29.3 / 20 s; each chunk leaves once it 'exists'
    (its last sample's time, divided by the speed), not before and not later."""
    rec = read_kiwi_wav(WAVS[0])
    src = kiwi_source(rec, position=kiwi_position(rec), blocks_per_chunk=25)
    clock = FakeClock()
    monkeypatch.setattr(replay_module, "time", clock)
    start = clock.now_s
    pub = FakePublisher(clock.monotonic)
    seen: list[tuple[int, int]] = []
    stats = replay(
        offline_settings,
        [src],
        speed=20.0,
        publisher=cast(Publisher, pub),
        stop=clock,
        on_progress=lambda d, n: seen.append((d, n)),
    )
    iq = [e for e in pub.events if e[0] == offline_settings.topics.iq]
    t_first = iq[0][2].t_ns
    for _, _, c, _, wall in iq:
        due = (c.t_ns + round(c.duration_s * 1e9) - t_first) / 1e9 / 20
        assert wall - start == pytest.approx(due, abs=1e-9)
    last = iq[-1][2]
    assert stats.wall_s == pytest.approx((last.t_ns - t_first) / 1e9 / 20 + last.duration_s / 20)
    assert 1.40 < stats.wall_s < 1.50  # 29.3 s of recording / 20
    assert seen[-1] == (rec.n_samples, rec.n_samples) and not stats.stopped


def test_replay_stops_when_told(
    offline_settings: HeimdallSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped 0.3 s into a real-time replay: the chunks that existed by then were published,
    the one being waited for was not, and the receiver is reported offline."""
    rec = read_kiwi_wav(WAVS[0])
    src = kiwi_source(rec, position=kiwi_position(rec))
    clock = FakeClock(stop_after_s=0.3)
    monkeypatch.setattr(replay_module, "time", clock)
    pub = FakePublisher(clock.monotonic)
    stats = replay(offline_settings, [src], speed=1.0, publisher=cast(Publisher, pub), stop=clock)
    assert stats.stopped and stats.wall_s == pytest.approx(0.3)
    chunks = list(kiwi_chunks(rec, position=kiwi_position(rec)))
    t0 = chunks[0].t_ns
    existed = [c for c in chunks if (c.t_ns - t0) / 1e9 + c.duration_s <= 0.3]
    assert sum(stats.chunks.values()) == len(existed) > 0
    assert [e[2].state.value for e in pub.events if e[0] == offline_settings.topics.receivers][
        -1
    ] == "offline"


def test_kiwi_to_sigmf_and_back(tmp_path: Path) -> None:
    rec = read_kiwi_wav(WAVS[2])  # HB9RYZ
    chunks = list(kiwi_chunks(rec, position=kiwi_position(rec)))
    meta = write_sigmf(chunks, tmp_path / "hb9ryz")
    back = read_sigmf(meta)
    assert len(back.captures) == 1  # the GPS time base is continuous to < 1 µs
    assert back.sample_rate_hz == rec.fitted_rate_hz
    out = list(sigmf_chunks(back, chunk_samples=2560))
    assert np.array_equal(np.concatenate([c.iq for c in out]), rec.samples)
    assert out[0].t_ns == chunks[0].t_ns and out[0].clock is ClockSource.GPS
    assert out[0].position == chunks[0].position and out[0].receiver_id == "kiwi-hb9ryz"
    err = np.array([a.t_ns - b.t_ns for a, b in zip(out, chunks, strict=True)])
    assert np.abs(err).max() < 1_000  # ns: the linear time base of one capture
