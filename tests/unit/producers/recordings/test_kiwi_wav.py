"""The KiwiSDR IQ WAV reader against the three real DCF77 recordings and synthetic files."""

from __future__ import annotations

import calendar
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from heimdall.core.errors import HeimdallError, RecordingError
from heimdall.core.shared_data import shared_data_dir
from heimdall.producers.recordings.gpstime import gps_week_and_seconds
from heimdall.producers.recordings.kiwi_wav import (
    find_gnss_pos,
    parse_kiwi_filename,
    read_gnss_pos,
    read_kiwi_wav,
    write_kiwi_wav,
)

DATA = shared_data_dir("kiwi-dcf77")
STATIONS = ("DF0KL", "F1JEK", "HB9RYZ")
HEADER = 36  # RIFF (12) + fmt chunk (8 + 16)
BLOCK = 8 + 10 + 8 + 2048  # kiwi chunk + data chunk of 512 IQ pairs
START_NS = calendar.timegm((2017, 11, 27, 10, 41, 56, 0, 0, 0)) * 1_000_000_000
#: fitted rates measured on these files (Hz), and their GPS-solution-age sequences' maxima
MEASURED_RATE_HZ = {"DF0KL": 12001.144970, "F1JEK": 12001.201920, "HB9RYZ": 12001.132149}

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared KiwiSDR data not present")


def wav(station: str) -> Path:
    return DATA / f"20171127T104156Z_77500_{station}_iq.wav"


