"""Transmitted waveforms as analytic functions of continuous time.

A waveform is the complex envelope u(t) of a transmission, normalised to unit mean
power (mean |u|^2 = 1), relative to the transmitter's carrier. The simulator scales
it by the received amplitude and mixes it to the receiver's baseband. Because u(t)
is evaluated analytically at any instant, a propagation delay tau is applied
exactly as u(t - tau), including fractions of a sample.

Time is passed as an integer reference ``t0_ns`` (ns since the epoch) plus float
offsets in seconds, so that phases stay accurate to ~1e-7 cycle at any epoch
(float64 seconds since 1970 only resolve ~0.2 us); see :func:`cycles_at`.

Each waveform has a pydantic *spec* (what a scenario file says) and a runtime
object built from the spec with a :class:`numpy.random.SeedSequence` (random audio,
random initial phase), so the same seed always gives the same waveform.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Annotated, ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MORSE",
    "Carrier",
    "CarrierSpec",
    "CwKeyed",
    "CwSpec",
    "FskBursts",
    "FskSpec",
    "NbfmMultisine",
    "NbfmSpec",
    "Waveform",
    "WaveformSpec",
    "cycles_at",
]

_NS_PER_S = 1_000_000_000


def cycles_at(freq_hz: ArrayLike, t_ns: int) -> NDArray[np.float64]:
    """Fractional number of cycles of a tone at an absolute time: frac(f * t).

    With t = s + r * 1e-9 (s whole seconds, r ns in [0, 1e9)) and f = floor(f) + g::

        frac(f t) = frac( frac(g s) + f r 1e-9 )

    because floor(f) * s is an integer. Every product stays below ~2e9, so the
    result is accurate to ~1e-7 cycle even for t ~ 1.7e9 s (a float64 ``f * t`` would
    lose whole cycles).

    Parameters
    ----------
    freq_hz : array_like
        Tone frequencies, Hz (any sign).
    t_ns : int
        Absolute time, integer ns since the epoch.

    Returns
    -------
    numpy.ndarray
        frac(f t) in [0, 1), same shape as ``freq_hz``.
    """
    f = np.asarray(freq_hz, dtype=np.float64)
    whole_s, rem_ns = divmod(int(t_ns), _NS_PER_S)
    g = f - np.floor(f)  # exact in binary floating point
    c = np.mod(g * float(whole_s), 1.0) + f * (rem_ns * 1e-9)
    return np.mod(c, 1.0)


class Waveform(ABC):
    """Complex envelope u(t) of a transmission, unit mean power."""

    kind: ClassVar[str]

    @abstractmethod
    def evaluate(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.complex128]:
        """Evaluate u(t) at t = t0_ns * 1e-9 + offset_s.

        Parameters
        ----------
        t0_ns : int
            Reference time, ns since the epoch.
        offset_s : array_like
            Offsets from ``t0_ns``, s, any shape (keep them small, |offset| < ~1e4 s).

        Returns
        -------
        numpy.ndarray
            u(t), complex128, shape of ``offset_s``.
        """

    def evaluate_grid(
        self, t0_ns: int, sample_rate_hz: float, n_samples: int, delays_s: ArrayLike
    ) -> NDArray[np.complex64]:
        """Evaluate u on a sampling grid seen through several delays.

        Returns ``U[r, n] = u(t0 + n / fs - tau_r)``, the samples a receiver r whose
        path delay is tau_r takes at its sampling instants t0 + n / fs. Subclasses
        override this with a faster exact evaluation.

        Parameters
        ----------
        t0_ns : int
            Time of sample 0 at the receivers, ns since the epoch.
        sample_rate_hz : float
            Sampling rate fs, Hz.
        n_samples : int
            Number of samples N.
        delays_s : array_like
            Propagation delays tau_r, s, shape (R,).

        Returns
        -------
        numpy.ndarray
            complex64, shape (R, N).
        """
        tau = np.atleast_1d(np.asarray(delays_s, dtype=np.float64))
        offsets = np.arange(n_samples) / sample_rate_hz - tau[:, None]
        return self.evaluate(t0_ns, offsets).astype(np.complex64)


class Carrier(Waveform):
    """Unmodulated carrier (CW, or an idle repeater): u(t) = exp(j phi0).

    Parameters
    ----------
    phase0_rad : float
        Initial phase of the transmitter's oscillator, rad.
    """

    kind: ClassVar[str] = "carrier"

    def __init__(self, phase0_rad: float = 0.0) -> None:
        self.phase0_rad = float(phase0_rad)

    def evaluate(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.complex128]:
        shape = np.shape(offset_s)
        return np.full(shape, np.exp(1j * self.phase0_rad), dtype=np.complex128)

    def evaluate_grid(
        self, t0_ns: int, sample_rate_hz: float, n_samples: int, delays_s: ArrayLike
    ) -> NDArray[np.complex64]:
        n_rows = np.atleast_1d(np.asarray(delays_s)).shape[0]
        return np.full((n_rows, n_samples), np.exp(1j * self.phase0_rad), dtype=np.complex64)


class NbfmMultisine(Waveform):
    """Narrow-band FM carrying band-limited noise audio, evaluated exactly.

    The audio is a random-phase multisine, a standard deterministic model of
    band-limited noise::

        m(t) = sum_k a_k cos(2 pi f_k t + phi_k),   a_k = 1 / sqrt(K)

    so that mean m^2 = 1/2 (the power of a unit sine): ``deviation_hz`` is then the
    peak deviation of the equal-power test tone. FM integrates the instantaneous
    frequency offset f_d(t) = D m(t), analytically per tone::

        psi(t) = 2 pi D integral m = sum_k beta_k sin(2 pi f_k t + phi_k),
        beta_k = D a_k / f_k
        u(t)   = exp(j (phi0 + psi(t)))            (|u| = 1, unit power)

    Ref.: A. B. Carlson, P. B. Crilly, "Communication Systems", 5th ed., sec. 5.1
    (FM with a multitone message).

    Parameters
    ----------
    deviation_hz : float
        D, Hz.
    audio_freqs_hz, audio_phases_rad : array_like
        f_k (Hz, > 0) and phi_k (rad), shape (K,).
    phase0_rad : float
        Initial carrier phase phi0, rad.
    """

    kind: ClassVar[str] = "nbfm"

    def __init__(
        self,
        deviation_hz: float,
        audio_freqs_hz: ArrayLike,
        audio_phases_rad: ArrayLike,
        phase0_rad: float = 0.0,
    ) -> None:
        self.deviation_hz = float(deviation_hz)
        self.audio_freqs_hz = np.asarray(audio_freqs_hz, dtype=np.float64).copy()
        self.audio_phases_rad = np.asarray(audio_phases_rad, dtype=np.float64).copy()
        if self.audio_freqs_hz.shape != self.audio_phases_rad.shape:
            raise ValueError("audio_freqs_hz and audio_phases_rad must have the same shape")
        if np.any(self.audio_freqs_hz <= 0.0):
            raise ValueError("audio frequencies must be > 0 Hz")
        n_tones = self.audio_freqs_hz.size
        self.audio_amplitudes = np.full(n_tones, 1.0 / np.sqrt(n_tones))
        self.beta_rad = self.deviation_hz * self.audio_amplitudes / self.audio_freqs_hz
        self.phase0_rad = float(phase0_rad)
        # (fs, N) -> [cos(2 pi f_k n / fs); sin(2 pi f_k n / fs)], (2K, N) float32
        self._grid_cache: dict[tuple[float, int], NDArray[np.float32]] = {}

    def audio(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.float64]:
        """Normalised audio message m(t) (mean square 1/2), at t = t0 + offset."""
        theta = self._tone_angles(t0_ns, offset_s)
        return np.asarray(np.cos(theta) @ self.audio_amplitudes, dtype=np.float64)

    def _tone_angles(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.float64]:
        off = np.asarray(offset_s, dtype=np.float64)[..., None]
        cyc = cycles_at(self.audio_freqs_hz, t0_ns) + self.audio_freqs_hz * off
        return 2.0 * np.pi * cyc + self.audio_phases_rad

    def evaluate(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.complex128]:
        psi = np.sin(self._tone_angles(t0_ns, offset_s)) @ self.beta_rad
        return np.asarray(np.exp(1j * (self.phase0_rad + psi)), dtype=np.complex128)

    def _grid(self, sample_rate_hz: float, n_samples: int) -> NDArray[np.float32]:
        key = (float(sample_rate_hz), int(n_samples))
        cached = self._grid_cache.get(key)
        if cached is None:
            omega_n = (
                2.0 * np.pi * self.audio_freqs_hz[:, None] * (np.arange(n_samples) / sample_rate_hz)
            )
            cached = np.concatenate([np.cos(omega_n), np.sin(omega_n)], axis=0).astype(np.float32)
            self._grid_cache[key] = cached
        return cached

    def evaluate_grid(
        self, t0_ns: int, sample_rate_hz: float, n_samples: int, delays_s: ArrayLike
    ) -> NDArray[np.complex64]:
        """Exact grid evaluation through one small matrix product.

        With alpha_rk = 2 pi (frac(f_k t0) - f_k tau_r) + phi_k and omega_k = 2 pi f_k / fs,
        sin(alpha_rk + omega_k n) = sin(alpha_rk) cos(omega_k n) + cos(alpha_rk) sin(omega_k n),
        hence psi = [beta sin alpha, beta cos alpha] @ [C; S] with C, S (K, N) cached
        per (fs, N): O(R K N) multiply-adds and no per-chunk transcendental function
        except the final exp(j psi).

        The product is an ``einsum`` (numpy's own loops), not BLAS: OpenBLAS's thread
        pool stalls badly on a loaded machine (measured 0.15 ms -> 7 ms for R = 50 with
        the other core busy), and a single-threaded sum keeps the output bit-identical
        whatever the BLAS threading. The sum runs in float32 (2-3x faster): with
        |psi| <= sum beta_k (a few rad) its rounding error is ~1e-6 rad, a distortion
        near -120 dBc. The per-chunk angles alpha are formed in float64 first.
        """
        tau = np.atleast_1d(np.asarray(delays_s, dtype=np.float64))
        grid = self._grid(sample_rate_hz, n_samples)
        f = self.audio_freqs_hz
        alpha = (
            2.0 * np.pi * (cycles_at(f, t0_ns)[None, :] - f[None, :] * tau[:, None])
            + self.audio_phases_rad
        )
        coef = np.concatenate(
            [self.beta_rad * np.sin(alpha), self.beta_rad * np.cos(alpha)], axis=1
        ).astype(np.float32)
        phase = np.einsum("rk,kn->rn", coef, grid, optimize=False)
        phase += np.float32(self.phase0_rad)
        out = np.empty(phase.shape, dtype=np.complex64)
        out.real = np.cos(phase)
        out.imag = np.sin(phase)
        return out


class _SpecBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CarrierSpec(_SpecBase):
    """Spec of an unmodulated carrier (e.g. a repeater's idle carrier)."""

    kind: Literal["carrier"] = "carrier"

    def build(self, seed: np.random.SeedSequence) -> Carrier:
        """Build the runtime waveform; the seed draws the initial carrier phase."""
        rng = np.random.default_rng(seed)
        return Carrier(phase0_rad=float(rng.uniform(0.0, 2.0 * np.pi)))


class NbfmSpec(_SpecBase):
    """Spec of an NBFM transmission with band-limited-noise audio (see :class:`NbfmMultisine`)."""

    kind: Literal["nbfm"] = "nbfm"
    deviation_hz: float = Field(default=2_500.0, gt=0.0)
    audio_low_hz: float = Field(default=300.0, gt=0.0)
    audio_high_hz: float = Field(default=3_000.0, gt=0.0)
    n_tones: int = Field(default=24, ge=1, le=4096)

    @model_validator(mode="after")
    def _check_band(self) -> NbfmSpec:
        if self.audio_high_hz <= self.audio_low_hz:
            raise ValueError("audio_high_hz must exceed audio_low_hz")
        return self

    def build(self, seed: np.random.SeedSequence) -> NbfmMultisine:
        """Build the runtime waveform: tone frequencies uniform in the audio band,
        phases uniform in [0, 2 pi), all drawn from ``seed``."""
        rng = np.random.default_rng(seed)
        freqs = np.sort(rng.uniform(self.audio_low_hz, self.audio_high_hz, self.n_tones))
        phases = rng.uniform(0.0, 2.0 * np.pi, self.n_tones)
        phase0 = float(rng.uniform(0.0, 2.0 * np.pi))
        return NbfmMultisine(self.deviation_hz, freqs, phases, phase0_rad=phase0)


MORSE: dict[str, str] = {
    "A": ".-", "B": "-...", "C": "-.-.", "D": "-..", "E": ".", "F": "..-.", "G": "--.",
    "H": "....", "I": "..", "J": ".---", "K": "-.-", "L": ".-..", "M": "--", "N": "-.",
    "O": "---", "P": ".--.", "Q": "--.-", "R": ".-.", "S": "...", "T": "-", "U": "..-",
    "V": "...-", "W": ".--", "X": "-..-", "Y": "-.--", "Z": "--..", "0": "-----",
    "1": ".----", "2": "..---", "3": "...--", "4": "....-", "5": ".....", "6": "-....",
    "7": "--...", "8": "---..", "9": "----.", "/": "-..-.", "?": "..--..", "=": "-...-",
}  # fmt: skip
"""International Morse code (ITU-R M.1677-1)."""


def morse_key_intervals(message: str) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """Key-down intervals of a message in dot units: (starts, ends, period).

    ITU-R M.1677-1 timing: dot 1, dash 3, gap inside a character 1, between characters
    3, between words 7; the message repeats after a word gap.
    """
    starts: list[float] = []
    ends: list[float] = []
    u = 0
    for w, word in enumerate(message.upper().split()):
        if w:
            u += 4  # 3 already added after the last character -> 7
        for ch in word:
            code = MORSE.get(ch)
            if code is None:
                raise ValueError(f"no Morse code for {ch!r}")
            for i, el in enumerate(code):
                if i:
                    u += 1
                n = 1 if el == "." else 3
                starts.append(u)
                ends.append(u + n)
                u += n
            u += 3
    return np.array(starts), np.array(ends), u + 4


class CwKeyed(Waveform):
    """On/off keyed carrier (Morse, CW) with raised-cosine edges.

    With dot length T = 1.2 / wpm (PARIS timing) and key-down intervals [a_i, b_i]
    repeating with the message period, the envelope is::

        e(t) = r((p - a_i) / t_r) r((b_i - p) / t_r)  for a_i <= p <= b_i, else 0
        r(x) = (1 - cos(pi min(max(x, 0), 1))) / 2,   p = t mod period

    (raised-cosine rise and fall of t_r inside the key-down time, which keeps the
    keying sidebands within ~1/t_r, ITU-R SM.1541 / "key clicks"), and
    u(t) = e(t) exp(j phi0): |u| = 1 when key down (the transmitter's power is its
    key-down power).
    """

    kind: ClassVar[str] = "cw"

    def __init__(self, message: str, wpm: float, rise_s: float, phase0_rad: float = 0.0) -> None:
        starts, ends, period_units = morse_key_intervals(message)
        self.dot_s = 1.2 / float(wpm)
        self.starts_s = starts * self.dot_s
        self.ends_s = ends * self.dot_s
        self.period_ns = round(period_units * self.dot_s * 1e9)
        self.rise_s = float(rise_s)
        self.phase0_rad = float(phase0_rad)

    def envelope(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.float64]:
        """e(t) at t = t0 + offset."""
        base_s = (int(t0_ns) % self.period_ns) * 1e-9
        p = np.mod(base_s + np.asarray(offset_s, dtype=np.float64), self.period_ns * 1e-9)
        i = np.clip(np.searchsorted(self.starts_s, p, side="right") - 1, 0, None)
        a, b = self.starts_s[i], self.ends_s[i]
        x_up = np.clip((p - a) / self.rise_s, 0.0, 1.0)
        x_dn = np.clip((b - p) / self.rise_s, 0.0, 1.0)
        env = 0.25 * (1.0 - np.cos(np.pi * x_up)) * (1.0 - np.cos(np.pi * x_dn))
        return np.where((p >= a) & (p <= b), env, 0.0)

    def evaluate(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.complex128]:
        return np.asarray(
            self.envelope(t0_ns, offset_s) * np.exp(1j * self.phase0_rad), dtype=np.complex128
        )


class FskBursts(Waveform):
    """Continuous-phase M-FSK (M = 2 or 4) in frames of random symbols.

    Time is cut into frames of F symbols of duration T_s = 1 / R_s (frame k covers
    [k F T_s, (k + 1) F T_s) of Unix time). Frame k draws its symbols a_j in
    {0 .. M-1} and its start phase phi_k from a counter-based generator keyed by k, so
    any instant is evaluated directly. Tone frequencies (Hz) are
    f = D {-1, +1} (2FSK) or D {-1, -1/3, +1/3, +1} (4FSK, as DMR / C4FM with
    D = 1944 Hz). Inside a frame the phase is continuous::

        u(t) = exp(j (phi_k + 2 pi sum_{i<j} f_{a_i} T_s + 2 pi f_{a_j} (t - t_j)))

    Frames are independent (any instant is evaluated directly), so the phase of frame k's
    last symbol does not end at phi_{k+1}. Over the last symbol of each frame a raised-
    cosine glide closes that gap::

        u(t) <- u(t) exp(j Delta_k (1 - cos(pi x)) / 2),   x = (t - t_g) / T_s in [0, 1]
        Delta_k = wrap(phi_{k+1} - phase of frame k at its end) in (-pi, pi]

    so the phase and its derivative are continuous across frames (|Delta_k| <= pi moves
    the frequency by at most pi^2 / (4 pi T_s) = R_s pi / 4 Hz over that symbol) and the
    signal stays band-limited: a phase jump evaluated at each receiver's delayed sample
    instants would be quantised to its own sample grid and bias its time of arrival.
    On/off bursts come from the transmitter's schedule.
    """

    kind: ClassVar[str] = "fsk"

    def __init__(
        self,
        levels: int,
        symbol_rate_hz: float,
        deviation_hz: float,
        frame_symbols: int,
        key: NDArray[np.uint64],
    ) -> None:
        self.levels = int(levels)
        tones = np.array([-1.0, 1.0]) if self.levels == 2 else np.array([-1.0, -1 / 3, 1 / 3, 1.0])
        self.tones_hz = tones * float(deviation_hz)
        self.symbol_s = 1.0 / float(symbol_rate_hz)
        self.frame_symbols = int(frame_symbols)
        self.frame_ns = round(self.frame_symbols * self.symbol_s * 1e9)
        self._key = key
        self._cache: dict[int, tuple[NDArray[np.int64], NDArray[np.float64]]] = {}

    def frame(self, k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Symbols of frame k and the phase (rad) at the start of each symbol."""
        hit = self._cache.get(k)
        if hit is None:
            counter = np.array([0, k % (1 << 64), 0, 0], dtype=np.uint64)
            rng = np.random.Generator(np.random.Philox(key=self._key, counter=counter))
            sym = rng.integers(0, self.levels, self.frame_symbols)
            phi0 = rng.uniform(0.0, 2.0 * np.pi)
            steps = 2.0 * np.pi * self.tones_hz[sym] * self.symbol_s
            start = phi0 + np.concatenate([[0.0], np.cumsum(steps[:-1])])
            hit = (sym, start)
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[k] = hit
        return hit

    def evaluate(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.complex128]:
        off = np.asarray(offset_s, dtype=np.float64)
        k0, rem_ns = divmod(int(t0_ns), self.frame_ns)
        rel_s = rem_ns * 1e-9 + off  # seconds since the start of frame k0
        frame_s = self.frame_ns * 1e-9
        dk = np.floor(rel_s / frame_s).astype(np.int64)
        pos_s = rel_s - dk * frame_s
        j = np.clip((pos_s / self.symbol_s).astype(np.int64), 0, self.frame_symbols - 1)
        phase = np.empty(off.shape)
        glide_from_s = frame_s - self.symbol_s
        for d in np.unique(dk):
            sel = dk == d
            sym, start = self.frame(k0 + int(d))
            jj = j[sel]
            ps = pos_s[sel]
            ph = start[jj] + 2.0 * np.pi * self.tones_hz[sym[jj]] * (ps - jj * self.symbol_s)
            x = (ps - glide_from_s) / self.symbol_s
            last = x > 0.0
            if np.any(last):
                end = start[-1] + 2.0 * np.pi * self.tones_hz[sym[-1]] * self.symbol_s
                gap = self.frame(k0 + int(d) + 1)[1][0] - end
                gap = float(np.angle(np.exp(1j * gap)))
                ph[last] += gap * 0.5 * (1.0 - np.cos(np.pi * np.minimum(x[last], 1.0)))
            phase[sel] = ph
        return np.asarray(np.exp(1j * phase), dtype=np.complex128)


class CwSpec(_SpecBase):
    """Spec of a Morse (CW) transmission (see :class:`CwKeyed`)."""

    kind: Literal["cw"] = "cw"
    message: str = Field(default="CQ CQ DE HEIMDALL K", min_length=1)
    wpm: float = Field(default=20.0, gt=1.0, le=60.0)
    rise_s: float = Field(default=0.005, gt=0.0)

    @model_validator(mode="after")
    def _check(self) -> CwSpec:
        morse_key_intervals(self.message)
        if self.rise_s > 0.5 * 1.2 / self.wpm:
            raise ValueError("rise_s must be at most half a dot (0.6 / wpm s)")
        return self

    def build(self, seed: np.random.SeedSequence) -> CwKeyed:
        """Build the runtime waveform; the seed draws the carrier phase."""
        rng = np.random.default_rng(seed)
        return CwKeyed(self.message, self.wpm, self.rise_s, float(rng.uniform(0, 2 * np.pi)))


class FskSpec(_SpecBase):
    """Spec of a 2FSK / 4FSK digital transmission (see :class:`FskBursts`)."""

    kind: Literal["fsk"] = "fsk"
    levels: Literal[2, 4] = 4
    symbol_rate_hz: float = Field(default=4_800.0, gt=0.0)
    deviation_hz: float = Field(default=1_944.0, gt=0.0)
    frame_symbols: int = Field(default=144, ge=1)

    @model_validator(mode="after")
    def _check(self) -> FskSpec:
        frame_ns = self.frame_symbols / self.symbol_rate_hz * 1e9
        if abs(frame_ns - round(frame_ns)) > 1e-3:
            raise ValueError("frame_symbols / symbol_rate_hz must be a whole number of ns")
        return self

    def build(self, seed: np.random.SeedSequence) -> FskBursts:
        """Build the runtime waveform; the seed keys the symbol generator."""
        key = np.asarray(seed.generate_state(2, dtype=np.uint64), dtype=np.uint64)
        return FskBursts(
            self.levels, self.symbol_rate_hz, self.deviation_hz, self.frame_symbols, key
        )


WaveformSpec = Annotated[CarrierSpec | NbfmSpec | CwSpec | FskSpec, Field(discriminator="kind")]
"""Any waveform spec, discriminated by ``kind``."""
