"""The simulator: turns a :class:`~.scenario.Scenario` into IQ chunks and ground truth.

Signal model
------------
Transmitter s sends the passband signal Re{ A_s k_s(t) u_s(t) exp(j 2 pi f_s t) } with
sqrt-mW amplitude A_s = sqrt(10^(P_tx / 10)), unit-power envelope u_s (see
:mod:`.waveforms`) and on/off key k_s (its schedule, :mod:`.motion`). Receiver r,
nominally tuned to the channel centre f_c, has an LO at f_LO,r = f_c (1 + delta_r)
(``lo_ppm``) and samples at the true instants t_n = T_r + n / (fs (1 + eps_r))
(``sample_clock_ppm``; T_r the true start of the chunk, :mod:`.clocks`). It records::

    x_r(t_n) = c_r [ sum_s a_rs h_rs(t_n) k_s(t_n - tau_rs) u_s(t_n - tau_rs)
                        exp(j 2 pi (f_s - f_LO,r) t_n) exp(-j 2 pi f_s tau_rs(t_n))
                     + w_r(t_n) ]

    tau_rs(t) = d_rs(t) / c,  d_rs(t) = d_rs(T) + d'_rs (t - T)   (range, range rate)
    a_rs = 10^((P_tx,s + G_r - L_rs - S_rs) / 20)                 (sqrt mW)
    E|w_r|^2 = k T0 fs F_r                                          (thermal noise)

with L the median path loss of the scenario's model (:mod:`.pathloss`), S the
spatially correlated shadowing (:mod:`.shadowing`), h the small-scale fading
(:mod:`.fading`, E|h|^2 = 1), G_r the receiver's antenna gain and c_r its calibration
error (reported as a full-scale offset). The time-varying delay gives the Doppler shift:
the baseband frequency of s at r is f_s (1 - d'_rs / c) - f_LO,r. Only transmitters with
|f_s - f_c| < fs / 2 are in a channel (ideal anti-alias filter). LO phases are
referenced to t = 0 (the network is phase-coherent). If the receiver has an ADC, the
samples are then clipped and quantised (:func:`.receivers.quantize`). The chunk carries
the receiver's *reported* time of its first sample (its clock's belief of T_r).

With the defaults (free space, no shadowing or fading, static transmitters, ideal
receivers) this reduces to the ideal model: x_r = sum_s g_rs A_s u_s(t_n - tau_rs)
exp(j 2 pi (f_s - f_c) t_n) exp(-j 2 pi f_s tau_rs) + w_r, computed on a fast path.

Moving transmitters: the link state (positions, ranges, range rates, losses) is taken
at the chunk's nominal start and the range is linear across the chunk (a 30 m/s
transmitter moves 6 m in 0.2 s; the neglected range curvature is << 1 mm).

Determinism: waveforms are seeded from (seed, source_id); shadowing fields from (seed,
receiver_id); fading from (seed, receiver_id, source_id); clocks from (seed,
receiver_id); the noise of one chunk is drawn by the counter-based Philox generator
keyed by (seed, receiver_id, channel_id) with counter = chunk start time. A chunk is
therefore a pure function of (seed, scenario, t_ns) (and of ``epoch_ns`` for drifting
clocks): independent of iteration order, of the steps simulated before and of the other
receivers and channels in the scenario.

References
----------
.. [1] J. K. Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011
   (Philox counter-based generator).
.. [2] T. S. Rappaport, *Wireless Communications*, 2nd ed., 2002, sec. 4.2 (link budget),
   5.7 (Doppler).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from heimdall.core.geodesy import ecef_to_geodetic

from .clocks import ReceiverClock
from .fading import SumOfSinusoidsFading
from .motion import Trajectory
from .pathloss import LinkGeometry
from .propagation import (
    SPEED_OF_LIGHT_M_S,
    amplitude_gain,
    geodetic_to_ecef,
    propagation_delay_s,
    slant_range_m,
    surface_path_m,
)
from .receivers import complex_awgn, quantize, thermal_noise_power_dbm
from .scenario import Scenario
from .shadowing import ShadowingField
from .transmitters import ChannelSpec
from .waveforms import Waveform, cycles_at

__all__ = ["LinkState", "SimChunk", "SimStep", "SimTruth", "Simulator", "enu_rotation"]

_DOMAIN_WAVEFORM = 1
_DOMAIN_NOISE = 2
_DOMAIN_SHADOW = 3
_DOMAIN_FADING = 4
_DOMAIN_CLOCK = 5
_U64 = 1 << 64
_F64 = NDArray[np.float64]


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
        Receiver-reported time of the first sample, ns since the epoch (its clock's
        belief; exact for ideal clocks).
    center_freq_hz : float
        Tuned centre frequency (the channel's nominal frequency), Hz.
    sample_rate_hz : float
        Nominal complex sample rate, Hz.
    iq : numpy.ndarray
        complex64 samples (read-only): power_dBm = 10 log10(mean |iq|^2) + full_scale_dbm.
    full_scale_dbm : float
        0.0 for ideal float samples (+ the receiver's calibration error); the ADC's full
        scale at the antenna port for quantised samples.
    lat_deg, lon_deg, alt_m : float
        Receiver antenna position, WGS84.
    clock : str
        Clock source of ``t_ns``: ``gps``, ``ntp`` or ``free``.
    gain_db : float
        Receiver front-end gain, dB (informational).
    adc_bits : int or None
        ADC resolution if the samples are quantised (then ``iq * 32768`` is integer).
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
    clock: str = "gps"
    gain_db: float = 0.0
    adc_bits: int | None = None


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
        Transmitter position at ``t_ns``, WGS84.
    freq_hz : float
        Actual carrier frequency (nominal + offset), Hz.
    tx_power_dbm : float
        Transmitted power (EIRP), dBm.
    waveform : str
        Waveform kind, e.g. ``"carrier"``, ``"nbfm"``.
    channel_id : str
        Channel label.
    transmitting : bool
        Whether its schedule keys it on at any time during the step.
    velocity_enu_mps : tuple of float
        (east, north, up) velocity at ``t_ns`` in the ENU frame at the transmitter, m/s
        (empty for a static transmitter).
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
    transmitting: bool = True
    velocity_enu_mps: tuple[float, ...] = ()


class SimStep(NamedTuple):
    """Output of one step: every receiver's chunk on every channel, and the truth."""

    chunks: list[SimChunk]
    truths: list[SimTruth]