def raw_stamps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(last_gps_solution, gpssec + 1e-9 gpsnsec) per block, read with struct, independently."""
    b = path.read_bytes()
    n = (len(b) - HEADER) // BLOCK
    last, t = [], []
    for k in range(n):
        o = HEADER + k * BLOCK
        assert b[o : o + 4] == b"kiwi" and b[o + 18 : o + 22] == b"data"
        lg, _, s, ns = struct.unpack_from("<BBII", b, o + 8)
        last.append(lg)
        t.append(s + ns * 1e-9)
    return np.array(last), np.array(t)


# ------------------------------------------------------------------------ real files


@pytest.mark.parametrize("station", STATIONS)
def test_real_file_layout_and_counts(station: str) -> None:
    path = wav(station)
    size = path.stat().st_size
    assert (size - HEADER) % BLOCK == 0
    n_blocks = (size - HEADER) // BLOCK
    rec = read_kiwi_wav(path)
    assert rec.station == station
    assert rec.center_freq_hz == 77_500.0
    assert rec.start_utc_ns == START_NS
    assert rec.nominal_rate_hz == 12001.0
    assert rec.n_blocks == n_blocks
    assert rec.n_samples == 512 * n_blocks
    assert rec.samples.dtype == np.complex64
    assert (rec.block_lengths == 512).all()
    # samples are int16 / 32768: the first data chunk starts at byte 36 + 18 + 8
    first = np.frombuffer(path.read_bytes()[62 : 62 + 16], dtype="<i2") / 32768.0
    np.testing.assert_array_equal(rec.samples[:4].view(np.float32), first.astype(np.float32))
    assert 29.0 < rec.duration_s < 29.6  # 680-691 blocks of 512 at 12001 Hz
    last, t = raw_stamps(path)
    np.testing.assert_array_equal(rec.last_gps_solution, last)
    np.testing.assert_array_equal(rec.block_gps_s, t)


@pytest.mark.parametrize("station", STATIONS)
def test_real_file_time_base(station: str) -> None:
    rec = read_kiwi_wav(wav(station))
    _, t = raw_stamps(wav(station))
    # block 0 carries a stamp hundreds of seconds old; the rest are good
    assert t[1] - t[0] > 200.0
    assert rec.stale_blocks.tolist() == [True] + [False] * (rec.n_blocks - 1)
    assert not rec.outlier_blocks.any()
    assert rec.good_blocks.sum() == rec.n_blocks - 1
    assert rec.discontinuities == []
    # the rate: about 12001.1-12001.2 Hz, as measured, and as upstream computes it
    # (tdoa_read_data.m: 512 / mean(diff(gpssec)(2:end)))
    assert 12001.1 < rec.fitted_rate_hz < 12001.21
    assert rec.fitted_rate_hz == pytest.approx(MEASURED_RATE_HZ[station], abs=1e-5)
    upstream = 512 / np.mean(np.diff(t[1:]))
    assert rec.fitted_rate_hz == pytest.approx(upstream, abs=2e-4)
    assert 10.0 < rec.rate_offset_ppm < 17.0
    # the stamps lie on a line to a fraction of a microsecond; the drift is tiny
    assert rec.fit_residual_rms_s < 0.1e-6
    assert abs(rec.rate_drift_hz_per_s) < 2e-5
    # the piecewise time base passes through every good stamp and rises by ~1/rate
    st = rec.sample_times_s()
    good = np.flatnonzero(rec.good_blocks)
    np.testing.assert_array_equal(st[rec.block_starts[good]], t[good])
    dt = np.diff(st)
    assert dt.min() > 0
    # (stamp jitter of up to 0.16 µs per 42.7 ms block makes the local rate vary by < 10 ppm)
    np.testing.assert_allclose(dt, 1 / rec.fitted_rate_hz, rtol=1e-5)
    # block 0 is placed by extrapolation, one block before block 1
    assert st[512] - st[0] == pytest.approx(512 / rec.fitted_rate_hz, abs=1e-9)
    assert np.abs(rec.sample_times_s("linear") - st).max() < 0.5e-6
    assert np.abs(rec.sample_times_s("quadratic") - st).max() < 0.5e-6


@pytest.mark.parametrize("station", STATIONS)
def test_real_file_utc(station: str) -> None:
    rec = read_kiwi_wav(wav(station))
    assert rec.gps_week == 1977
    # GPS week 1977 began 2017-11-26T00:00:00 GPS = 2017-11-25T23:59:42 UTC (GPS-UTC = 18 s)
    assert rec.gps_week_start_utc_ns == calendar.timegm((2017, 11, 25, 23, 59, 42)) * 10**9
    utc = rec.sample_times_utc_ns()
    assert abs(int(utc[0]) - START_NS) < 500_000_000  # the file name is the recorder's clock
    t0 = rec.sample_times_s()[0]
    assert int(utc[0]) == rec.gps_week_start_utc_ns + round(t0 * 1e9)


def test_real_files_overlap_in_time() -> None:
    recs = [read_kiwi_wav(wav(s)) for s in STATIONS]
    starts = [int(r.sample_times_utc_ns()[0]) for r in recs]
    ends = [int(r.sample_times_utc_ns()[-1]) for r in recs]
    assert min(ends) - max(starts) > 28e9


# ---------------------------------------------------------------------- bad files


def copy_bytes(tmp_path: Path, data: bytes, station: str = "DF0KL") -> Path:
    p = tmp_path / f"20171127T104156Z_77500_{station}_iq.wav"
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    ("cut", "offset", "words"),
    [
        (1_000_000, HEADER + 482 * BLOCK + 18, "'data' chunk declares 2048 bytes"),
        (HEADER + 100 * BLOCK + 5, HEADER + 100 * BLOCK, "header of the b'kiwi'"),
        (HEADER + 100 * BLOCK + 12, HEADER + 100 * BLOCK, "'kiwi' chunk declares 10 bytes"),
        (HEADER + 300 * BLOCK, HEADER + 300 * BLOCK, "RIFF header declares 1424874 bytes"),
        (30, 12, "'fmt ' chunk declares 16 bytes"),
        (7, 7, "before the 12-byte RIFF header"),
    ],
)
def test_truncated_copies_name_file_and_offset(
    tmp_path: Path, cut: int, offset: int, words: str
) -> None:
    p = copy_bytes(tmp_path, wav("DF0KL").read_bytes()[:cut])
    with pytest.raises(RecordingError) as e:
        read_kiwi_wav(p)
    msg = str(e.value)
    assert str(p) in msg
    assert f"byte {offset}:" in msg
    assert words in msg
    assert isinstance(e.value, HeimdallError)


def test_truncated_copy_can_be_read_up_to_the_last_whole_block(tmp_path: Path) -> None:
    full = read_kiwi_wav(wav("DF0KL"))
    p = copy_bytes(tmp_path, wav("DF0KL").read_bytes()[:1_000_000])
    rec = read_kiwi_wav(p, allow_truncated=True)
    assert rec.n_blocks == 482
    np.testing.assert_array_equal(rec.samples, full.samples[: 482 * 512])
    assert rec.fitted_rate_hz == pytest.approx(full.fitted_rate_hz, abs=2e-4)


@pytest.mark.parametrize(
    ("offset", "new", "words"),
    [
        (HEADER + 10 * BLOCK + 18, b"dxta", "chunk id b'dxta' where b'data' was expected"),
        (HEADER + 5 * BLOCK, b"kiwj", "chunk id b'kiwj' where b'kiwi' was expected"),
        (12, b"fmt_", "chunk id b'fmt_' where b'fmt ' was expected"),
        (0, b"RIFX", "not a RIFF file"),
        (8, b"AVI ", "not a WAVE file"),
    ],
)
def test_corrupted_chunk_id(tmp_path: Path, offset: int, new: bytes, words: str) -> None:
    b = bytearray(wav("DF0KL").read_bytes())
    b[offset : offset + 4] = new
    p = copy_bytes(tmp_path, bytes(b))
    with pytest.raises(RecordingError, match=rf"byte {offset}: .*{words[:20]}") as e:
        read_kiwi_wav(p)
    assert str(p) in str(e.value) and words in str(e.value)
    with pytest.raises(RecordingError):  # not a truncation: allow_truncated does not hide it
        read_kiwi_wav(p, allow_truncated=True)


def test_wrong_format_and_sizes(tmp_path: Path) -> None:
    b = bytearray(wav("DF0KL").read_bytes())
    b[22:24] = struct.pack("<H", 1)  # one channel
    with pytest.raises(RecordingError, match=r"byte 20: not 16-bit PCM IQ"):
        read_kiwi_wav(copy_bytes(tmp_path, bytes(b)))
    b = bytearray(wav("DF0KL").read_bytes())
    b[HEADER + 4 : HEADER + 8] = struct.pack("<I", 12)  # kiwi chunk of 12 bytes
    with pytest.raises(RecordingError, match=rf"byte {HEADER}: 'kiwi' chunk of 12 bytes"):
        read_kiwi_wav(copy_bytes(tmp_path, bytes(b)))
    with pytest.raises(RecordingError, match="cannot read"):
        read_kiwi_wav(tmp_path / "missing_iq.wav")


# ------------------------------------------------------------------------ synthetic


def int16_iq(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random complex samples that int16 represents exactly (k / 32768)."""
    v = rng.integers(-32768, 32768, size=2 * n).astype(np.float32) / np.float32(32768)
    return v.view(np.complex64)


