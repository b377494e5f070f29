"""The simulator: turns a :class:`~.scenario.Scenario` into IQ chunks and ground truth.

Signal model (static transmitters and receivers, free space, 0 dBi antennas, ideal
GPS-disciplined receiver clocks and local oscillators). Transmitter s sends the
passband signal Re{ A_s u_s(t) exp(j 2 pi f_s t) } with sqrt-mW amplitude
A_s = sqrt(10^(P_tx / 10)) and unit-power envelope u_s (see :mod:`.waveforms`).
Receiver r, tuned to the channel centre f_c and sampling at t_n = t0 + n / fs,
records the complex baseband::

    x_r(t_n) = sum_s g_rs A_s u_s(t_n - tau_rs) exp(j 2 pi (f_s - f_c) t_n)
                                                exp(-j 2 pi f_s tau_rs)   + w_r(t_n)

    tau_rs = d_rs / c,   g_rs = 10^(-FSPL(d_rs, f_s) / 20),
    E|w_r|^2 = k T0 fs F_r        (thermal noise, see :mod:`.receivers`)

i.e. the transmitted waveform delayed by the exact (fractional-sample) propagation
delay, the carrier offset f_s - f_c as a complex exponential of the receiver's time,
and the carrier phase -2 pi f_s tau. Only transmitters with |f_s - f_c| < fs / 2 are
in a channel (the receiver's anti-alias filter is taken as ideal). Receiver LO phases
are referenced to t = 0 (the epoch), i.e. the network is phase-coherent.

Determinism: waveforms are seeded from (seed, source_id); the noise of one chunk is
drawn by the counter-based Philox generator keyed by (seed, receiver_id, channel_id)
with counter = chunk start time. A chunk is therefore a pure function of
(seed, scenario, t_ns): independent of iteration order, of the steps simulated before
and of the other receivers and channels in the scenario.

References
----------
.. [1] J. K. Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011
   (Philox counter-based generator).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from .propagation import (
    amplitude_gain,
    fspl_db,
    geodetic_to_ecef,
    propagation_delay_s,
    slant_range_m,
)
from .receivers import complex_awgn, thermal_noise_power_dbm
from .scenario import Scenario
from .transmitters import ChannelSpec
from .waveforms import Waveform, cycles_at

__all__ = ["SimChunk", "SimStep", "SimTruth", "Simulator"]

_DOMAIN_WAVEFORM = 1
_DOMAIN_NOISE = 2
_U64 = 1 << 64


@dataclass(frozen=True, eq=False)
class SimChunk:
    """One IQ chunk of one receiver on one channel.

    Attributes
    ----------
    receiver_id : str
        Receiver that recorded it.
    seq : int
        Step number (the same for every chunk of one step); consecutive within the
        stream of one (receiver_id, center_freq_hz).
    t_ns : int
        Receiver time of the first sample, ns since the epoch (GPS-perfect clock).
    center_freq_hz : float
        Tuned centre frequency (the channel's nominal frequency), Hz.
    sample_rate_hz : float
        Complex sample rate, Hz.
    iq : numpy.ndarray
        complex64 samples (read-only), in sqrt(mW) at the antenna port:
        power_dBm = 10 log10(mean |iq|^2) + full_scale_dbm.
    full_scale_dbm : float
        0.0 for these float samples.
    lat_deg, lon_deg, alt_m : float
        Receiver antenna position, WGS84.
    """

    receiver_id: str
    seq: int
    t_ns: int
    center_freq_hz: float
    sample_rate_hz: float
    iq: NDArray[np.complex64] = field(repr=False)
    full_scale_dbm: float
    lat_deg: float
    lon_deg: float
    alt_m: float


@dataclass(frozen=True)
class SimTruth:
    """Ground truth of one transmitter during one step.

    Attributes
    ----------
    source_id : str
        Transmitter id.
    t_ns : int
        Start of the step, ns since the epoch.
    lat_deg, lon_deg, alt_m : float
        Transmitter position, WGS84.
    freq_hz : float
        Actual carrier frequency (nominal + offset), Hz.
    tx_power_dbm : float
        Transmitted power (EIRP), dBm.
    waveform : str
        Waveform kind, e.g. ``"carrier"``, ``"nbfm"``.
    channel_id : str
        Channel label.
    """

    source_id: str
    t_ns: int
    lat_deg: float
    lon_deg: float
    alt_m: float
    freq_hz: float
    tx_power_dbm: float
    waveform: str
    channel_id: str


class SimStep(NamedTuple):
    """Output of one step: every receiver's chunk on every channel, and the truth."""

    chunks: list[SimChunk]
    truths: list[SimTruth]


def _stable_key(text: str) -> int:
    """64-bit key of a string, stable across runs and platforms (BLAKE2b)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class Simulator:
    """Synthesises the IQ chunks of a scenario, step by step.

    Parameters
    ----------
    scenario : Scenario
        The scene.
    seed : int
        Master seed: same seed, same output.
    noise : bool
        Add thermal noise (default). ``False`` gives the noiseless signal.

    Attributes
    ----------
    channels : list of ChannelSpec
        The channels each receiver records.
    distance_m, delay_s, path_loss_db, rx_power_dbm : numpy.ndarray
        (R, S) slant range, propagation delay, free-space loss and received power
        (P_tx - FSPL) of receiver r from transmitter s, in scenario order.
    noise_power_dbm : numpy.ndarray
        (R,) thermal noise power in one chunk's bandwidth.
    waveforms : dict of str to Waveform
        Runtime waveform of each transmitter.
    """

    def __init__(self, scenario: Scenario, seed: int = 0, *, noise: bool = True) -> None:
        self.scenario = scenario
        self.seed = int(seed)
        self.noise = noise
        self.channels: list[ChannelSpec] = scenario.tuned_channels()
        rxs, txs = scenario.receivers, scenario.transmitters
        fs, n = scenario.sample_rate_hz, scenario.n_samples
        self._fs, self._n = fs, n

        rx_ecef = geodetic_to_ecef(
            [r.lat_deg for r in rxs], [r.lon_deg for r in rxs], [r.alt_m for r in rxs]
        ).reshape(len(rxs), 3)
        tx_ecef = geodetic_to_ecef(
            [t.lat_deg for t in txs], [t.lon_deg for t in txs], [t.alt_m for t in txs]
        ).reshape(len(txs), 3)
        self.tx_freq_hz = np.array([t.freq_hz for t in txs], dtype=np.float64)
        self.distance_m = slant_range_m(rx_ecef[:, None, :], tx_ecef[None, :, :])
        self.delay_s = propagation_delay_s(self.distance_m)
        self.path_loss_db = fspl_db(self.distance_m, self.tx_freq_hz[None, :])
        tx_power_dbm = np.array([t.tx_power_dbm for t in txs], dtype=np.float64)
        self.rx_power_dbm = tx_power_dbm[None, :] - self.path_loss_db
        # sqrt(mW) amplitude at the receiver: g_rs A_s = 10^((P_tx - FSPL) / 20)
        self._amplitude = amplitude_gain(-self.rx_power_dbm)
        # carrier phase exp(-j 2 pi f_s tau_rs), reduced mod 1 cycle first (f tau ~ 1e5)
        carrier_cycles = np.mod(self.tx_freq_hz[None, :] * self.delay_s, 1.0)
        self._path_phasor = self._amplitude * np.exp(-2j * np.pi * carrier_cycles)

        self.noise_power_dbm = np.array(
            [thermal_noise_power_dbm(fs, r.noise_figure_db) for r in rxs], dtype=np.float64
        )
        self._noise_power_mw = 10.0 ** (self.noise_power_dbm / 10.0)

        self.waveforms: dict[str, Waveform] = {
            t.source_id: t.waveform.build(
                np.random.SeedSequence(
                    self.seed, spawn_key=(_DOMAIN_WAVEFORM, _stable_key(t.source_id))
                )
            )
            for t in txs
        }
        self._waveform_list = [self.waveforms[t.source_id] for t in txs]

        # Per channel: in-band transmitters and their offset row exp(j 2 pi df n / fs).
        n_over_fs = np.arange(n) / fs
        self._in_band: list[list[tuple[int, float, NDArray[np.complex64]]]] = []
        for ch in self.channels:
            entries = []
            for s, f_s in enumerate(self.tx_freq_hz):
                df = float(f_s - ch.freq_hz)
                if abs(df) < fs / 2.0:
                    row = np.exp(2j * np.pi * df * n_over_fs).astype(np.complex64)
                    entries.append((s, df, row))
            self._in_band.append(entries)

        # Philox keys per (receiver, channel): 2 x uint64 from (seed, ids).
        self._noise_keys = [
            [
                np.random.SeedSequence(
                    self.seed,
                    spawn_key=(
                        _DOMAIN_NOISE,
                        _stable_key(r.receiver_id),
                        _stable_key(ch.channel_id),
                    ),
                ).generate_state(2, dtype=np.uint64)
                for ch in self.channels
            ]
            for r in rxs
        ]

    def _noise_rng(self, r: int, c: int, t_ns: int) -> np.random.Generator:
        counter = np.array([0, t_ns % _U64, 0, 0], dtype=np.uint64)
        return np.random.Generator(np.random.Philox(key=self._noise_keys[r][c], counter=counter))

    def channel_block(self, channel_index: int, t_ns: int) -> NDArray[np.complex64]:
        """Samples of every receiver on one channel for the chunk starting at ``t_ns``.

        Parameters
        ----------
        channel_index : int
            Index into :attr:`channels`.
        t_ns : int
            Receiver time of the first sample, ns since the epoch.

        Returns
        -------
        numpy.ndarray
            complex64, shape (R, N), sqrt(mW).
        """
        n_rx = len(self.scenario.receivers)
        x = np.zeros((n_rx, self._n), dtype=np.complex64)
        for s, df, row in self._in_band[channel_index]:
            u = self._waveform_list[s].evaluate_grid(t_ns, self._fs, self._n, self.delay_s[:, s])
            # exp(j 2 pi df t_n) = exp(j 2 pi frac(df t0)) exp(j 2 pi df n / fs)
            start = np.exp(2j * np.pi * float(cycles_at(df, t_ns)))
            scale = (self._path_phasor[:, s] * start).astype(np.complex64)
            u *= row[None, :]
            u *= scale[:, None]
            x += u
        if self.noise:
            for r in range(n_rx):
                rng = self._noise_rng(r, channel_index, t_ns)
                x[r] += complex_awgn(rng, (self._n,), float(self._noise_power_mw[r]))
        return x

    def step(self, t_ns: int, seq: int = 0) -> SimStep:
        """Simulate the chunks that start at ``t_ns`` (one per receiver per channel).

        Parameters
        ----------
        t_ns : int
            Receiver time of the first sample, ns since the epoch.
        seq : int
            Sequence number written into the chunks.

        Returns
        -------
        SimStep
            ``chunks`` in receiver-major, channel-minor order; ``truths`` one per
            transmitter.
        """
        t_ns = int(t_ns)
        sc = self.scenario
        blocks = [self.channel_block(c, t_ns) for c in range(len(self.channels))]
        for b in blocks:
            b.flags.writeable = False
        chunks = [
            SimChunk(
                receiver_id=rx.receiver_id,
                seq=seq,
                t_ns=t_ns,
                center_freq_hz=ch.freq_hz,
                sample_rate_hz=sc.sample_rate_hz,
                iq=blocks[c][r],
                full_scale_dbm=0.0,
                lat_deg=rx.lat_deg,
                lon_deg=rx.lon_deg,
                alt_m=rx.alt_m,
            )
            for r, rx in enumerate(sc.receivers)
            for c, ch in enumerate(self.channels)
        ]
        truths = [
            SimTruth(
                source_id=tx.source_id,
                t_ns=t_ns,
                lat_deg=tx.lat_deg,
                lon_deg=tx.lon_deg,
                alt_m=tx.alt_m,
                freq_hz=tx.freq_hz,
                tx_power_dbm=tx.tx_power_dbm,
                waveform=tx.waveform.kind,
                channel_id=tx.channel_id,
            )
            for tx in sc.transmitters
        ]
        return SimStep(chunks, truths)

    def steps(
        self, start_t_ns: int, n_steps: int | None = None, first_seq: int = 0
    ) -> Iterator[SimStep]:
        """Iterate over consecutive steps; the caller paces.

        Step k starts at ``start_t_ns + k * chunk_ns`` and carries
        ``seq = first_seq + k``; chunks of consecutive steps are sample-contiguous.

        Parameters
        ----------
        start_t_ns : int
            Start of the first chunk, ns since the epoch.
        n_steps : int, optional
            Number of steps; ``None`` iterates forever.
        first_seq : int
            Sequence number of the first step.

        Yields
        ------
        SimStep
            ``(chunks, truths)`` of each step.
        """
        chunk_ns = self.scenario.chunk_ns
        k = 0
        while n_steps is None or k < n_steps:
            yield self.step(int(start_t_ns) + k * chunk_ns, first_seq + k)
            k += 1