@dataclass(frozen=True)
class LinkState:
    """Every link's large-scale state at one instant (R receivers x S transmitters).

    Attributes
    ----------
    tx_ecef_m, tx_velocity_ecef_mps : numpy.ndarray
        (S, 3) transmitter positions (m) and velocities (m/s), ECEF.
    distance_m, delay_s, range_rate_mps : numpy.ndarray
        (R, S) slant range d (the chord), delay L / c along the surface path L
        (:func:`~.propagation.surface_path_m`) and range rate d' (m/s, > 0 receding).
    path_loss_db : numpy.ndarray
        (R, S) median loss of the scenario's model, dB.
    shadowing_db : numpy.ndarray
        (R, S) shadowing S (a loss, dB; 0 without shadowing).
    rx_power_dbm : numpy.ndarray
        (R, S) mean received power before fading, P_tx + G_r - L - S, dBm.
    doppler_hz : numpy.ndarray
        (R, S) Doppler shift of the direct path, -f_s d' / c, Hz.
    """

    tx_ecef_m: _F64
    tx_velocity_ecef_mps: _F64
    distance_m: _F64
    delay_s: _F64
    range_rate_mps: _F64
    path_loss_db: _F64
    shadowing_db: _F64
    rx_power_dbm: _F64
    doppler_hz: _F64