def stamps(n_blocks: int, t0: float, rate: float, drift: float = 0.0) -> np.ndarray:
    """GPS seconds of week of each 512-sample block, rate (Hz) changing by drift (Hz/s):
    whole ns, as a Kiwi writes them, expressed as sec + 1e-9 nsec like the reader."""
    n = np.arange(n_blocks) * 512.0
    # t(n) for f(t) = rate + drift t: n = rate t + drift t²/2
    t = n / rate if drift == 0 else (-rate + np.sqrt(rate**2 + 2 * drift * n)) / drift
    tot = np.round((t0 + t) * 1e9).astype(np.int64)
    sec, nsec = np.divmod(tot, 1_000_000_000)
    return sec.astype(np.float64) + nsec.astype(np.float64) * 1e-9


def test_synthetic_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    iq = int16_iq(rng, 20 * 512 + 300)  # 21 blocks, the last one short
    t = stamps(21, 300_000.25, 12_000.37)
    ages = rng.integers(0, 6, size=21)
    p = write_kiwi_wav(
        tmp_path / "20240310T120000Z_10000000_TEST-1_iq.wav", iq, t, last_gps_solution=ages
    )
    size = p.stat().st_size
    assert size == HEADER + 20 * BLOCK + (8 + 10 + 8 + 4 * 300)
    rec = read_kiwi_wav(p)
    np.testing.assert_array_equal(rec.samples, iq)
    np.testing.assert_array_equal(rec.block_gps_s, t)
    np.testing.assert_array_equal(rec.last_gps_solution, ages)
    assert rec.block_lengths.tolist() == [512] * 20 + [300]
    assert rec.station == "TEST-1" and rec.center_freq_hz == 10e6
    assert rec.nominal_rate_hz == 12001.0
    assert rec.fitted_rate_hz == pytest.approx(12_000.37, rel=1e-9)
    # rewriting what was read gives the same bytes
    q = write_kiwi_wav(
        tmp_path / "again_iq.wav", rec.samples, rec.block_gps_s, last_gps_solution=ages
    )
    assert q.read_bytes() == p.read_bytes()


