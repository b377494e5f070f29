"""KiwiSDR IQ recordings with GPS timestamps (the ``kiwirecorder.py -m iq --kiwi-wav`` format).

File layout (little-endian; checked against the three DCF77 files of ``hcab14/TDoA`` and
against the upstream reader ``src/read_kiwi_iq_wav.cc`` and writer ``kiwirecorder.py``)::

    0   'RIFF' u32 size 'WAVE'
    12  'fmt ' u32 16: u16 format=1 (PCM), u16 channels=2 (I, Q), u32 sample rate (nominal,
        e.g. 12001), u32 byte rate, u16 block align=4, u16 bits=16
    36  then, per block of the receiver's stream, repeated:
        'kiwi' u32 10: u8 last_gps_solution, u8 unused, u32 gpssec, u32 gpsnsec
        'data' u32 2048: 512 × (i16 I, i16 Q)

``gpssec`` + ``gpsnsec``·1e-9 is the GPS time, in seconds of the GPS week, of the first
sample of the ``data`` chunk that follows. ``last_gps_solution`` is the age, in whole
seconds, of the receiver's last GPS clock solution at that block (the firmware writes
``min(254, age)``, and 255 when it never had one). The recording's UTC start time, tuned
frequency (Hz; the IQ is centred on it) and station are in the file name,
``<YYYYmmddTHHMMSSZ>_<freq Hz>_<STATION>_iq.wav``.

Why a time base must be fitted
    The header's sample rate (12001 Hz) is nominal: the real rate is the ADC clock divided
    down, and differs by ~10 ppm and drifts with temperature. Only the GPS stamps tell when
    each sample was taken. Three facts about the stamps (the first from the firmware,
    the sound task, which stamps each packet with the time it computed for the previous
    one; the others measured on the DCF77 files):

    * the first block's stamp is left over from the channel's previous use (here 227–568 s
      too early); upstream ``proc_kiwi_iq_wav.m`` drops the first block;
    * the other stamps lie on a straight line to within 0.04–0.16 µs (the receiver
      extrapolates its GPS-disciplined clock model between solutions, renewed about every
      5 s, when ``last_gps_solution`` falls back to 0);
    * a stream can lose packets: the stamps then jump forward while the sample count does not.

Upstream (``hcab14/TDoA``, ``m/proc_kiwi_iq_wav.m`` and ``m/tdoa_read_data.m``) drops the
first block, keeps blocks with ``last_gps_solution`` < 255, refuses a station whose oldest
solution is 254 or 255 ("no recent GPS timestamps"), interpolates linearly between "fresh"
stamps (where ``last_gps_solution`` decreases), discards pairs of fresh stamps that disagree
with the rate by more than one sample, and takes the median of the per-interval rates.
:func:`read_kiwi_wav` does the equivalent with every good stamp (see its docstring).
"""

from __future__ import annotations

import calendar
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from heimdall.core.errors import RecordingError
from heimdall.producers.recordings.gpstime import (
    NS_PER_S,
    SECONDS_PER_WEEK,
    gps_ns_to_utc_ns_array,
    gps_week_and_seconds,
    gps_week_to_utc_ns,
)
from heimdall.schemas.models import Position

__all__ = [
    "BLOCK_SAMPLES",
    "DEFAULT_MAX_SOLUTION_AGE_S",
    "DEFAULT_OUTLIER_TOL_S",
    "KiwiRecording",
    "KiwiStation",
    "TimeBaseMethod",
    "find_gnss_pos",
    "parse_kiwi_filename",
    "read_gnss_pos",
    "read_kiwi_wav",
    "write_kiwi_wav",
]

#: IQ samples per ``data`` chunk written by KiwiSDR.
BLOCK_SAMPLES = 512
#: Blocks whose ``last_gps_solution`` is at least this many seconds are stale: 254 and 255
#: are what the firmware writes for "no recent solution" and "never had one" (upstream's
#: criterion, ``kiwirecorder.py`` and ``tdoa_read_data.m``).
DEFAULT_MAX_SOLUTION_AGE_S = 254
#: A stamp further than this from the line through its neighbours is an outlier.
DEFAULT_OUTLIER_TOL_S = 10e-6
#: Shortest run of mutually consistent stamps trusted on its own (shorter runs must agree
#: with a trusted neighbour run).
_MIN_TRUSTED_RUN = 3
#: Drift allowance when predicting a stamp across a span of samples (relative).
_DRIFT_ALLOWANCE = 1e-6

TimeBaseMethod = Literal["piecewise", "linear", "quadratic"]

_FILENAME = re.compile(r"^(?P<time>\d{8}T\d{6}Z)_(?P<freq>\d+)(?:_(?P<station>.+?))?_iq$")
_I16_SCALE = 32768.0