def _stable_key(text: str) -> int:
    """64-bit key of a string, stable across runs and platforms (BLAKE2b)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def enu_rotation(lat0_deg: float, lon0_deg: float) -> _F64:
    """Rotation ECEF -> ENU at (lat0, lon0): rows are the east, north, up unit vectors."""
    phi, lam = math.radians(lat0_deg), math.radians(lon0_deg)
    sp, cp, sl, cl = math.sin(phi), math.cos(phi), math.sin(lam), math.cos(lam)
    return np.array([[-sl, cl, 0.0], [-sp * cl, -sp * sl, cp], [cp * cl, cp * sl, sp]])


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
    epoch_ns : int, optional
        When the receivers' sample counters and clocks were set (t_ref of
        :mod:`.clocks`); only drifting clocks and sample-clock errors depend on it.
        Default: the start of the first step simulated.

    Attributes
    ----------
    channels : list of ChannelSpec
        The channels each receiver records.
    distance_m, delay_s, path_loss_db, rx_power_dbm : numpy.ndarray
        (R, S) slant range, propagation delay, large-scale loss (model + shadowing) and
        mean received power of receiver r from transmitter s, in scenario order, at the
        transmitters' nominal positions (:meth:`link_state` gives them at any time).
    noise_power_dbm : numpy.ndarray
        (R,) thermal noise power in one chunk's bandwidth.
    waveforms : dict of str to Waveform
        Runtime waveform of each transmitter.
    frame_lat_deg, frame_lon_deg : float
        Origin of the scenario's ENU frame (mean receiver position, height 0).
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int = 0,
        *,
        noise: bool = True,
        epoch_ns: int | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = int(seed)
        self.noise = noise
        self.epoch_ns = epoch_ns
        self.channels: list[ChannelSpec] = scenario.tuned_channels()
        rxs, txs = scenario.receivers, scenario.transmitters
        fs, n = scenario.sample_rate_hz, scenario.n_samples
        self._fs, self._n = fs, n
        prop = scenario.propagation

        self.rx_ecef_m = geodetic_to_ecef(
            [r.lat_deg for r in rxs], [r.lon_deg for r in rxs], [r.alt_m for r in rxs]
        ).reshape(len(rxs), 3)
        self._rx_alt_m = np.array([r.alt_m for r in rxs], dtype=np.float64)
        self._rx_lat_deg = np.array([r.lat_deg for r in rxs], dtype=np.float64)
        self._rx_lon_deg = np.array([r.lon_deg for r in rxs], dtype=np.float64)
        self._rx_h_m = np.array([r.antenna_height_m for r in rxs], dtype=np.float64)
        self._rx_gain_db = np.array([r.antenna_gain_dbi for r in rxs], dtype=np.float64)
        self.frame_lat_deg = float(np.mean([r.lat_deg for r in rxs])) if rxs else 0.0
        self.frame_lon_deg = float(np.mean([r.lon_deg for r in rxs])) if rxs else 0.0
        self._enu_rot = enu_rotation(self.frame_lat_deg, self.frame_lon_deg)
        self._enu_origin = geodetic_to_ecef(self.frame_lat_deg, self.frame_lon_deg, 0.0)

        self._tx_static_ecef = geodetic_to_ecef(
            [t.lat_deg for t in txs], [t.lon_deg for t in txs], [t.alt_m for t in txs]
        ).reshape(len(txs), 3)
        self._tx_h_m = np.array([t.antenna_height_m for t in txs], dtype=np.float64)
        self._trajectories = [
            Trajectory(t.trajectory) if t.trajectory is not None else None for t in txs
        ]
        self.moving = any(tr is not None for tr in self._trajectories)
        self.tx_freq_hz = np.array([t.freq_hz for t in txs], dtype=np.float64)
        self.tx_power_dbm = np.array([t.tx_power_dbm for t in txs], dtype=np.float64)
        self._schedules = [t.schedule for t in txs]

        self.shadowing: ShadowingField | None = None
        if prop.shadowing is not None and prop.shadowing.sigma_db > 0.0:
            self.shadowing = ShadowingField(
                prop.shadowing,
                [
                    np.random.SeedSequence(
                        self.seed, spawn_key=(_DOMAIN_SHADOW, _stable_key(r.receiver_id))
                    )
                    for r in rxs
                ],
            )
        self.fading: SumOfSinusoidsFading | None = None
        if prop.fading is not None:
            speed = np.array(
                [t.trajectory.speed_mps if t.trajectory is not None else 0.0 for t in txs]
            )
            fd = speed * self.tx_freq_hz / SPEED_OF_LIGHT_M_S + prop.fading.scatter_doppler_hz
            self.fading = SumOfSinusoidsFading(
                prop.fading,
                [
                    np.random.SeedSequence(
                        self.seed,
                        spawn_key=(
                            _DOMAIN_FADING,
                            _stable_key(r.receiver_id),
                            _stable_key(t.source_id),
                        ),
                    )
                    for r in rxs
                    for t in txs
                ],
                np.tile(fd, len(rxs)),
            )

        # static link state (the nominal positions); moving scenes recompute per step
        static = self._link_state_at(self._tx_static_ecef, np.zeros_like(self._tx_static_ecef))
        self._static_state = static
        self.distance_m = static.distance_m
        self.delay_s = static.delay_s
        self.path_loss_db = static.path_loss_db + static.shadowing_db
        self.rx_power_dbm = static.rx_power_dbm
        # sqrt(mW) amplitude at the receiver: 10^(P_rx / 20)
        self._amplitude = amplitude_gain(-self.rx_power_dbm)
        # carrier phase exp(-j 2 pi f_s tau_rs), reduced mod 1 cycle first (f tau ~ 1e5)
        carrier_cycles = np.mod(self.tx_freq_hz[None, :] * self.delay_s, 1.0)
        self._path_phasor = self._amplitude * np.exp(-2j * np.pi * carrier_cycles)

        self.noise_power_dbm = np.array(
            [thermal_noise_power_dbm(fs, r.noise_figure_db) for r in rxs], dtype=np.float64
        )
        self._noise_power_mw = 10.0 ** (self.noise_power_dbm / 10.0)
        self._lo_ppm = np.array([r.lo_ppm for r in rxs], dtype=np.float64)
        self._eps = np.array([r.sample_clock_ppm for r in rxs], dtype=np.float64) * 1e-6
        self._clocks: list[ReceiverClock] | None = None
        self._ideal = not self.moving and not np.any(self._lo_ppm) and not np.any(self._eps)

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
        self._state_cache: tuple[int, LinkState] | None = None

    # ------------------------------------------------------------------ geometry

    def to_enu(self, ecef_m: _F64) -> _F64:
        """ECEF (..., 3) -> the scenario's ENU frame (..., 3), m."""
        return np.asarray((np.asarray(ecef_m) - self._enu_origin) @ self._enu_rot.T)

    def from_enu(self, enu_m: _F64) -> _F64:
        """The scenario's ENU frame (..., 3) -> ECEF (..., 3), m."""
        return np.asarray(np.asarray(enu_m) @ self._enu_rot + self._enu_origin)

    def large_scale_loss_db(
        self,
        tx_ecef_m: _F64,
        receivers: NDArray[np.int64] | None = None,
        freq_hz: _F64 | None = None,
        tx_height_m: _F64 | None = None,
    ) -> tuple[_F64, _F64, _F64]:
        """Median path loss and shadowing of receivers x positions.

        Parameters
        ----------
        tx_ecef_m : numpy.ndarray
            (P, 3) transmitter positions, ECEF m.
        receivers : numpy.ndarray of int, optional
            Receiver indices (default all).
        freq_hz, tx_height_m : numpy.ndarray, optional
            (P,) carrier frequency and antenna height of each position; default the
            scenario's transmitters (then P = S).

        Returns
        -------
        distance_m, path_loss_db, shadowing_db : numpy.ndarray
            Each (R', P).
        """
        idx = np.arange(self.rx_ecef_m.shape[0]) if receivers is None else receivers
        rx = self.rx_ecef_m[idx]
        d = slant_range_m(rx[:, None, :], tx_ecef_m[None, :, :])
        f = self.tx_freq_hz if freq_hz is None else freq_hz
        h_tx = self._tx_h_m if tx_height_m is None else tx_height_m
        enu = self.to_enu(tx_ecef_m)
        tx_alt = ecef_to_geodetic(tx_ecef_m[:, 0], tx_ecef_m[:, 1], tx_ecef_m[:, 2])[2]
        dz = tx_alt[None, :] - self._rx_alt_m[idx][:, None]
        ground = np.sqrt(np.maximum(d * d - dz * dz, 0.0))
        geo = LinkGeometry(
            distance_m=d,
            ground_distance_m=ground,
            h_tx_m=np.broadcast_to(h_tx[None, :], d.shape),
            h_rx_m=np.broadcast_to(self._rx_h_m[idx][:, None], d.shape),
            freq_hz=np.broadcast_to(f[None, :], d.shape),
        )
        loss = self.scenario.propagation.model.loss_db(geo)
        if self.shadowing is None:
            shadow = np.zeros_like(d)
        else:
            shadow = self.shadowing(enu[:, 0], enu[:, 1], idx)
        return d, np.asarray(loss, dtype=np.float64), shadow

    def _link_state_at(self, tx_ecef: _F64, tx_vel: _F64) -> LinkState:
        d, loss, shadow = self.large_scale_loss_db(tx_ecef)
        rx_power = self.tx_power_dbm[None, :] + self._rx_gain_db[:, None] - loss - shadow
        los = tx_ecef[None, :, :] - self.rx_ecef_m[:, None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            rr = np.where(d > 0, np.einsum("rsk,sk->rs", los, tx_vel) / d, 0.0)
        # the delay follows the surface (ground wave), not the chord (surface_path_m)
        tx_lat, tx_lon, tx_alt = ecef_to_geodetic(tx_ecef[:, 0], tx_ecef[:, 1], tx_ecef[:, 2])
        path = surface_path_m(
            self._rx_lat_deg[:, None], self._rx_lon_deg[:, None], self._rx_alt_m[:, None],
            np.asarray(tx_lat)[None, :], np.asarray(tx_lon)[None, :], np.asarray(tx_alt)[None, :],
        )  # fmt: skip
        return LinkState(
            tx_ecef_m=tx_ecef,
            tx_velocity_ecef_mps=tx_vel,
            distance_m=d,
            delay_s=propagation_delay_s(path),
            range_rate_mps=rr,
            path_loss_db=loss,
            shadowing_db=shadow,
            rx_power_dbm=rx_power,
            doppler_hz=-self.tx_freq_hz[None, :] * rr / SPEED_OF_LIGHT_M_S,
        )

    def tx_state(self, t_ns: int) -> tuple[_F64, _F64]:
        """Transmitter ECEF positions and velocities at ``t_ns``, each (S, 3)."""
        pos = self._tx_static_ecef.copy()
        vel = np.zeros_like(pos)
        for s, tr in enumerate(self._trajectories):
            if tr is not None:
                p, v = tr.state(int(t_ns))
                pos[s], vel[s] = p, v
        return pos, vel

    def link_state(self, t_ns: int) -> LinkState:
        """The :class:`LinkState` at ``t_ns`` (cached: static scenes compute it once)."""
        if not self.moving:
            return self._static_state
        if self._state_cache is not None and self._state_cache[0] == int(t_ns):
            return self._state_cache[1]
        st = self._link_state_at(*self.tx_state(int(t_ns)))
        self._state_cache = (int(t_ns), st)
        return st

    # ------------------------------------------------------------------ clocks

    def clocks(self, t_ns: int) -> list[ReceiverClock]:
        """The receivers' clocks (built on first use with t_ref = ``epoch_ns`` or t_ns)."""
        if self._clocks is None:
            t_ref = int(t_ns) if self.epoch_ns is None else int(self.epoch_ns)
            self._clocks = [
                ReceiverClock(
                    r.clock,
                    r.sample_clock_ppm,
                    np.random.SeedSequence(
                        self.seed, spawn_key=(_DOMAIN_CLOCK, _stable_key(r.receiver_id))
                    ),
                    t_ref,
                )
                for r in self.scenario.receivers
            ]
        return self._clocks

    def _true_offsets_s(self, t_ns: int) -> _F64:
        """T_r - t (s): true start of receiver r's chunk relative to its nominal time."""
        if not np.any(self._eps):
            return np.zeros(len(self.scenario.receivers))
        t_ref = self.clocks(t_ns)[0].t_ref_ns
        return -((int(t_ns) - t_ref) * 1e-9) * self._eps / (1.0 + self._eps)

    # ------------------------------------------------------------------ synthesis

    def _noise_rng(self, r: int, c: int, t_ns: int) -> np.random.Generator:
        counter = np.array([0, t_ns % _U64, 0, 0], dtype=np.uint64)
        return np.random.Generator(np.random.Philox(key=self._noise_keys[r][c], counter=counter))

    def _gate(self, s: int, t_ns: int, offsets_s: _F64) -> NDArray[np.float32] | None:
        sched = self._schedules[s]
        if sched is None:
            return None
        return sched.envelope(t_ns, offsets_s).astype(np.float32)

    def channel_block(self, channel_index: int, t_ns: int) -> NDArray[np.complex64]:
        """Samples of every receiver on one channel for the chunk starting at ``t_ns``.

        Parameters
        ----------
        channel_index : int
            Index into :attr:`channels`.
        t_ns : int
            Nominal time of the first sample, ns since the epoch.

        Returns
        -------
        numpy.ndarray
            complex64, shape (R, N), sqrt(mW) at the antenna ports (before calibration
            error and ADC).
        """
        n_rx = len(self.scenario.receivers)
        n, fs = self._n, self._fs
        x = np.zeros((n_rx, n), dtype=np.complex64)
        f_c = self.channels[channel_index].freq_hz
        for s, df, row in self._in_band[channel_index]:
            wf = self._waveform_list[s]
            if self._ideal:
                u = wf.evaluate_grid(t_ns, fs, n, self.delay_s[:, s])
                # exp(j 2 pi df t_n) = exp(j 2 pi frac(df t0)) exp(j 2 pi df n / fs)
                start = np.exp(2j * np.pi * float(cycles_at(df, t_ns)))
                scale = (self._path_phasor[:, s] * start).astype(np.complex64)
                u *= row[None, :]
                u *= scale[:, None]
                tau = self.delay_s[:, s]
                dt = np.zeros(n_rx)
                fs_r = np.full(n_rx, fs)
            else:
                u, tau, dt, fs_r = self._general_link(s, df, f_c, t_ns)
            gate = None
            if self._schedules[s] is not None:
                off = dt[:, None] + np.arange(n)[None, :] / fs_r[:, None] - tau[:, None]
                gate = self._gate(s, t_ns, off)
            if gate is not None:
                u *= gate
            if self.fading is not None:
                links = np.arange(n_rx) * len(self.scenario.transmitters) + s
                h = self._fading_grid(t_ns)[links]
                u *= h
            x += u
        if self.noise:
            for r in range(n_rx):
                rng = self._noise_rng(r, channel_index, t_ns)
                x[r] += complex_awgn(rng, (n,), float(self._noise_power_mw[r]))
        return x

    def _general_link(
        self, s: int, df_nominal: float, f_c: float, t_ns: int
    ) -> tuple[NDArray[np.complex64], _F64, _F64, _F64]:
        """Transmitter s at every receiver with LO/sample-clock errors and motion.

        Phase of the carrier term at t_n = T_r + n / fs_r, T_r = t + dt_r (cycles)::

            (f_s - f_LO,r) T_r - f_s tau_r(t) - f_s (d'_r / c) dt_r + f_bb,r n / fs_r
            f_bb,r = f_s (1 - d'_r / c) - f_LO,r,   f_LO,r = f_c (1 + delta_r)
        """
        st = self.link_state(t_ns)
        n, fs = self._n, self._fs
        f_s = float(self.tx_freq_hz[s])
        tau = st.delay_s[:, s]
        rr_c = st.range_rate_mps[:, s] / SPEED_OF_LIGHT_M_S
        dt = self._true_offsets_s(t_ns)
        fs_r = fs * (1.0 + self._eps)
        wf = self._waveform_list[s]
        if np.all(self._eps == 0.0):
            u = wf.evaluate_grid(t_ns, fs, n, tau - dt)
        else:
            u = np.empty((len(tau), n), dtype=np.complex64)
            for r in range(len(tau)):
                u[r] = wf.evaluate_grid(t_ns, float(fs_r[r]), n, [tau[r] - dt[r]])[0]
        df_lo = df_nominal - f_c * self._lo_ppm * 1e-6  # f_s - f_LO,r
        f_bb = df_lo - f_s * rr_c
        start_cyc = cycles_at(df_lo, t_ns) + df_lo * dt - np.mod(f_s * tau, 1.0) - f_s * rr_c * dt
        nn = np.arange(n, dtype=np.float64)
        cyc = np.mod(start_cyc[:, None] + (f_bb / fs_r)[:, None] * nn[None, :], 1.0)
        ph = (2.0 * np.pi * cyc).astype(np.float32)
        amp = amplitude_gain(-st.rx_power_dbm[:, s]).astype(np.float32)[:, None]
        row = np.empty(ph.shape, dtype=np.complex64)
        row.real = np.cos(ph) * amp
        row.imag = np.sin(ph) * amp
        u *= row
        return u, tau, dt, fs_r

    def _fading_grid(self, t_ns: int) -> NDArray[np.complex64]:
        cache = getattr(self, "_fade_cache", None)
        if cache is not None and cache[0] == t_ns:
            return cache[1]
        assert self.fading is not None
        g = self.fading.grid(t_ns, self._fs, self._n)
        self._fade_cache = (t_ns, g)
        return g

    def step(self, t_ns: int, seq: int = 0) -> SimStep:
        """Simulate the chunks that start at ``t_ns`` (one per receiver per channel).

        Parameters
        ----------
        t_ns : int
            Nominal time of the first sample, ns since the epoch.
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
        clocks = self.clocks(t_ns)
        blocks = [self.channel_block(c, t_ns) for c in range(len(self.channels))]
        reported = [clk.reported_ns(t_ns) for clk in clocks]
        chunks = []
        for r, rx in enumerate(sc.receivers):
            for c, ch in enumerate(self.channels):
                iq = blocks[c][r]
                full_scale = rx.calibration_offset_db
                if rx.adc_bits is not None:
                    fs_ant = rx.adc_full_scale_at_antenna_dbm
                    iq = quantize(
                        (iq * np.float32(10.0 ** (-fs_ant / 20.0))).astype(np.complex64),
                        rx.adc_bits,
                    )
                    full_scale = fs_ant + rx.calibration_offset_db
                iq.flags.writeable = False
                chunks.append(
                    SimChunk(
                        receiver_id=rx.receiver_id,
                        seq=seq,
                        t_ns=reported[r],
                        center_freq_hz=ch.freq_hz,
                        sample_rate_hz=sc.sample_rate_hz,
                        iq=iq,
                        full_scale_dbm=full_scale,
                        lat_deg=rx.lat_deg,
                        lon_deg=rx.lon_deg,
                        alt_m=rx.alt_m,
                        clock=rx.clock.source,
                        gain_db=rx.gain_db,
                        adc_bits=rx.adc_bits,
                    )
                )
        return SimStep(chunks, self.truths(t_ns))

    def truths(self, t_ns: int) -> list[SimTruth]:
        """Ground truth of every transmitter for the step starting at ``t_ns``."""
        sc = self.scenario
        if self.moving:
            pos, vel = self.tx_state(t_ns)
            lat, lon, alt = ecef_to_geodetic(pos[:, 0], pos[:, 1], pos[:, 2])
        out = []
        probe = np.linspace(0.0, sc.chunk_s, 65)[:-1]
        for s, tx in enumerate(sc.transmitters):
            sched = tx.schedule
            on = True if sched is None else bool(np.any(sched.is_on(t_ns, probe)))
            if tx.trajectory is not None:
                where = (float(lat[s]), float(lon[s]), float(alt[s]))
                rot = enu_rotation(where[0], where[1])  # ENU at the transmitter
                v: tuple[float, ...] = tuple(float(x) for x in rot @ vel[s])
            else:
                where, v = (tx.lat_deg, tx.lon_deg, tx.alt_m), ()
            out.append(
                SimTruth(
                    source_id=tx.source_id,
                    t_ns=t_ns,
                    lat_deg=where[0],
                    lon_deg=where[1],
                    alt_m=where[2],
                    freq_hz=tx.freq_hz,
                    tx_power_dbm=tx.tx_power_dbm,
                    waveform=tx.waveform.kind,
                    channel_id=tx.channel_id,
                    transmitting=on,
                    velocity_enu_mps=v,
                )
            )
        return out

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
