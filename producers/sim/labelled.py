"""Fast labelled data: the features stage's measurements without synthesising IQ.

For training and evaluating estimators one needs millions of (measurements, truth)
pairs; synthesising 12 kHz IQ and running the Welch estimator for each is ~1e3 times
too slow. This module draws what :func:`heimdall.streams.dsp.features.measure_channel`
would report for a chunk of N samples, from the same link budget as the
:class:`~.simulator.Simulator` (same path-loss model, same shadowing field, same fading
and the same seeds), fully vectorised.

Measurement model (one receiver, one channel, one chunk)
--------------------------------------------------------
Mean signal power in the channel P = eta P_rx |h|^2 k (eta: the fraction of the
waveform's power inside the integrated channel, computed once per transmitter from its
spectrum; h the fading gain at the chunk's middle; k the on/off key), noise density N0
(k T0 F), integrated width B = |C| fs / L. The Welch estimate integrates the windowed
power with time weights v_n = sum_k w^2(n - k D) (Hann w, hop D); for white noise the
relative variance of a weighted power average is kappa / N with
kappa = N sum v^2 / (sum v)^2. Hence, with z_i independent standard normals::

    N0_hat = N0 exp(s_n z_1),      s_n = 1.25 sqrt(2 / nu) / sqrt(L)   (censored median)
    P_hat  = P + N0 B sqrt(kappa fs / (N B)) z_2      (noise power inside the channel)
               + sqrt(2 P N0 fs kappa / N) z_3        (signal x noise cross term)
               - (N0_hat - N0) B                      (noise-floor subtraction error)
    P_hat  = max(P_hat, 1e-6 N0_hat B)
    power_dbm = 10 log10 P_hat + c,   snr_db = 10 log10(P_hat / (N0_hat B)),
    noise_floor_dbm_hz = 10 log10 N0_hat + c       (c: hidden calibration error)

(nu: equivalent degrees of freedom of the Welch bins, :func:`welch_dof`; the
correlation between the noise-floor estimate and the in-channel noise is neglected).
Optionally the time of arrival at each receiver as its clock reports it:
toa_s = d / c + e_clock (GPS: N(0, jitter^2); NTP: its offset at that time; free: its
initial offset plus eps (t - t_ref)).

Two sampling modes: ``scenario`` (the scenario's transmitters at consecutive chunk
times, moving along their routes: the same draws as the IQ path) and ``uniform``
(random positions over the receivers' area with margin, each sample one of the
scenario's transmitter types, i.i.d. Rician fading).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import signal as sps

from heimdall.core.dsp import welch_dof
from heimdall.core.geodesy import ecef_to_geodetic

from .propagation import SPEED_OF_LIGHT_M_S
from .scenario import Scenario
from .simulator import Simulator

__all__ = ["LabelledBatch", "LabelledGenerator"]

_F64 = NDArray[np.float64]


@dataclass(frozen=True)
class LabelledBatch:
    """P labelled samples over R receivers (arrays (P,) or (P, R)).

    Attributes
    ----------
    t_ns : (P,) int64 chunk start times.
    source_index : (P,) index of the transmitter (type) in the scenario.
    tx_lat_deg, tx_lon_deg, tx_alt_m : (P,) truth position.
    power_dbm, snr_db, noise_floor_dbm_hz : (P, R) measurements as the features stage
        reports them.
    rx_power_dbm : (P, R) true mean received power in the channel (eta P_rx |h|^2 k).
    detected : (P, R) snr_db >= 6.
    toa_s : (P, R) or None, arrival time as reported by each receiver's clock, s after
        the emission.
    """

    t_ns: NDArray[np.int64]
    source_index: NDArray[np.int64]
    tx_lat_deg: _F64
    tx_lon_deg: _F64
    tx_alt_m: _F64
    power_dbm: _F64
    snr_db: _F64
    noise_floor_dbm_hz: _F64
    rx_power_dbm: _F64
    detected: NDArray[np.bool_]
    toa_s: _F64 | None = None

    def __len__(self) -> int:
        return int(self.t_ns.size)


def _welch_constants(n: int, nperseg: int) -> tuple[float, float]:
    """(kappa, nu) of the features stage's Welch estimate of an N-sample chunk."""
    seg = min(nperseg, n)
    hop = seg - seg // 2
    w = np.asarray(sps.get_window("hann", seg), dtype=float)
    n_seg = (n - seg) // hop + 1
    v = np.zeros(n)
    for k in range(n_seg):
        v[k * hop : k * hop + seg] += w * w
    kappa = float(n * np.sum(v * v) / np.sum(v) ** 2)
    return kappa, welch_dof(seg, n_seg)


