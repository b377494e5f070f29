"""SigMF: chunks → recording → chunks, foreign recordings, capture segmentation, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import sigmf

from heimdall.core.errors import RecordingError
from heimdall.producers.recordings.sigmf_io import (
    SigmfWriter,
    format_sigmf_datetime,
    parse_sigmf_datetime,
    read_sigmf,
    sigmf_chunks,
    write_sigmf,
)
from heimdall.schemas.models import ClockSource, IqChunk, Position, SampleFormat

RATE = 48_000.0
T0 = 1_760_000_000_123_456_789
POS = Position(lat_deg=45.07, lon_deg=7.69, alt_m=240.0)


def ci16_exact(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.integers(-32768, 32768, size=2 * n).astype(np.float32) / np.float32(32768)
    return v.view(np.complex64)


def make_chunks(
    rng: np.random.Generator,
    n_chunks: int,
    n: int = 4800,
    fmt: SampleFormat = SampleFormat.CI16,
    t0: int = T0,
) -> Iterator[IqChunk]:
    for k in range(n_chunks):
        iq = (
            ci16_exact(rng, n)
            if fmt is SampleFormat.CI16
            else (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
        )
        yield IqChunk(
            receiver_id="rx-1",
            seq=k,
            t_ns=t0 + round(k * n * 1e9 / RATE),
            clock=ClockSource.GPS,
            center_freq_hz=433.92e6,
            sample_rate_hz=RATE,
            sample_format=fmt,
            iq=iq,
            full_scale_dbm=-10.5,
            position=POS,
            gain_db=20.0,
            source="sim",
        )


def test_datetime_to_the_nanosecond() -> None:
    assert format_sigmf_datetime(T0) == "2025-10-09T08:53:20.123456789Z"
    assert parse_sigmf_datetime(format_sigmf_datetime(T0)) == T0
    assert parse_sigmf_datetime("2017-11-27T10:41:56Z") == 1_511_779_316 * 10**9
    assert parse_sigmf_datetime("2017-11-27T10:41:56.5Z") == 1_511_779_316_500_000_000
    assert parse_sigmf_datetime("2017-11-27T10:41:56.1234567891Z") % 10**9 == 123_456_789
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_sigmf_datetime("2017-11-27 10:41:56+02:00")


@pytest.mark.parametrize(
    ("fmt", "datatype"), [(SampleFormat.CI16, "ci16_le"), (SampleFormat.CF32, "cf32_le")]
)
def test_round_trip_one_capture(tmp_path: Path, fmt: SampleFormat, datatype: str) -> None:
    chunks = list(make_chunks(np.random.default_rng(1), 5, fmt=fmt))
    meta = write_sigmf(chunks, tmp_path / "rec", description="five chunks")
    assert meta == tmp_path / "rec.sigmf-meta"
    assert (tmp_path / "rec.sigmf-data").stat().st_size == 5 * 4800 * (
        4 if datatype == "ci16_le" else 8
    )
    rec = read_sigmf(meta)
    assert rec.datatype == datatype and rec.sample_format is fmt
    assert rec.sample_rate_hz == RATE and rec.n_samples == 5 * 4800
    assert rec.receiver_id == "rx-1" and rec.full_scale_dbm == -10.5 and rec.gain_db == 20.0
    assert rec.position == POS
    (cap,) = rec.captures
    assert (cap.sample_start, cap.n_samples, cap.t_ns, cap.center_freq_hz) == (
        0,
        24000,
        T0,
        433.92e6,
    )
    assert (cap.clock, cap.seq, cap.position) == (ClockSource.GPS, 0, POS)
    back = list(sigmf_chunks(rec, chunk_samples=4800))
    assert len(back) == 5
    for a, b in zip(chunks, back, strict=True):
        assert b.t_ns == a.t_ns and b.seq == a.seq
        assert np.array_equal(b.iq, a.iq)
        assert replace(b, event_id=a.event_id, source=a.source) == a
    raw = json.loads(meta.read_text())
    assert raw["global"]["core:geolocation"] == {
        "type": "Point",
        "coordinates": [7.69, 45.07, 240.0],
    }
    assert raw["global"]["core:extensions"][0]["name"] == "heimdall"
    assert raw["global"]["core:description"] == "five chunks"


def test_a_capture_per_discontinuity(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    c = list(make_chunks(rng, 10))
    c[3] = replace(c[3], seq=c[3].seq + 5)  # seq gap before chunk 3 (then 4 gaps again)
    c[6] = replace(c[6], t_ns=c[6].t_ns + 2_000)  # 2 µs late: a time discontinuity
    c[8] = replace(c[8], center_freq_hz=868e6)  # retuned
    c[9] = replace(c[9], center_freq_hz=868e6, clock=ClockSource.NTP)
    # within tolerance (< min(1 µs, half a sample = 10.4 µs)): no new capture
    c[2] = replace(c[2], t_ns=c[2].t_ns + 900)
    meta = write_sigmf(c, tmp_path / "gaps")
    rec = read_sigmf(meta)
    starts = [cap.sample_start // 4800 for cap in rec.captures]
    assert starts == [0, 3, 4, 6, 7, 8, 9]
    assert [cap.seq for cap in rec.captures] == [0, 8, 4, 6, 7, 8, 9]
    assert [cap.t_ns for cap in rec.captures] == [c[k].t_ns for k in starts]
    assert rec.captures[-1].clock is ClockSource.NTP
    assert rec.captures[-2].center_freq_hz == 868e6
    back = list(sigmf_chunks(rec, chunk_samples=4800))
    assert np.array_equal(np.concatenate([b.iq for b in back]), np.concatenate([x.iq for x in c]))
    # chunk times are rebuilt from their capture: the 900 ns of chunk 2 are not kept
    assert [b.t_ns for b in back] == [x.t_ns for x in c[:2]] + [
        c[1].t_ns + c[1].t_ns - c[0].t_ns
    ] + [x.t_ns for x in c[3:]]


def test_writer_refusals(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a, b = list(make_chunks(rng, 2))
    with pytest.raises(RecordingError, match="sample rate changed"):
        write_sigmf([a, replace(b, sample_rate_hz=RATE * 2)], tmp_path / "r1")
    assert not (tmp_path / "r1.sigmf-data").exists()  # aborted: nothing left behind
    with pytest.raises(RecordingError, match="chunk of 'rx-2' in a recording of 'rx-1'"):
        write_sigmf([a, replace(b, receiver_id="rx-2")], tmp_path / "r2")
    with pytest.raises(RecordingError, match="no IQ chunks"):
        write_sigmf([], tmp_path / "r3")
    write_sigmf([a], tmp_path / "r4")
    with pytest.raises(RecordingError, match="exists"):
        SigmfWriter(tmp_path / "r4.sigmf-meta")
    assert write_sigmf([a, b], tmp_path / "r4", overwrite=True).exists()
    assert read_sigmf(tmp_path / "r4").n_samples == 9600


def test_foreign_recording_without_heimdall_keys(tmp_path: Path) -> None:
    """A ci16_le file written with the sigmf package only: datetime to the µs, global position."""
    rng = np.random.default_rng(4)
    iq = ci16_exact(rng, 30_000)
    (tmp_path / "usrp.sigmf-data").write_bytes(
        np.clip(np.rint(iq.view(np.float32) * 32768), -32768, 32767).astype("<i2").tobytes()
    )
    meta = sigmf.SigMFFile(
        global_info={
            "core:datatype": "ci16_le",
            "core:sample_rate": 1e6,
            "core:geolocation": {"type": "Point", "coordinates": [-107.6, 34.07, 2120.0]},
        },
        data_file=str(tmp_path / "usrp.sigmf-data"),
    )
    meta.add_capture(0, {"core:frequency": 1.5e9, "core:datetime": "2024-02-29T12:00:00.250000Z"})
    meta.add_capture(20_000, {"core:frequency": 1.6e9})  # no datetime: continues
    meta.tofile(str(tmp_path / "usrp"))
    rec = read_sigmf(tmp_path / "usrp.sigmf-data")
    assert rec.receiver_id is None and rec.sample_format is SampleFormat.CI16
    chunks = list(sigmf_chunks(rec))  # 0.2 s = 200000 samples: one chunk per capture
    assert [c.n_samples for c in chunks] == [20_000, 10_000]
    t0 = parse_sigmf_datetime("2024-02-29T12:00:00.25Z")
    assert [c.t_ns for c in chunks] == [t0, t0 + 20_000_000]
    assert [c.center_freq_hz for c in chunks] == [1.5e9, 1.6e9]
    assert all(c.clock is ClockSource.FREE for c in chunks)
    assert chunks[0].receiver_id == "usrp"
    assert chunks[0].position == Position(lat_deg=34.07, lon_deg=-107.6, alt_m=2120.0)
    assert np.array_equal(np.concatenate([c.iq for c in chunks]), iq)
    gps = list(sigmf_chunks(rec, clock=ClockSource.GPS, receiver_id="usrp-b210"))
    assert gps[0].clock is ClockSource.GPS and gps[0].receiver_id == "usrp-b210"


def test_unusable_recordings(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="not a readable SigMF recording"):
        read_sigmf(tmp_path / "missing")
    (tmp_path / "junk.sigmf-meta").write_text("{not json")
    with pytest.raises(RecordingError, match="not a readable SigMF recording"):
        read_sigmf(tmp_path / "junk.sigmf-meta")
    (tmp_path / "real.sigmf-data").write_bytes(np.zeros(100, "<f4").tobytes())
    m = sigmf.SigMFFile(
        global_info={"core:datatype": "rf32_le", "core:sample_rate": 1e3},
        data_file=str(tmp_path / "real.sigmf-data"),
    )
    m.add_capture(0, {"core:frequency": 1e6})
    m.tofile(str(tmp_path / "real"))
    with pytest.raises(RecordingError, match="not complex IQ"):
        read_sigmf(tmp_path / "real")
    # no position anywhere
    (tmp_path / "nopos.sigmf-data").write_bytes(np.zeros(100, "<f4").tobytes())
    m = sigmf.SigMFFile(
        global_info={"core:datatype": "cf32_le", "core:sample_rate": 1e3},
        data_file=str(tmp_path / "nopos.sigmf-data"),
    )
    m.add_capture(0, {"core:frequency": 1e6, "core:datetime": "2024-01-01T00:00:00Z"})
    m.tofile(str(tmp_path / "nopos"))
    with pytest.raises(RecordingError, match="no core:geolocation"):
        list(sigmf_chunks(read_sigmf(tmp_path / "nopos")))
    # a checksum that does not match the data
    write_sigmf(make_chunks(np.random.default_rng(5), 1), tmp_path / "sum")
    with open(tmp_path / "sum.sigmf-data", "r+b") as f:
        f.write(b"\x01\x02")
    with pytest.raises(RecordingError, match="hash"):
        read_sigmf(tmp_path / "sum")
    assert read_sigmf(tmp_path / "sum", skip_checksum=True).n_samples == 4800