def test_synthetic_stale_outlier_gap_and_drift(tmp_path: Path) -> None:
    """A stale first stamp, an outlier, a block without recent GPS and three lost packets."""
    rng = np.random.default_rng(11)
    rate, drift = 12_001.15, 0.004
    n_true = 3000
    t_true = stamps(n_true, 200_000.0, rate, drift)
    keep = np.r_[0:1500, 1503:n_true]  # packets 1500-1502 were lost
    t = t_true[keep].copy()
    t[0] -= 431.2  # the first stamp is the previous session's
    t[700] += 3e-3  # one outlier
    ages = np.full(keep.shape[0], 2)
    ages[900] = 254  # no recent GPS solution
    iq = int16_iq(rng, keep.shape[0] * 512)
    p = write_kiwi_wav(
        tmp_path / "20171225T080000Z_77500_SYN_iq.wav", iq, t, last_gps_solution=ages
    )
    rec = read_kiwi_wav(p)
    assert np.flatnonzero(rec.stale_blocks).tolist() == [0, 900]
    assert np.flatnonzero(rec.outlier_blocks).tolist() == [700]
    assert rec.good_blocks.sum() == keep.shape[0] - 3
    # one discontinuity: block 1500 of the file is 3 packets late
    ((k, jump),) = rec.discontinuities
    assert k == 1500
    assert jump == pytest.approx(3 * 512 / rate, rel=1e-3)
    assert rec.block_segment[1499] == 0 and rec.block_segment[1500] == 1
    # time base: every sample within 2 ns of the truth, bad blocks included
    n_of_keep = (keep[:, None] * 512 + np.arange(512)).reshape(-1).astype(np.float64)
    truth = 200_000.0 + (-rate + np.sqrt(rate**2 + 2 * drift * n_of_keep)) / drift
    assert np.abs(rec.sample_times_s() - truth).max() < 2e-9
    # a linearly drifting rate makes τ(n) slightly cubic: d²n³/(2f⁵) ≈ 0.1 µs over 1.5e6 samples
    assert np.abs(rec.sample_times_s("quadratic") - truth).max() < 0.5e-6
    # rate and drift over the ~128 s: mean rate = rate + drift * T/2
    duration = (t_true[-1] - t_true[0]) + 512 / rate
    assert rec.fitted_rate_hz == pytest.approx(rate + drift * duration / 2, abs=2e-3)
    assert rec.rate_drift_hz_per_s == pytest.approx(drift, rel=0.02)