class LabelledGenerator:
    """Measurement-level samples of a scenario (see the module docstring).

    Parameters
    ----------
    scenario : Scenario
    seed : int
        The same seed as a :class:`Simulator` gives the same shadowing and fading.
    nperseg : int
        Welch segment length of the features stage (default 256).
    channel_bw_frac : float
        Integrated channel width as a fraction of fs (features default 0.8).
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int = 0,
        *,
        nperseg: int = 256,
        channel_bw_frac: float = 0.8,
    ) -> None:
        self.scenario = scenario
        self.sim = Simulator(scenario, seed=seed, noise=False)
        self.seed = int(seed)
        fs, n = scenario.sample_rate_hz, scenario.n_samples
        seg = min(nperseg, n)
        f_bins = np.fft.fftfreq(seg, 1.0 / fs)
        n_ch = int(np.count_nonzero(np.abs(f_bins) <= channel_bw_frac * fs / 2 + 1e-9 * fs))
        self.b_eff_hz = n_ch * fs / seg
        self.kappa, self.nu = _welch_constants(n, seg)
        self.noise_sd_ln = 1.25 * math.sqrt(2.0 / self.nu) / math.sqrt(seg)
        self.n0_mw_hz = 10.0 ** (self.sim.noise_power_dbm / 10.0) / fs  # (R,)
        self.cal_db = np.array([r.calibration_offset_db for r in scenario.receivers])
        self.eta = self._in_channel_fraction(channel_bw_frac)

    def _in_channel_fraction(self, bw_frac: float) -> _F64:
        """eta_s: share of transmitter s's power inside |f - f_c| <= bw_frac fs / 2 of its
        channel, from the FFT of 2 s of its noiseless baseband waveform."""
        sc = self.scenario
        fs = sc.sample_rate_hz
        n = int(2 * fs)
        out = np.ones(len(sc.transmitters))
        t0 = 1_700_000_000_000_000_000
        for s, tx in enumerate(sc.transmitters):
            wf = self.sim.waveforms[tx.source_id]
            u = wf.evaluate(t0, np.arange(n) / fs)
            if not np.any(u):
                continue
            x = u * np.exp(2j * np.pi * tx.freq_offset_hz * np.arange(n) / fs)
            p = np.abs(np.fft.fft(x)) ** 2
            f = np.fft.fftfreq(n, 1.0 / fs)
            out[s] = float(p[np.abs(f) <= bw_frac * fs / 2].sum() / p.sum())
        return out

    def _measure(self, p_mw: _F64, rng: np.random.Generator) -> tuple[_F64, _F64, _F64]:
        """(power_dbm, snr_db, noise_floor_dbm_hz) for true in-channel powers p_mw (P, R)."""
        n, fs, b = self.scenario.n_samples, self.scenario.sample_rate_hz, self.b_eff_hz
        n0 = np.broadcast_to(self.n0_mw_hz, p_mw.shape)
        z = rng.standard_normal((3, *p_mw.shape))
        n0_hat = n0 * np.exp(self.noise_sd_ln * z[0])
        p_hat = (
            p_mw
            + n0 * b * np.sqrt(self.kappa * fs / (n * b)) * z[1]
            + np.sqrt(2.0 * p_mw * n0 * fs * self.kappa / n) * z[2]
            - (n0_hat - n0) * b
        )
        p_hat = np.maximum(p_hat, 1e-6 * n0_hat * b)
        power = 10.0 * np.log10(p_hat) + self.cal_db
        snr = 10.0 * np.log10(p_hat / (n0_hat * b))
        floor = 10.0 * np.log10(n0_hat) + self.cal_db
        return power, snr, floor

    def _toa(self, d_m: _F64, t_ns: NDArray[np.int64], rng: np.random.Generator) -> _F64:
        toa = d_m / SPEED_OF_LIGHT_M_S
        clocks = self.sim.clocks(int(t_ns[0]))
        for r, clk in enumerate(clocks):
            kind = clk.spec.kind
            if kind == "gps":
                toa[:, r] += rng.normal(0.0, clk.spec.jitter_ns * 1e-9, toa.shape[0])
            elif kind == "ntp":
                toa[:, r] += np.array(
                    [clk.ntp_offset_s(int(t)) for t in t_ns[:: max(1, t_ns.size // 64)]]
                ).mean()
            elif kind == "free":
                toa[:, r] += clk.offset0_s + clk.eps * (t_ns - clk.t_ref_ns) * 1e-9
        return toa

    def scenario_samples(
        self, start_t_ns: int, n_steps: int, *, toa: bool = False, rng_seed: int = 0
    ) -> LabelledBatch:
        """The scenario's own transmitters at ``n_steps`` consecutive chunk times: the same
        links, shadowing and fading as ``Simulator(scenario, seed).steps(start_t_ns,
        n_steps)``; P = n_steps x S samples (step-major)."""
        sim, sc = self.sim, self.scenario
        n_tx = len(sc.transmitters)
        t = int(start_t_ns) + np.arange(n_steps, dtype=np.int64) * sc.chunk_ns
        pos = np.repeat(sim._tx_static_ecef[None], n_steps, axis=0)  # (K, S, 3)
        for s, tr in enumerate(sim._trajectories):
            if tr is not None:
                pos[:, s] = tr.state(t)[0]
        flat = pos.reshape(-1, 3)
        freq = np.tile(sim.tx_freq_hz, n_steps)
        h_tx = np.tile(sim._tx_h_m, n_steps)
        d, loss, shadow = sim.large_scale_loss_db(flat, freq_hz=freq, tx_height_m=h_tx)
        p_tx = np.tile(sim.tx_power_dbm + 0.0, n_steps)
        rx_dbm = (p_tx[None, :] + sim._rx_gain_db[:, None] - loss - shadow).T  # (P, R)
        gain = np.ones_like(rx_dbm)
        if sim.fading is not None:
            mid = 0.5 * sc.chunk_s + (t - t[0]) * 1e-9
            h = sim.fading.at(int(t[0]), mid)  # (R*S, K)
            g = np.abs(h.reshape(len(sc.receivers), n_tx, n_steps)) ** 2
            gain = g.transpose(2, 1, 0).reshape(-1, len(sc.receivers))
        key = np.ones(n_steps * n_tx)
        for s, tx in enumerate(sc.transmitters):
            if tx.schedule is not None:
                probe = np.linspace(0.0, sc.chunk_s, 33)[:-1]
                key[s::n_tx] = [tx.schedule.is_on(int(tk), probe).mean() for tk in t]
        eta = np.tile(self.eta, n_steps)
        p_mw = 10.0 ** (rx_dbm / 10.0) * gain * (eta * key)[:, None]
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(7, rng_seed)))
        power, snr, floor = self._measure(p_mw, rng)
        lat, lon, alt = ecef_to_geodetic(flat[:, 0], flat[:, 1], flat[:, 2])
        t_rep = np.repeat(t, n_tx)
        return LabelledBatch(
            t_ns=t_rep,
            source_index=np.tile(np.arange(n_tx), n_steps),
            tx_lat_deg=lat,
            tx_lon_deg=lon,
            tx_alt_m=alt,
            power_dbm=power,
            snr_db=snr,
            noise_floor_dbm_hz=floor,
            rx_power_dbm=10.0 * np.log10(np.maximum(p_mw, 1e-300)),
            detected=snr >= 6.0,
            toa_s=self._toa(d.T.copy(), t_rep, rng) if toa else None,
        )

    def uniform_samples(
        self,
        n: int,
        *,
        margin_m: float = 5_000.0,
        t0_ns: int = 1_760_000_000_000_000_000,
        toa: bool = False,
        rng_seed: int = 0,
        fading: Literal["iid", "none"] = "iid",
    ) -> LabelledBatch:
        """n transmitters at random positions (uniform over the receivers' ENU bounding box
        grown by ``margin_m``, on the ground + the type's antenna height), types drawn
        uniformly from the scenario's transmitters; i.i.d. Rician fading of the scenario's
        K (``fading="iid"``) or none."""
        sim, sc = self.sim, self.scenario
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(8, rng_seed)))
        enu_rx = sim.to_enu(sim.rx_ecef_m)
        lo = enu_rx[:, :2].min(axis=0) - margin_m
        hi = enu_rx[:, :2].max(axis=0) + margin_m
        src = rng.integers(0, len(sc.transmitters), n)
        enu = np.column_stack(
            [rng.uniform(lo[0], hi[0], n), rng.uniform(lo[1], hi[1], n), sim._tx_h_m[src]]
        )
        ecef = sim.from_enu(enu)
        d, loss, shadow = sim.large_scale_loss_db(
            ecef, freq_hz=sim.tx_freq_hz[src], tx_height_m=sim._tx_h_m[src]
        )
        rx_dbm = (sim.tx_power_dbm[src][None, :] + sim._rx_gain_db[:, None] - loss - shadow).T
        gain = np.ones_like(rx_dbm)
        spec = sc.propagation.fading
        if spec is not None and fading == "iid":
            k = spec.k_factor
            z = rng.standard_normal((2, *rx_dbm.shape)) * math.sqrt(0.5)
            h = math.sqrt(k / (k + 1)) + math.sqrt(1 / (k + 1)) * (z[0] + 1j * z[1])
            gain = np.abs(h) ** 2
        p_mw = 10.0 ** (rx_dbm / 10.0) * gain * self.eta[src][:, None]
        power, snr, floor = self._measure(p_mw, rng)
        lat, lon, alt = ecef_to_geodetic(ecef[:, 0], ecef[:, 1], ecef[:, 2])
        t = np.full(n, int(t0_ns), dtype=np.int64)
        return LabelledBatch(
            t_ns=t,
            source_index=src,
            tx_lat_deg=lat,
            tx_lon_deg=lon,
            tx_alt_m=alt,
            power_dbm=power,
            snr_db=snr,
            noise_floor_dbm_hz=floor,
            rx_power_dbm=10.0 * np.log10(np.maximum(p_mw, 1e-300)),
            detected=snr >= 6.0,
            toa_s=self._toa(d.T.copy(), t, rng) if toa else None,
        )