# ----------------------------------------------------------------------------- names


def parse_kiwi_filename(path: str | Path) -> tuple[int | None, float | None, str]:
    """``<YYYYmmddTHHMMSSZ>_<freq Hz>_<STATION>_iq.wav`` → (start UTC ns, freq Hz, station).

    A name that does not follow kiwirecorder's pattern gives ``(None, None, <stem>)``;
    a recording made without ``--station`` gives the station ``kiwi_noname`` (as upstream).
    """
    stem = Path(path).name
    if stem.lower().endswith(".wav"):
        stem = stem[:-4]
    m = _FILENAME.match(stem)
    if m is None:
        return None, None, stem
    t = calendar.timegm(
        (
            int(m["time"][0:4]),
            int(m["time"][4:6]),
            int(m["time"][6:8]),
            int(m["time"][9:11]),
            int(m["time"][11:13]),
            int(m["time"][13:15]),
            0,
            0,
            0,
        )
    )
    return t * NS_PER_S, float(m["freq"]), m["station"] or "kiwi_noname"


# ------------------------------------------------------------------------- recording


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class KiwiRecording:
    """One KiwiSDR IQ recording with its GPS time base. Build it with :func:`read_kiwi_wav`.

    Times of week are GPS seconds since the start of GPS week ``gps_week`` (float64: 0.1 ns
    resolution); a recording that crosses the end of a week keeps counting past 604800.

    Attributes
    ----------
    path : Path
        The file.
    station : str
        Station name from the file name (``DF0KL``).
    center_freq_hz : float or None
        Tuned frequency from the file name, Hz; KiwiSDR IQ is centred on it. None when the
        name does not follow kiwirecorder's pattern.
    start_utc_ns : int or None
        Recording start from the file name (the recorder's clock, 1 s resolution), UTC ns.
    nominal_rate_hz : float
        Sample rate written in the ``fmt`` header (12001 Hz: nominal, not the true rate).
    samples : ndarray of complex64
        All IQ samples, I + jQ, int16 / 32768 (full scale 1).
    block_starts : ndarray of int64
        Index in ``samples`` of each block's first sample.
    block_gps_s : ndarray of float64
        Each block's GPS stamp (seconds of week, unwrapped across a week end), as written,
        stale and outlier stamps included.
    last_gps_solution : ndarray of uint8
        Each block's age of the last GPS solution, s (254: ≥ 254 s, 255: never).
    gps_week : int or None
        GPS week of ``block_gps_s``: the one that puts the first good stamp nearest to the
        file-name time. None without a file-name time.
    gps_week_start_utc_ns : int or None
        UTC ns of the start of ``gps_week`` (with the GPS − UTC offset in force then); for a
        recording without a leap second, UTC ns of a stamp τ is this + τ·1e9.
    stale_blocks : ndarray of bool
        Block 0 (its stamp is the previous packet's, see the module docstring) and blocks
        with ``last_gps_solution`` ≥ ``max_solution_age_s``.
    outlier_blocks : ndarray of bool
        Not stale, but the stamp disagrees with the others by more than ``outlier_tol_s``.
    good_blocks : ndarray of bool
        Stamps used for the time base: neither stale nor outliers.
    block_segment : ndarray of int32
        Continuous segment of each block: a new segment starts where the good stamps jump
        (lost packets). Stale and outlier blocks belong to the segment of the last good
        block before them.
    fitted_rate_hz : float
        Mean true sample rate: 1 / slope of the least-squares line through the good stamps.
    rate_drift_hz_per_s : float
        d(rate)/dt from a quadratic fit (NaN with fewer than 4 good stamps per free
        parameter).
    fit_residual_rms_s : float
        RMS of the good stamps about the fitted line, s.
    max_solution_age_s, outlier_tol_s : float
        The thresholds used.
    """

    path: Path
    station: str
    center_freq_hz: float | None
    start_utc_ns: int | None
    nominal_rate_hz: float
    samples: npt.NDArray[np.complex64]
    block_starts: npt.NDArray[np.int64]
    block_gps_s: npt.NDArray[np.float64]
    last_gps_solution: npt.NDArray[np.uint8]
    gps_week: int | None
    gps_week_start_utc_ns: int | None
    stale_blocks: npt.NDArray[np.bool_]
    outlier_blocks: npt.NDArray[np.bool_]
    good_blocks: npt.NDArray[np.bool_]
    block_segment: npt.NDArray[np.int32]
    fitted_rate_hz: float
    rate_drift_hz_per_s: float
    fit_residual_rms_s: float
    max_solution_age_s: float = DEFAULT_MAX_SOLUTION_AGE_S
    outlier_tol_s: float = DEFAULT_OUTLIER_TOL_S
    # time base knots (good blocks) and the per-segment linear/quadratic fits
    _knot_n: npt.NDArray[np.float64]
    _knot_t: npt.NDArray[np.float64]
    _knot_seg: npt.NDArray[np.int32]
    _period_s: float
    _lin: tuple[npt.NDArray[np.float64], float, float]
    _quad: tuple[npt.NDArray[np.float64], float, float, float] | None
    _fallback_t0_s: float

    # ------------------------------------------------------------------ sizes

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_blocks(self) -> int:
        return int(self.block_starts.shape[0])

    @property
    def block_lengths(self) -> npt.NDArray[np.int64]:
        """Samples in each block (512 except perhaps the last)."""
        return np.diff(np.append(self.block_starts, self.n_samples))

    @property
    def duration_s(self) -> float:
        """Time spanned by the samples, s (``n_samples`` / ``fitted_rate_hz``)."""
        return self.n_samples / self.fitted_rate_hz

    @property
    def has_gps_time_base(self) -> bool:
        """True when at least two good stamps define the time base."""
        return bool(self._knot_n.shape[0] >= 2)

    @property
    def rate_offset_ppm(self) -> float:
        """(fitted − nominal) / nominal rate, ppm."""
        return (self.fitted_rate_hz / self.nominal_rate_hz - 1.0) * 1e6

    @property
    def rate_drift_ppm_per_s(self) -> float:
        """``rate_drift_hz_per_s`` relative to the fitted rate, ppm/s."""
        return self.rate_drift_hz_per_s / self.fitted_rate_hz * 1e6

    @property
    def discontinuities(self) -> list[tuple[int, float]]:
        """(first block of a new segment, jump of the stamps against the sample count in s)."""
        out: list[tuple[int, float]] = []
        for j in np.flatnonzero(np.diff(self._knot_seg)) + 1:
            n0, n1 = self._knot_n[j - 1], self._knot_n[j]
            jump = self._knot_t[j] - (self._knot_t[j - 1] + (n1 - n0) * self._period_s)
            out.append((int(np.searchsorted(self.block_starts, n1)), float(jump)))
        return out

    # ------------------------------------------------------------------ time base

    def sample_times_s(
        self,
        method: TimeBaseMethod = "piecewise",
        index: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.float64]:
        """GPS time (seconds of week ``gps_week``) of each sample, or of the samples ``index``.

        Parameters
        ----------
        method : {"piecewise", "linear", "quadratic"}
            ``piecewise`` (default): linear interpolation between consecutive good stamps of
            the same segment, so the time base passes through every good stamp and follows
            the receiver's rate changes; samples after the last good stamp of a segment (or
            before the first) follow the fitted curve from the nearest good stamp:
            τ_j + q(n) − q(n_j), q the quadratic fit (the linear one with too few stamps).
            ``linear``, ``quadratic``: the least-squares fits (one offset per segment, a
            common rate, and for ``quadratic`` a common drift); smoother, not through the
            stamps.
        index : array_like of int, optional
            Sample indices (default: all samples).

        Without a GPS time base (fewer than two good stamps) every method gives the
        file-name start time (GPS) + index / ``nominal_rate_hz``.
        """
        n = (
            np.arange(self.n_samples, dtype=np.float64)
            if index is None
            else np.asarray(index, dtype=np.float64)
        )
        if not self.has_gps_time_base:
            return self._fallback_t0_s + n / self.nominal_rate_hz
        kn, kt, ks = self._knot_n, self._knot_t, self._knot_seg
        j = np.searchsorted(kn, n, side="right") - 1  # last knot at or before n
        before = j < 0
        j = np.clip(j, 0, kn.shape[0] - 1)
        seg = ks[j]
        if method == "piecewise":
            jn = np.clip(j + 1, 0, kn.shape[0] - 1)
            inside = (~before) & (jn > j) & (ks[jn] == seg)
            t = kt[j] + self._curve(n) - self._curve(kn[j])  # extrapolation from knot j
            span = np.where(inside, kn[jn] - kn[j], 1.0)
            frac = (n - kn[j]) / span
            return np.where(inside, kt[j] + frac * (kt[jn] - kt[j]), t)
        if method == "linear":
            offsets, b, n_mid = self._lin
            return offsets[seg] + b * (n - n_mid)
        if method == "quadratic":
            if self._quad is None:
                raise RecordingError(f"{self.path}: too few good GPS stamps for a quadratic fit")
            qoff, qb, qc, q_mid = self._quad
            u = n - q_mid
            return qoff[seg] + qb * u + qc * u * u
        raise ValueError(f"unknown time-base method {method!r}")

    def _curve(self, n: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The fitted τ(n) without its offset: quadratic when fitted, else linear."""
        if self._quad is not None:
            _, qb, qc, q_mid = self._quad
            u = n - q_mid
            return qb * u + qc * u * u
        return self._period_s * n

    def utc_ns(self, gps_week_s: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """GPS seconds of week ``gps_week`` → UTC ns since the Unix epoch (leap seconds applied).

        Raises :class:`RecordingError` when the week is unknown (no file-name date).
        """
        if self.gps_week is None:
            raise RecordingError(
                f"{self.path}: the GPS week is unknown (no recording date in the file name)"
            )
        t = np.asarray(gps_week_s, dtype=np.float64)
        gps_ns = np.int64(self.gps_week * SECONDS_PER_WEEK * NS_PER_S) + np.rint(t * 1e9).astype(
            np.int64
        )
        return gps_ns_to_utc_ns_array(gps_ns)

    def sample_times_utc_ns(self, method: TimeBaseMethod = "piecewise") -> npt.NDArray[np.int64]:
        """UTC ns of every sample (:meth:`sample_times_s` through :meth:`utc_ns`)."""
        return self.utc_ns(self.sample_times_s(method))


# ------------------------------------------------------------------------------ parse


def _err(path: Path, offset: int, what: str) -> RecordingError:
    return RecordingError(f"{path}: byte {offset}: {what}")


def _parse(
    path: Path, buf: bytes, allow_truncated: bool
) -> tuple[int, list[tuple[int, int, int, int]], list[tuple[int, int]]]:
    """→ nominal rate, [(last, unused, gpssec, gpsnsec)], [(data offset, n samples)]."""
    size = len(buf)
    if size < 12:
        raise _err(path, size, f"file ends after {size} bytes, before the 12-byte RIFF header")
    if buf[0:4] != b"RIFF":
        raise _err(path, 0, f"not a RIFF file (starts with {buf[0:4]!r})")
    if buf[8:12] != b"WAVE":
        raise _err(path, 8, f"not a WAVE file (RIFF type {buf[8:12]!r})")
    riff_end = 8 + struct.unpack_from("<I", buf, 4)[0]
    end = min(riff_end, size)

    def header(off: int, expect: bytes) -> tuple[int, int]:
        if off + 8 > end:
            raise _err(path, off, f"file ends inside the header of the {expect!r} chunk expected")
        cid = buf[off : off + 4]
        (n,) = struct.unpack_from("<I", buf, off + 4)
        if cid != expect:
            raise _err(path, off, f"chunk id {cid!r} where {expect!r} was expected")
        if off + 8 + n > end:
            raise _err(
                path,
                off,
                f"{expect.decode()!r} chunk declares {n} bytes but only {end - off - 8} follow "
                f"(file of {size} bytes is truncated)",
            )
        return off + 8, n

    body, n = header(12, b"fmt ")
    if n < 16:
        raise _err(path, 12, f"'fmt ' chunk of {n} bytes, expected at least 16")
    fmt_tag, channels, rate, _byte_rate, align, bits = struct.unpack_from("<HHIIHH", buf, body)
    if fmt_tag != 1 or channels != 2 or bits != 16 or align != 4:
        raise _err(
            path,
            body,
            f"not 16-bit PCM IQ (format {fmt_tag}, {channels} channels, {bits} bits, "
            f"block align {align}); expected 1, 2, 16, 4",
        )
    off = body + n + (n & 1)
    stamps: list[tuple[int, int, int, int]] = []
    blocks: list[tuple[int, int]] = []
    while off < end:
        start = off
        try:
            body, n = header(off, b"kiwi")
            if n != 10:
                raise _err(path, off, f"'kiwi' chunk of {n} bytes, expected 10")
            stamp = struct.unpack_from("<BBII", buf, body)
            off = body + n
            body, n = header(off, b"data")
            if n % 4:
                raise _err(path, off, f"'data' chunk of {n} bytes is not whole IQ pairs of 4")
            off = body + n + (n & 1)
        except RecordingError:
            if allow_truncated and blocks and _is_truncation(buf, start, end):
                break
            raise
        stamps.append(stamp)
        blocks.append((body, n // 4))
    if riff_end > size and not allow_truncated:
        raise _err(
            path, size, f"file ends at byte {size} but its RIFF header declares {riff_end} bytes"
        )
    if not blocks:
        raise _err(path, off, "no 'kiwi' + 'data' blocks: not a KiwiSDR IQ recording")
    return rate, stamps, blocks


def _is_truncation(buf: bytes, start: int, end: int) -> bool:
    """True when the block at ``start`` is well formed as far as the file goes."""
    if end < len(buf):
        return False
    tail = buf[start:end]
    expect = b"kiwi" + struct.pack("<I", 10)
    if len(tail) <= len(expect):
        return expect.startswith(tail)
    if not tail.startswith(expect):
        return False
    rest = tail[18:]
    return len(rest) < 8 or (
        rest[:4] == b"data" and len(rest) < 8 + struct.unpack("<I", rest[4:8])[0]
    )


# --------------------------------------------------------------------------- time base


def _unwrap_weeks(raw: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Add ±604800 s where consecutive stamps (from block 1 on) jump by more than half a week."""
    out = raw.copy()
    if raw.shape[0] < 2:
        return out
    d = np.diff(raw[1:])
    step = np.where(d < -SECONDS_PER_WEEK / 2, 1, np.where(d > SECONDS_PER_WEEK / 2, -1, 0))
    corr = np.concatenate([[0], np.cumsum(step)]) * float(SECONDS_PER_WEEK)
    out[1:] += corr
    out[0] += corr[0]
    return out


def _classify(
    n: npt.NDArray[np.float64], t: npt.NDArray[np.float64], tol_s: float
) -> tuple[npt.NDArray[np.bool_], float]:
    """Which candidate stamps are good, and the robust period (s per sample).

    Consecutive candidates are *linked* when their stamp difference matches the sample count
    times the median period within ``tol_s`` (+ 1 ppm of the span). Maximal linked runs of
    at least three stamps are trusted; a shorter run is kept only if it continues the
    nearest trusted run before or after it within the same tolerance, else it is an outlier.
    Trusted runs that do not continue each other are separate segments (lost packets).
    """
    m = n.shape[0]
    period = float(np.median(np.diff(t) / np.diff(n)))
    if m < 2:
        return np.ones(m, dtype=bool), period

    def agrees(i: int, j: int) -> bool:
        span = abs(n[j] - n[i])
        return bool(
            abs(t[j] - t[i] - (n[j] - n[i]) * period) <= tol_s + _DRIFT_ALLOWANCE * span * period
        )

    link = np.array([agrees(i, i + 1) for i in range(m - 1)], dtype=bool)
    run_start = np.concatenate([[0], np.flatnonzero(~link) + 1])
    run_end = np.append(run_start[1:], m)
    lengths = run_end - run_start
    min_run = min(_MIN_TRUSTED_RUN, int(lengths.max()))
    trusted = lengths >= min_run
    good = np.zeros(m, dtype=bool)
    for r, (a, b) in enumerate(zip(run_start, run_end, strict=True)):
        if trusted[r]:
            good[a:b] = True
            continue
        prev = [q for q in range(r - 1, -1, -1) if trusted[q]]
        nxt = [q for q in range(r + 1, len(lengths)) if trusted[q]]
        ok = (prev and agrees(int(run_end[prev[0]]) - 1, int(a))) or (
            nxt and agrees(int(b) - 1, int(run_start[nxt[0]]))
        )
        good[a:b] = bool(ok)
    return good, period


def _segments(
    n: npt.NDArray[np.float64], t: npt.NDArray[np.float64], period: float, tol_s: float
) -> npt.NDArray[np.int32]:
    if n.shape[0] < 2:
        return np.zeros(n.shape[0], dtype=np.int32)
    dn = np.diff(n)
    err = np.abs(np.diff(t) - dn * period)
    broken = err > tol_s + _DRIFT_ALLOWANCE * dn * period
    return np.concatenate([[0], np.cumsum(broken)]).astype(np.int32)


def _fit(
    n: npt.NDArray[np.float64],
    t: npt.NDArray[np.float64],
    seg: npt.NDArray[np.int32],
    degree: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float, float] | None:
    """Least squares t ≈ offset[seg] + Σ_k p_k u^k, u = n − mid, k = 1..degree.

    Returns (offsets per segment, [p_1, …], mid, residual rms) or None if underdetermined.
    """
    n_seg = int(seg.max()) + 1
    if n.shape[0] < n_seg + degree + 1:
        return None
    mid = float(0.5 * (n.min() + n.max()))
    half = max(float(0.5 * (n.max() - n.min())), 1.0)
    x = (n - mid) / half
    t0 = float(t[0])
    cols = [np.eye(n_seg)[seg]] + [x**k for k in range(1, degree + 1)]
    a = np.column_stack(cols)
    coef, *_ = np.linalg.lstsq(a, t - t0, rcond=None)
    resid = t - t0 - a @ coef
    offsets = np.asarray(coef[:n_seg] + t0, dtype=np.float64)
    p = np.asarray([coef[n_seg + k - 1] / half**k for k in range(1, degree + 1)], dtype=np.float64)
    return offsets, p, mid, float(np.sqrt(np.mean(resid**2)))


# ------------------------------------------------------------------------------ read


def read_kiwi_wav(
    path: str | Path,
    *,
    max_solution_age_s: float = DEFAULT_MAX_SOLUTION_AGE_S,
    outlier_tol_s: float = DEFAULT_OUTLIER_TOL_S,
    allow_truncated: bool = False,
) -> KiwiRecording:
    """Read a KiwiSDR IQ WAV file and fit its GPS time base.

    Parameters
    ----------
    path : str or Path
        ``<YYYYmmddTHHMMSSZ>_<freq Hz>_<STATION>_iq.wav`` (another name works, without
        station, frequency and GPS week).
    max_solution_age_s : float
        Blocks whose ``last_gps_solution`` is at least this are stale (default 254, upstream's
        "no recent solution").
    outlier_tol_s : float
        Largest disagreement of a stamp with its neighbours (default 10 µs; the stamps of
        the DCF77 files scatter by 0.04–0.16 µs).
    allow_truncated : bool
        Drop an incomplete last block (a recorder killed mid-write) instead of raising.

    Returns
    -------
    KiwiRecording

    Raises
    ------
    RecordingError
        Unreadable, malformed or truncated file: the message names the file and the byte
        offset of the first bad chunk.

    Notes
    -----
    Let block k start at sample index n_k with stamp τ_k (GPS seconds of week, unwrapped
    across a week end). Candidates are the blocks k ≥ 1 (block 0 carries the stamp of the
    channel's previous packet) with ``last_gps_solution`` < ``max_solution_age_s``.

    1. Robust period: P₀ = median over consecutive candidates of (τ_{k+1} − τ_k)/(n_{k+1} − n_k).
    2. Outliers: consecutive candidates are linked when |Δτ − P₀Δn| ≤ tol + 10⁻⁶·P₀·Δn.
       Linked runs of ≥ 3 stamps are trusted; shorter runs survive only when they continue
       a neighbouring trusted run; the rest are ``outlier_blocks``.
    3. Segments: the good stamps split where consecutive ones are not linked (a forward
       jump = lost packets); each segment is a continuous stretch of time.
    4. Fits over the good stamps, with u = n − n_mid and one offset a_s per segment s:
       linear τ ≈ a_s + b·u gives ``fitted_rate_hz`` = 1/b and ``fit_residual_rms_s``;
       quadratic τ ≈ a_s + b·u + c·u² gives the instantaneous rate f(u) = 1/(b + 2cu) and
       ``rate_drift_hz_per_s`` = df/dt = (df/du)/(dτ/du) = −2c·f³ at u = 0.
    5. :meth:`KiwiRecording.sample_times_s` interpolates τ piecewise-linearly in n between
       consecutive good stamps of a segment; outside them (stale or outlier blocks at a
       segment's ends) it follows the quadratic fit from the nearest good stamp,
       τ_j + q(n) − q(n_j) with q(n) = b·u + c·u².
    """
    p = Path(path)
    try:
        buf = p.read_bytes()
    except OSError as exc:
        raise RecordingError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    rate, stamps, blocks = _parse(p, buf, allow_truncated)
    start_utc_ns, freq_hz, station = parse_kiwi_filename(p)

    lengths = np.asarray([b[1] for b in blocks], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    raw = np.frombuffer(b"".join(buf[off : off + 4 * k] for off, k in blocks), dtype="<i2").astype(
        np.float32
    )
    raw *= np.float32(1.0 / _I16_SCALE)
    samples = raw.view(np.complex64)
    st = np.asarray(stamps, dtype=np.int64)
    last = st[:, 0].astype(np.uint8)
    tau = _unwrap_weeks(st[:, 2].astype(np.float64) + st[:, 3].astype(np.float64) * 1e-9)

    nb = len(blocks)
    stale = last.astype(np.float64) >= max_solution_age_s
    stale[0] = True
    cand = np.flatnonzero(~stale)
    outlier = np.zeros(nb, dtype=bool)
    period = 1.0 / rate
    if cand.shape[0] >= 2:
        good_c, period = _classify(starts[cand].astype(np.float64), tau[cand], outlier_tol_s)
        outlier[cand[~good_c]] = True
    good = ~stale & ~outlier
    gidx = np.flatnonzero(good)
    if gidx.shape[0] < 2:
        gidx = gidx[:0]
        good[:] = False
    kn = starts[gidx].astype(np.float64)
    kt = tau[gidx]
    kseg = _segments(kn, kt, period, outlier_tol_s)

    fallback_t0 = 0.0
    week: int | None = None
    if gidx.shape[0] >= 2:
        lin = _fit(kn, kt, kseg, 1)
        assert lin is not None  # two knots, at most one segment each: determined
        offsets, coef, mid, rms = lin
        b = float(coef[0])
        fitted_rate = 1.0 / b
        quad = _fit(kn, kt, kseg, 2) if kn.shape[0] >= 4 * (int(kseg.max()) + 2) else None
        if quad is not None:
            qoff, qcoef, qmid, _ = quad
            drift = float(-2.0 * qcoef[1] / qcoef[0] ** 3)
            quad_t = (qoff, float(qcoef[0]), float(qcoef[1]), qmid)
        else:
            drift, quad_t = float("nan"), None
        if start_utc_ns is not None:
            w, sow = gps_week_and_seconds(start_utc_ns)
            cands = [w - 1, w, w + 1]
            week = min(cands, key=lambda x: abs((x - w) * SECONDS_PER_WEEK + kt[0] - sow))
        lin_t = (offsets, b, mid)
    else:
        fitted_rate, drift, rms, b = float(rate), float("nan"), float("nan"), 1.0 / rate
        lin_t = (np.zeros(1), b, 0.0)
        quad_t = None
        if start_utc_ns is not None:
            week, fallback_t0 = gps_week_and_seconds(start_utc_ns)

    # segment of every block: that of the last good block at or before it
    if gidx.shape[0]:
        j = np.clip(np.searchsorted(gidx, np.arange(nb), side="right") - 1, 0, None)
        block_seg = kseg[j].astype(np.int32)
    else:
        block_seg = np.zeros(nb, dtype=np.int32)

    return KiwiRecording(
        path=p,
        station=station,
        center_freq_hz=freq_hz,
        start_utc_ns=start_utc_ns,
        nominal_rate_hz=float(rate),
        samples=samples,
        block_starts=starts,
        block_gps_s=tau,
        last_gps_solution=last,
        gps_week=week,
        gps_week_start_utc_ns=None if week is None else gps_week_to_utc_ns(week),
        stale_blocks=stale,
        outlier_blocks=outlier,
        good_blocks=good,
        block_segment=block_seg,
        fitted_rate_hz=float(fitted_rate),
        rate_drift_hz_per_s=drift,
        fit_residual_rms_s=rms,
        max_solution_age_s=max_solution_age_s,
        outlier_tol_s=outlier_tol_s,
        _knot_n=kn,
        _knot_t=kt,
        _knot_seg=kseg,
        _period_s=b,
        _lin=lin_t,
        _quad=quad_t,
        _fallback_t0_s=fallback_t0,
    )


# ----------------------------------------------------------------------------- write


def write_kiwi_wav(
    path: str | Path,
    iq: npt.ArrayLike,
    block_gps_s: npt.ArrayLike,
    *,
    last_gps_solution: int | npt.ArrayLike = 0,
    sample_rate_hz: int = 12001,
    block_samples: int = BLOCK_SAMPLES,
) -> Path:
    """Write ``iq`` as a KiwiSDR IQ WAV file, as ``kiwirecorder.py --kiwi-wav`` does.

    Parameters
    ----------
    path : str or Path
        Output file; name it ``<YYYYmmddTHHMMSSZ>_<freq Hz>_<STATION>_iq.wav`` so that
        :func:`read_kiwi_wav` finds the date, frequency and station.
    iq : array_like of complex
        Samples, full scale 1; written as int16 ``clip(round(x·32768))``.
    block_gps_s : array_like of float
        GPS seconds of week of each block's first sample, one per block
        (``ceil(len(iq) / block_samples)``); split into whole seconds and rounded ns.
    last_gps_solution : int or array_like of int
        Age of the GPS solution per block (or one for all), 0..255.
    sample_rate_hz : int
        Nominal rate for the ``fmt`` header.
    block_samples : int
        Samples per ``data`` chunk (the last may be shorter).
    """
    p = Path(path)
    x = np.ascontiguousarray(iq, dtype=np.complex64).reshape(-1)
    nb = -(-x.shape[0] // block_samples)
    t = np.asarray(block_gps_s, dtype=np.float64).reshape(-1)
    if t.shape[0] != nb:
        raise RecordingError(f"{p}: {nb} blocks of samples but {t.shape[0]} GPS times")
    ages = np.broadcast_to(np.asarray(last_gps_solution, dtype=np.int64), (nb,))
    if ((ages < 0) | (ages > 255)).any():
        raise RecordingError(f"{p}: last_gps_solution must be in 0..255")
    v = np.clip(np.rint(x.view(np.float32) * np.float32(_I16_SCALE)), -32768, 32767)
    pcm = v.astype("<i2").tobytes()
    sec = np.floor(t).astype(np.int64)
    nsec = np.rint((t - sec) * 1e9).astype(np.int64)
    carry = nsec >= NS_PER_S
    sec, nsec = sec + carry, np.where(carry, nsec - NS_PER_S, nsec)
    if ((sec < 0) | (sec > 0xFFFFFFFF)).any():
        raise RecordingError(f"{p}: GPS seconds of week must fit in u32")
    parts = [
        b"WAVE",
        struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 2, sample_rate_hz, sample_rate_hz * 4, 4, 16),
    ]
    for k in range(nb):
        a, e = 4 * k * block_samples, 4 * min((k + 1) * block_samples, x.shape[0])
        parts.append(
            struct.pack("<4sIBBII", b"kiwi", 10, int(ages[k]), 0, int(sec[k]), int(nsec[k]))
        )
        parts.append(struct.pack("<4sI", b"data", e - a))
        parts.append(pcm[a:e])
    body = b"".join(parts)
    p.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return p


# ------------------------------------------------------------------- station positions


@dataclass(frozen=True, slots=True, kw_only=True)
class KiwiStation:
    """A KiwiSDR's GNSS position file, ``d.DF0KL = struct('coord', [lat, lon], ...)``.

    ``name`` is the Octave variable name (the station, '-' written as '_'); ``host`` and
    ``port`` are the receiver's address when the file gives them.
    """

    name: str
    position: Position
    host: str | None = None
    port: int | None = None


_STRUCT = re.compile(r"d\.(?P<name>\w+)\s*=\s*struct\((?P<body>.*)\)\s*;?")
_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_COORD = re.compile(r"'coord'\s*,\s*\[\s*" + _NUM + r"\s*[,\s]\s*" + _NUM + r"\s*\]")
_HOST = re.compile(r"'host'\s*,\s*'([^']*)'")
_PORT = re.compile(r"'port'\s*,\s*(\d+)")


def read_gnss_pos(path: str | Path, station: str | None = None) -> KiwiStation:
    """Read ``<STATION>.gnss_pos.txt`` (upstream ``gnss_pos/<STATION>.txt``).

    Parameters
    ----------
    path : str or Path
        The file (one ``d.NAME = struct('coord', [lat, lon], 'host', …, 'port', …);`` line
        per station; kiwirecorder writes one).
    station : str, optional
        Which station to take when the file holds several ('-' and '_' match each other);
        a file of one station is taken whatever its name.

    Raises
    ------
    RecordingError
        No such file, no station line, an unparsable or out-of-range coordinate.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise RecordingError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    found: list[KiwiStation] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _STRUCT.search(line)
        if m is None:
            continue
        c = _COORD.search(m["body"])
        if c is None:
            raise RecordingError(f"{p}: line {lineno}: no 'coord', [lat, lon] in {line.strip()!r}")
        lat, lon = float(c[1]), float(c[2])
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise RecordingError(f"{p}: line {lineno}: coordinate {lat}, {lon} out of range")
        h, q = _HOST.search(m["body"]), _PORT.search(m["body"])
        found.append(
            KiwiStation(
                name=m["name"],
                position=Position(lat_deg=lat, lon_deg=lon, alt_m=0.0),
                host=h[1] if h else None,
                port=int(q[1]) if q else None,
            )
        )
    if len(found) > 1 and station is not None:
        key = station.replace("-", "_")
        found = [s for s in found if s.name.replace("-", "_") == key] or found
    if not found:
        raise RecordingError(f"{p}: no station line like d.NAME = struct('coord', [lat, lon])")
    if len(found) > 1:
        names = ", ".join(s.name for s in found)
        raise RecordingError(f"{p}: several stations ({names}); say which one")
    return found[0]


def find_gnss_pos(wav_path: str | Path, station: str | None = None) -> Path | None:
    """The position file of a recording, if one lies where kiwirecorder or upstream put it.

    Looks for ``<STATION>.gnss_pos.txt`` beside the WAV, then ``gnss_pos/<STATION>.txt``
    beside it and one level up; the station name is tried as is and with '-' → '_'.
    """
    w = Path(wav_path)
    name = station or parse_kiwi_filename(w)[2]
    for n in dict.fromkeys([name, name.replace("-", "_")]):
        for cand in (
            w.parent / f"{n}.gnss_pos.txt",
            w.parent / "gnss_pos" / f"{n}.txt",
            w.parent.parent / "gnss_pos" / f"{n}.txt",
        ):
            if cand.is_file():
                return cand
    return None
