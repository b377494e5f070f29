"""TDOA blocks in the stream: which snippets meet in which block, and when a block closes."""

from __future__ import annotations

import dataclasses

import numpy as np

from heimdall.core.channels import channel_id_for
from heimdall.schemas.models import ClockSource, IqChunk, Position, SampleFormat
from heimdall.streams.features import measure_chunk
from heimdall.streams.tdoa import TdoaSessions, is_tdoa_snippet

S = 1_000_000_000
FS = 12_000.0
CHUNK_S = 0.2
T0 = 1_700_000_000 * S
WALL = 10_000 * S  # injected wall clock


def chunk(rx: str, t_ns: int, *, clock: ClockSource = ClockSource.GPS, seed: int = 0) -> IqChunk:
    rng = np.random.default_rng(seed)
    n = int(FS * CHUNK_S)
    tone = np.exp(2j * np.pi * 700.0 * np.arange(n) / FS)
    iq = (0.3 * tone + 0.01 * (rng.normal(size=n) + 1j * rng.normal(size=n))).astype(np.complex64)
    return IqChunk(
        receiver_id=rx,
        seq=0,
        t_ns=t_ns,
        clock=clock,
        center_freq_hz=7.03e6,
        sample_rate_hz=FS,
        sample_format=SampleFormat.CI16,
        iq=iq,
        full_scale_dbm=-10.0,
        position=Position(lat_deg=45.0, lon_deg=7.0),
    )


def feed(sess: TdoaSessions, rxs: list[str], t_from: float, t_to: float, wall_ns: int):
    """Every receiver's chunks from t_from to t_to (s after T0), interleaved by time."""
    closed = []
    for k in range(round((t_to - t_from) / CHUNK_S)):
        t = T0 + round((t_from + k * CHUNK_S) * S)
        for rx in rxs:
            c = chunk(rx, t)
            blocks, late = sess.add(c, measure_chunk(c), now_ns=wall_ns)
            assert not late
            closed += blocks
    return closed


def test_snippet_rule_gps_and_detected_only() -> None:
    c = chunk("a", T0)
    m = measure_chunk(c)
    assert m.detected
    assert is_tdoa_snippet(c, m)
    for clock in (ClockSource.NTP, ClockSource.FREE):
        assert not is_tdoa_snippet(dataclasses.replace(c, clock=clock), m)
    assert not is_tdoa_snippet(c, dataclasses.replace(m, detected=False))


def test_blocks_tile_event_time_from_the_first_snippet_and_close_by_watermark() -> None:
    sess = TdoaSessions(window_s=10.0, idle_s=5.0, grace_s=0.0)
    closed = feed(sess, ["a", "b", "c"], 0.0, 25.0, WALL)
    # block 0 = [T0, T0 + 10 s) closes once every receiver is past T0 + 10 s; block 1 too
    assert [b.start_ns for b in closed] == [T0, T0 + 10 * S]
    for b in closed:
        assert sorted(b.chunks) == ["a", "b", "c"]
        for items in b.chunks.values():
            assert len(items) == 50  # 10 s of 0.2 s chunks, each in the block of its start
            assert all(b.start_ns <= c.t_ns < b.end_ns for c, _ in items)
    assert sess.held_chunks() == 3 * 25  # block 2 (5 s so far) still open


def test_an_earlier_first_chunk_of_another_receiver_joins_block_zero() -> None:
    sess = TdoaSessions(window_s=10.0, idle_s=5.0, grace_s=0.0)
    c = chunk("a", T0)
    sess.add(c, measure_chunk(c), now_ns=WALL)
    early = chunk("b", T0 - round(0.3 * S))
    blocks, late = sess.add(early, measure_chunk(early), now_ns=WALL)
    assert not late and not blocks
    closed = sess.close_ready(now_ns=WALL + 6 * S)  # everyone idle: the session ends
    assert len(closed) == 1
    assert closed[0].start_ns == early.t_ns
    assert sorted(closed[0].chunks) == ["a", "b"]
    assert "7.0300MHz" not in sess and channel_id_for(7.03e6) == "7.0300MHz"


def test_idle_receivers_close_every_open_block_and_end_the_session() -> None:
    sess = TdoaSessions(window_s=30.0, idle_s=5.0, grace_s=2.0)
    assert feed(sess, ["a", "b", "c"], 0.0, 12.0, WALL) == []
    assert sess.close_ready(now_ns=WALL + 4 * S) == []  # not idle yet
    closed = sess.close_ready(now_ns=WALL + 6 * S)
    assert len(closed) == 1 and closed[0].n_receivers == 3
    assert sess.held_chunks() == 0 and sess.channels == []
    # the next snippet starts a new session (and a new block 0) at its own time
    closed = feed(sess, ["a"], 100.0, 100.2, WALL + 10 * S)
    assert closed == []
    assert len(sess.channels) == 1
    assert sess.close_ready(now_ns=WALL + 20 * S)[0].start_ns == T0 + 100 * S


def test_grace_holds_the_first_blocks_and_late_snippets_are_refused() -> None:
    sess = TdoaSessions(window_s=1.0, idle_s=5.0, grace_s=2.0)
    assert feed(sess, ["a", "b", "c"], 0.0, 3.0, WALL) == []  # within the grace: none closes
    closed = feed(sess, ["a", "b", "c"], 3.0, 3.2, WALL + 3 * S)
    assert [b.start_ns for b in closed] == [T0, T0 + S, T0 + 2 * S]
    c = chunk("c", T0 + round(0.4 * S))
    blocks, late = sess.add(c, measure_chunk(c), now_ns=WALL + 3 * S)
    assert late and blocks == [] and sess.late == 1


def test_drop_forgets_a_channel() -> None:
    sess = TdoaSessions(window_s=10.0)
    feed(sess, ["a"], 0.0, 1.0, WALL)
    sess.drop(sess.channels)
    assert sess.channels == [] and sess.held_chunks() == 0


def test_strongest_receivers_bound_the_pairs() -> None:
    """A block of 12 receivers correlates only its 8 strongest by mean SNR (28 pairs, not 66);
    ties go to the smaller id; fewer than the limit are all kept."""
    from heimdall.streams.tdoa import TdoaBlock, strongest_receivers

    def m(snr_db: float) -> object:
        return dataclasses.make_dataclass("M", [("snr_db", float)])(snr_db)

    snr = {f"rx{i:02d}": float(i % 6) for i in range(12)}  # 0..5 dB, each twice
    block = TdoaBlock("c", 0, 1, {r: [(None, m(v)), (None, m(v + 2.0))] for r, v in snr.items()})  # type: ignore[misc]
    got = strongest_receivers(block, 8)
    assert got == ["rx02", "rx03", "rx04", "rx05", "rx08", "rx09", "rx10", "rx11"]
    assert strongest_receivers(block, 20) == sorted(snr)


def test_a_snippet_from_long_before_the_session_is_late_not_stretching_block_zero() -> None:
    sess = TdoaSessions(window_s=10.0, idle_s=5.0, grace_s=0.0)
    c = chunk("a", T0)
    sess.add(c, measure_chunk(c), now_ns=WALL)
    ancient = chunk("b", T0 - round(10.5 * S))  # more than one block before the start
    blocks, late = sess.add(ancient, measure_chunk(ancient), now_ns=WALL)
    assert late and not blocks
    closed = sess.close_ready(now_ns=WALL + 6 * S)
    assert [b.start_ns for b in closed] == [T0]
    assert sorted(closed[0].chunks) == ["a"]
