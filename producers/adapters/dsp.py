r"""Streaming channeliser: mix a channel to 0 Hz and decimate it to the channel rate.

A wide-band receiver (rtl_tcp at ~1 MS/s) delivers far more spectrum than one channel.
:class:`ChannelDecimator` turns its samples into the channel's complex baseband at
``fs_out`` (12 kHz by default, what the features stage expects) in three steps, all
stateful across blocks so that a stream cut into arbitrary pieces gives the same output
as the whole stream processed at once (``reset()`` forgets the state):

1. **u8 → complex** (rtl_tcp only): interleaved unsigned 8-bit I, Q with offset 127.5,
   ``x = ((I − 127.5) + j (Q − 127.5)) / 127.5`` (full scale 1; :func:`u8_iq_lut` is the
   same map as a 65 536-entry table). The offset is removed in float32 and the 1/127.5
   scale applied to the channel outputs (the chain is linear).
2. **Mix** (:class:`Nco`): ``x[n] · exp(j 2π f_shift n / f_in)``. The receiver is tuned
   ``f_shift`` *above* the channel (to keep the tuner's DC spike and IQ-imbalance image
   out of it), so the channel sits at ``−f_shift`` and the mix brings it to 0 Hz.
3. **Decimate** by ``D = f_in / f_out`` (an integer) in stages (:func:`plan_stages`), each a
   linear-phase Kaiser-window FIR low-pass followed by keeping every ``M``-th sample,
   computed in polyphase form (only the kept outputs are computed,
   :class:`FirDecimator`).

Filter design (:func:`design_stage`)
------------------------------------
The channel's passband is ``|f| ≤ f_p`` with ``f_p = passband_frac · f_out`` (0.4 · 12 kHz =
4.8 kHz by default: the features stage integrates 80 % of the sample rate). Decimating a
signal of rate ``F_in`` to ``F_out = F_in / M`` folds every frequency ``f`` onto
``f − k F_out``; what must not land in the final passband is therefore every ``f`` with
``|f − k F_out| ≤ f_p`` for some ``k ≠ 0``. The lowest such band starts at ``F_out − f_p``,
so each stage has

* passband ``[0, f_p]``, ripple ``δ`` (≈ 10^(−A/20), ±0.009 dB at A = 60 dB),
* stopband ``[F_out − f_p, F_in/2]``, attenuation ``≥ A`` dB (default A = 60 dB),
* transition width ``Δf = F_out − 2 f_p``.

What folds into ``f_p < |f| < f_out/2`` after the last stage is the transition band and is
not protected: that band is outside the channel. With the Kaiser window (Kaiser 1974) the
length for attenuation A (dB) and normalised transition width ``Δω = 2π Δf / F_in`` is

.. math:: L ≈ \frac{A − 7.95}{2.285\,Δω} + 1,\qquad
          β = 0.1102 (A − 8.7)\ \ (A > 50),

(``scipy.signal.kaiserord``), cut-off at the middle of the transition band
(``scipy.signal.firwin``). The formula is approximate, so :func:`design_stage` measures the
designed response on a dense grid (``scipy.signal.freqz``) and lengthens the filter until the
stopband really is ``≥ A`` dB down and the passband within ``±δ``; the stage records what it
achieved (``stopband_db``, ``ripple_db``). Every alias path crosses exactly one stopband and
the other stages' passbands, so the chain rejects aliases by ``≥ A − (S−1)·ripple`` dB for
S stages — in practice by A.

With A = 60 dB, f_in = 1.152 MS/s and f_out = 12 kHz (D = 96) the plan is 8 · 6 · 2:
1152 → 144 kHz (33 taps), 144 → 24 kHz (40 taps), 24 → 12 kHz (43 taps), about
``Σ L_i / Π_{j≤i} M_j ≈ 11`` real multiply-adds per input sample. 60 dB is above the
dynamic range of the 8-bit rtl-sdr ADC (≈ 50 dB at full bandwidth, plus the
``10 log10(D) ≈ 20`` dB processing gain of the narrow channel).

Polyphase decimation
--------------------
A stage keeps ``y[n] = Σ_{k<L} h[k] x[nM + M − 1 − k]``: with ``g[j] = h[L − 1 − j]`` and
``x_ext`` = the last ``L − M`` samples of the previous block followed by this block,
``y[n] = Σ_j g[j] x_ext[nM + j]``, a dot product of the taps with a window that slides by M.
Only these outputs are computed (the polyphase saving): ``L/M`` MACs per input sample.
Output ``n`` of a stage is the filtered signal at input index ``nM + M − 1 − (L − 1)/2``
(the linear-phase group delay removed); :attr:`ChannelDecimator.output_offset` carries that
through the stages so that a timestamp can be given to each output sample.

References
----------
- J. F. Kaiser, "Nonrecursive digital filter design using the I0-sinh window function",
  Proc. IEEE ISCAS 1974, 20–23.
- R. E. Crochiere, L. R. Rabiner, *Multirate Digital Signal Processing*, Prentice-Hall,
  1983, ch. 5 (multistage decimators, stage bands).
- F. J. Harris, *Multirate Signal Processing for Communication Systems*, Prentice-Hall,
  2004, ch. 6 (polyphase decimation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from heimdall.core.errors import ConfigError

__all__ = [
    "ChannelDecimator",
    "FirDecimator",
    "Nco",
    "StageDesign",
    "design_stage",
    "plan_stages",
    "u8_iq_lut",
]

ComplexArray = npt.NDArray[np.complex64]

#: Largest decimation factor of one stage (longer stages cost more than two short ones).
MAX_STAGE_FACTOR = 8
#: Longest filter :func:`design_stage` will make.
MAX_TAPS = 8191


@lru_cache(maxsize=1)
def u8_iq_lut() -> ComplexArray:
    """Table of the 65 536 rtl-sdr byte pairs as complex64: ``lut[I | Q << 8]``.

    ``x = ((I − 127.5) + j (Q − 127.5)) / 127.5``: bytes 0 and 255 are ∓1 (full scale),
    the midpoint 127.5 (between two codes, as in librtlsdr's converters) is 0.
    """
    v = (np.arange(256, dtype=np.float32) - np.float32(127.5)) / np.float32(127.5)
    lut = np.empty(65536, dtype=np.complex64)
    lut.real = np.tile(v, 256)
    lut.imag = np.repeat(v, 256)
    lut.setflags(write=False)
    return lut


def plan_stages(factor: int) -> list[int]:
    """Split an integer decimation ``factor`` into stage factors ``≤ MAX_STAGE_FACTOR``.

    Prime factors are packed greedily, largest first, into as few stages as fit; stages are
    ordered largest factor first (the early, fast stages have the widest transition bands
    and so the shortest filters; the last, sharpest filter runs at the lowest rate). A
    prime larger than ``MAX_STAGE_FACTOR`` becomes a stage of its own.
    """
    if factor < 1:
        raise ConfigError(f"decimation factor {factor} must be a positive integer")
    primes: list[int] = []
    n, p = factor, 2
    while p * p <= n:
        while n % p == 0:
            primes.append(p)
            n //= p
        p += 1
    if n > 1:
        primes.append(n)
    stages: list[int] = []
    for q in sorted(primes, reverse=True):
        for i, s in enumerate(stages):
            if s * q <= MAX_STAGE_FACTOR:
                stages[i] = s * q
                break
        else:
            stages.append(q)
    return sorted(stages, reverse=True)


@dataclass(frozen=True)
class StageDesign:
    """One designed decimation stage.

    Attributes
    ----------
    factor : int
        Decimation factor M.
    fs_in_hz : float
        Input rate, Hz (output rate is ``fs_in_hz / factor``).
    passband_hz, stopband_hz : float
        Passband edge ``f_p`` and stopband edge ``F_out − f_p``, Hz.
    taps : numpy.ndarray
        float64 FIR coefficients, unit DC gain, odd or even length L (not padded).
    stopband_db : float
        Measured attenuation, dB, at the worst stopband frequency (≥ the design target).
    ripple_db : float
        Measured peak passband deviation from 0 dB, dB.
    """

    factor: int
    fs_in_hz: float
    passband_hz: float
    stopband_hz: float
    taps: npt.NDArray[np.float64]
    stopband_db: float
    ripple_db: float

    @property
    def fs_out_hz(self) -> float:
        return self.fs_in_hz / self.factor

    @property
    def n_taps(self) -> int:
        return int(self.taps.size)


def _response_db(
    taps: npt.NDArray[np.float64], freqs_hz: npt.NDArray[np.float64], fs_hz: float
) -> npt.NDArray[np.float64]:
    _, h = sps.freqz(taps, worN=freqs_hz, fs=fs_hz)
    return np.asarray(20.0 * np.log10(np.maximum(np.abs(h), 1e-300)), dtype=np.float64)


def design_stage(
    fs_in_hz: float, factor: int, passband_hz: float, atten_db: float = 60.0
) -> StageDesign:
    """Design one Kaiser-window low-pass decimation stage (see the module docstring).

    Parameters
    ----------
    fs_in_hz : float
        Input sample rate, Hz.
    factor : int
        Decimation factor M ≥ 1 (M = 1 returns the identity filter).
    passband_hz : float
        Edge of the band to keep, Hz; must be below ``fs_in_hz / factor / 2``.
    atten_db : float
        Stopband attenuation to reach, dB (also sets the passband ripple δ = 10^(−A/20)).

    Raises
    ------
    ConfigError
        If the passband does not fit below the output Nyquist frequency.
    """
    if factor == 1:
        return StageDesign(1, fs_in_hz, passband_hz, fs_in_hz / 2, np.ones(1), math.inf, 0.0)
    fs_out = fs_in_hz / factor
    stop = fs_out - passband_hz
    if not 0 < passband_hz < stop:
        raise ConfigError(
            f"passband {passband_hz:g} Hz does not fit a decimation to {fs_out:g} Hz "
            f"(it must be below {fs_out / 2:g} Hz)"
        )
    width = (stop - passband_hz) / (fs_in_hz / 2)
    numtaps, beta = sps.kaiserord(atten_db, width)
    cutoff = (passband_hz + stop) / 2
    ripple_lim = 20 * math.log10(1 + 10 ** (-atten_db / 20))
    grid_stop = np.linspace(stop, fs_in_hz / 2, 2048)
    grid_pass = np.linspace(0.0, passband_hz, 512)
    while True:
        taps = sps.firwin(numtaps, cutoff, window=("kaiser", beta), fs=fs_in_hz)
        sb = -float(np.max(_response_db(taps, grid_stop, fs_in_hz)))
        rp = float(np.max(np.abs(_response_db(taps, grid_pass, fs_in_hz))))
        if (sb >= atten_db and rp <= ripple_lim) or numtaps >= MAX_TAPS:
            return StageDesign(factor, fs_in_hz, passband_hz, stop, taps, sb, rp)
        numtaps += 1


class FirDecimator:
    """Stateful polyphase FIR decimator for complex blocks of any length.

    Parameters
    ----------
    taps : array_like
        Real FIR coefficients h[0..L−1].
    factor : int
        Decimation factor M.

    Notes
    -----
    Output ``n`` (counted from the last :meth:`reset`) is ``Σ_k h[k] x[nM + M − 1 − k]``
    over the whole input since the reset (zeros before it). Input that does not complete a
    group of M samples waits for the next block.

    The work is done on *planar* float32 data (:meth:`process_planar`: a ``(2, n)`` array,
    row 0 the real parts, row 1 the imaginary parts) so that the real taps multiply real
    numbers (half the arithmetic of a complex × complex product) with unit-stride inner
    loops. Only the kept outputs are computed: the input (with the last ``L − M`` samples of
    the previous block in front) is viewed without copying as the ``(2, n_out, L)`` array of
    the windows that end at each kept sample (a strided view with a step of M samples) and
    contracted with the reversed taps by ``numpy.einsum``. einsum is used rather than a BLAS
    product on purpose: these thin products are too small to gain from OpenBLAS threads,
    whose spinning costs several times the work itself. :meth:`process` is the complex64
    interface to the same computation.
    """

    def __init__(self, taps: npt.ArrayLike, factor: int) -> None:
        h = np.asarray(taps, dtype=np.float64).reshape(-1)
        self.factor = int(factor)
        self.n_taps = int(h.size)
        # windows of the L inputs ending at each kept sample; the kept sample is the newest
        g = np.ascontiguousarray(h[::-1])
        # history so that output 0 ends at input index M − 1: L − M zeros (≥ 0) before it
        self._lead = max(self.n_taps - self.factor, 0)
        self._win = max(self.n_taps, self.factor)
        if self.n_taps < self.factor:  # shorter filter than the step: pad the taps
            g = np.concatenate((np.zeros(self.factor - self.n_taps), g))
        self._g = g.astype(np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget the past input (as if the stream started now)."""
        self._hist: npt.NDArray[np.float32] = np.zeros((2, self._lead), dtype=np.float32)

    def scale(self, k: float) -> None:
        """Multiply the taps by ``k`` (folds a constant gain into the filter)."""
        self._g = (self._g.astype(np.float64) * k).astype(np.float32)

    def process_planar(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Filter and decimate the next planar block ``(2, n)``; returns ``(2, n_out)``."""
        m = self.factor
        buf = (
            np.concatenate((self._hist, x), axis=1)
            if self._hist.shape[1]
            else np.ascontiguousarray(x, dtype=np.float32)
        )
        width = buf.shape[1]
        n_out = (width - self._lead) // m
        if n_out <= 0:
            self._hist = buf
            return np.empty((2, 0), dtype=np.float32)
        windows: npt.NDArray[np.float32] = np.ndarray(
            (2, n_out, self._win), np.float32, buf, 0, (4 * width, 4 * m, 4)
        )
        y = np.einsum("cnl,l->cn", windows, self._g)
        self._hist = buf[:, n_out * m :].copy()
        return y

    def process(self, x: npt.NDArray[np.complex64]) -> ComplexArray:
        """Filter and decimate the next complex block; returns the outputs it completes."""
        return _to_complex(self.process_planar(_to_planar(np.asarray(x, dtype=np.complex64))))


def _to_planar(x: ComplexArray) -> npt.NDArray[np.float32]:
    """Complex samples as planar ``(2, n)`` float32: row 0 real, row 1 imaginary."""
    out = np.empty((2, x.size), dtype=np.float32)
    out[0] = x.real
    out[1] = x.imag
    return out


def _to_complex(y: npt.NDArray[np.float32]) -> ComplexArray:
    """Planar ``(2, n)`` float32 as complex64 (the inverse of :func:`_to_planar`)."""
    out = np.empty(y.shape[1], dtype=np.complex64)
    out.real = y[0]
    out.imag = y[1]
    return out


class Nco:
    r"""Numerically controlled oscillator: multiply blocks by ``exp(j 2π f n / f_s)``.

    When ``f / f_s`` is a ratio of integers with a period ``K ≤ 2^16`` samples (always so
    for the integer rates and offsets of real receivers) a table of one period, tiled to
    cover a block, is sliced: no transcendental function per sample and no phase drift.
    Otherwise the phase is accumulated in float64 and ``exp`` evaluated per block.
    """

    _BLOCK = 1 << 16

    def __init__(self, freq_hz: float, fs_hz: float) -> None:
        self.freq_hz = float(freq_hz)
        self.fs_hz = float(fs_hz)
        self._period: int | None = None
        self._table: ComplexArray | None = None
        if float(freq_hz).is_integer() and float(fs_hz).is_integer():
            k = int(fs_hz) // math.gcd(int(fs_hz), int(abs(freq_hz)) % int(fs_hz) or int(fs_hz))
            if k <= self._BLOCK:
                self._period = k
                reps = -(-(k + self._BLOCK) // k)
                n = np.arange(k * reps, dtype=np.float64)
                self._table = np.exp(2j * np.pi * (self.freq_hz / self.fs_hz) * n).astype(
                    np.complex64
                )
        self.reset()

    def reset(self) -> None:
        self._n = 0  # samples since reset, modulo the period when there is one

    def mix(self, x: npt.NDArray[np.complex64]) -> ComplexArray:
        """Return ``x · exp(j 2π f (n0 + i) / f_s)``, continuing from the previous block."""
        if self.freq_hz == 0.0:
            return np.asarray(x, dtype=np.complex64)
        out = np.empty(x.size, dtype=np.complex64)
        if self._table is not None and self._period is not None:
            for s in range(0, x.size, self._BLOCK):
                part = x[s : s + self._BLOCK]
                table = self._table[self._n : self._n + part.size]
                np.multiply(part, table, out=out[s : s + part.size])
                self._n = (self._n + part.size) % self._period
            return out
        n = self._n + np.arange(x.size, dtype=np.float64)
        out[:] = x * np.exp(2j * np.pi * (self.freq_hz / self.fs_hz) * n)
        self._n += x.size
        return out


class ChannelDecimator:
    """Mix down and decimate a wide-band stream to one channel (see the module docstring).

    Parameters
    ----------
    fs_in_hz : float
        Input complex sample rate, Hz.
    fs_out_hz : float
        Channel rate, Hz; ``fs_in_hz / fs_out_hz`` must be an integer.
    shift_hz : float
        Frequency added to the input before filtering, Hz: ``+offset`` when the receiver
        is tuned ``offset`` above the channel.
    passband_frac : float
        Passband edge as a fraction of ``fs_out_hz`` (< 0.5).
    atten_db : float
        Alias (stopband) rejection of every stage, dB.

    Attributes
    ----------
    stages : list of StageDesign
    output_offset : float
        Output sample k is the channel signal at input sample index ``k·D + output_offset``.
    """

    def __init__(
        self,
        fs_in_hz: float,
        fs_out_hz: float = 12_000.0,
        shift_hz: float = 0.0,
        *,
        passband_frac: float = 0.4,
        atten_db: float = 60.0,
    ) -> None:
        ratio = fs_in_hz / fs_out_hz
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            good = ", ".join(f"{fs_out_hz * d:.0f}" for d in (80, 96, 128, 200))
            raise ConfigError(
                f"sample rate {fs_in_hz:g} Hz is not an integer multiple of the channel rate "
                f"{fs_out_hz:g} Hz; use e.g. {good}"
            )
        if not 0.0 < passband_frac < 0.5:
            raise ConfigError(f"passband_frac {passband_frac} must be in (0, 0.5)")
        self.fs_in_hz = float(fs_in_hz)
        self.fs_out_hz = float(fs_out_hz)
        self.factor = round(ratio)
        self.passband_hz = passband_frac * fs_out_hz
        self.atten_db = atten_db
        self.nco = Nco(shift_hz, fs_in_hz)
        self.stages: list[StageDesign] = []
        fs, offset, scale = self.fs_in_hz, 0.0, 1
        for m in plan_stages(self.factor):
            st = design_stage(fs, m, self.passband_hz, atten_db)
            self.stages.append(st)
            offset += (m - 1 - (st.n_taps - 1) / 2) * scale
            scale *= m
            fs /= m
        self.output_offset = offset
        self._filters = [FirDecimator(s.taps, s.factor) for s in self.stages]
        self._carry = b""

    @property
    def group_delay_s(self) -> float:
        """Delay of the chain from input to output (linear phase), s."""
        return sum((s.n_taps - 1) / 2 / s.fs_in_hz for s in self.stages)

    def reset(self) -> None:
        """Forget all state (filter histories, oscillator phase, a pending odd byte)."""
        self.nco.reset()
        for f in self._filters:
            f.reset()
        self._carry = b""

    def _chain(self, p: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        for f in self._filters:
            p = f.process_planar(p)
        return p

    def process(self, x: npt.NDArray[np.complex64]) -> ComplexArray:
        """Channelise a block of complex64 input samples; returns the outputs completed."""
        y = self.nco.mix(np.asarray(x, dtype=np.complex64))
        return _to_complex(self._chain(_to_planar(y)))

    def _u8_planar(self, u: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Mixed planar input ``(2, n)`` float32 of an even number of bytes, × 127.5."""
        f = u.astype(np.float32)
        f -= np.float32(127.5)
        return _to_planar(self.nco.mix(f.view(np.complex64)))

    def process_u8(self, data: bytes | bytearray | memoryview) -> tuple[ComplexArray, int]:
        """Channelise rtl-sdr bytes (interleaved u8 I, Q); an odd trailing byte waits.

        ``x = ((I − 127.5) + j (Q − 127.5)) / 127.5`` as :func:`u8_iq_lut` (the scale is
        applied to the outputs: the chain is linear); any split gives the same output.

        Returns
        -------
        (numpy.ndarray, int)
            The completed output samples and the number of input samples consumed.
        """
        if self._carry:
            data = self._carry + bytes(data)
        u = np.frombuffer(data, dtype=np.uint8)
        n_pairs = u.size // 2
        self._carry = u[2 * n_pairs :].tobytes()
        if n_pairs == 0:
            return np.empty(0, dtype=np.complex64), 0
        p = self._chain(self._u8_planar(u[: 2 * n_pairs]))
        p *= np.float32(1 / 127.5)
        return _to_complex(p), n_pairs