def test_week_rollover_is_unwrapped(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    t = stamps(60, 604_799.0, 12_001.0)  # crosses the end of the GPS week after ~1 s
    t = np.where(t >= 604_800.0, t - 604_800.0, t)
    assert t.min() < 1.0 < 604_799.0 < t.max()
    # the GPS week of that file name: 2017-12-02T23:59:41 UTC = week 1977, 604799 s GPS
    week, sow = gps_week_and_seconds(calendar.timegm((2017, 12, 2, 23, 59, 41)) * 10**9)
    assert (week, sow) == (1977, 604_799.0)
    p = write_kiwi_wav(tmp_path / "20171202T235941Z_77500_W_iq.wav", int16_iq(rng, 60 * 512), t)
    rec = read_kiwi_wav(p)
    assert rec.gps_week == 1977
    assert (np.diff(rec.block_gps_s[1:]) > 0).all()
    assert rec.block_gps_s[-1] > 604_800.0
    utc = rec.sample_times_utc_ns()
    assert (np.diff(utc) > 0).all()
    assert rec.fitted_rate_hz == pytest.approx(12_001.0, rel=1e-9)


def test_without_gps_the_time_base_is_nominal_and_flagged(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    p = write_kiwi_wav(
        tmp_path / "20171127T104156Z_77500_NOGPS_iq.wav",
        int16_iq(rng, 10 * 512),
        np.zeros(10),
        last_gps_solution=255,
    )
    rec = read_kiwi_wav(p)
    assert not rec.has_gps_time_base
    assert rec.stale_blocks.all() and not rec.good_blocks.any()
    assert rec.fitted_rate_hz == 12001.0
    utc = rec.sample_times_utc_ns()
    assert int(utc[0]) == START_NS
    assert int(utc[5000]) == START_NS + round(5000 / 12001 * 1e9)


def test_write_refuses_mismatched_stamps(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="3 blocks of samples but 2 GPS times"):
        write_kiwi_wav(tmp_path / "x_iq.wav", np.zeros(1100, np.complex64), [1.0, 2.0])


# ------------------------------------------------------------------------ names, positions


def test_parse_filename() -> None:
    assert parse_kiwi_filename("a/20171127T104156Z_77500_DF0KL_iq.wav") == (
        START_NS,
        77500.0,
        "DF0KL",
    )
    assert parse_kiwi_filename("20180707T211018Z_77500_F1JEK-P_iq.wav")[2] == "F1JEK-P"
    assert parse_kiwi_filename("20171127T104156Z_77500_iq.wav")[2] == "kiwi_noname"
    assert parse_kiwi_filename("recording.wav") == (None, None, "recording")


@pytest.mark.parametrize(
    ("station", "lat", "lon", "host"),
    [
        ("DF0KL", 53.665337, 7.282766, "sielsdr.ddns.net"),
        ("F1JEK", 45.779290, 0.614638, "f1jeksdr1.ddns.net"),
        ("HB9RYZ", 47.1721, 8.42683, "hb9ryz.homeip.net"),
    ],
)
def test_read_gnss_pos(station: str, lat: float, lon: float, host: str) -> None:
    s = read_gnss_pos(DATA / f"{station}.gnss_pos.txt")
    assert s.name == station
    assert (s.position.lat_deg, s.position.lon_deg) == (lat, lon)
    assert (s.host, s.port) == (host, 8073)
    assert find_gnss_pos(wav(station)) == DATA / f"{station}.gnss_pos.txt"


def test_gnss_pos_several_stations_and_errors(tmp_path: Path) -> None:
    both = tmp_path / "all.txt"
    both.write_text(
        "d.A_1 = struct('coord', [1.5,-2.25], 'host', 'a', 'port', 8073);\n"
        "d.B = struct('coord', [-3,4e0]);\n"
    )
    assert read_gnss_pos(both, "A-1").position.lon_deg == -2.25
    assert read_gnss_pos(both, "B").position.lat_deg == -3.0
    with pytest.raises(RecordingError, match="several stations"):
        read_gnss_pos(both)
    bad = tmp_path / "bad.txt"
    bad.write_text("d.X = struct('coord', [95.0, 1.0]);\n")
    with pytest.raises(RecordingError, match=r"line 1: coordinate 95\.0, 1\.0 out of range"):
        read_gnss_pos(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("% nothing\n")
    with pytest.raises(RecordingError, match="no station line"):
        read_gnss_pos(empty)


def test_find_gnss_pos_in_upstream_layout(tmp_path: Path) -> None:
    (tmp_path / "iq").mkdir()
    (tmp_path / "gnss_pos").mkdir()
    w = tmp_path / "iq" / "20180707T211018Z_77500_F1JEK-P_iq.wav"
    shutil.copy(wav("F1JEK"), w)
    assert find_gnss_pos(w) is None
    (tmp_path / "gnss_pos" / "F1JEK_P.txt").write_text("d.F1JEK_P = struct('coord', [1,2]);\n")
    assert find_gnss_pos(w) == tmp_path / "gnss_pos" / "F1JEK_P.txt"
