"""From GPS-timed chunks to a TDOA fix, without a broker: block → observation → tdoa / hybrid.

A known emission (complex white noise band-limited to ±1.5 kHz, seeded) reaches four receivers
40–70 km from it with the free-space delays ``τ_i = d_i / c`` (geodesic ``d_i``; at these
ranges the chord and the arc differ by < 1 mm); each receiver adds its own white noise (SNR
10 dB in the band) and cuts its samples into 0.2 s chunks stamped by GPS. The delays are applied
exactly in the frequency domain, ``X_i(f) = S(f) e^{−i2πfτ_i}``.

Checks: each lag ``t_a − t_b`` of the observation equals ``τ_a − τ_b`` within 4 of its sigmas;
the ``tdoa`` fix is within 3σ of the truth in its own covariance (Mahalanobis² ≤ 11.8, the
χ²₂ 0.997 point); the ``hybrid`` fix with powers from a log-distance law is too; and a receiver
whose clock is not GPS never enters a block (its chunks are not snippets).
"""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod

from heimdall.core.errors import EstimationError
from heimdall.core.geodesy import LocalFrame
from heimdall.ml.estimators.ellipse import mahalanobis2
from heimdall.ml.estimators.tdoa import SPEED_OF_LIGHT_M_S
from heimdall.schemas.models import ClockSource, IqChunk, Localization, Position, SampleFormat
from heimdall.streams.features import measure_chunk
from heimdall.streams.localize import localize_hybrid, localize_tdoa
from heimdall.streams.tdoa import TdoaSessions, is_tdoa_snippet, tdoa_observation

FS = 12_000.0
CHUNK = 2_400
SECONDS = 3.0
T0 = 1_700_000_000_000_000_000
TX = (45.30, 7.60)
RX = {
    "rx-n": (45.75, 7.55),
    "rx-e": (45.35, 8.35),
    "rx-s": (44.80, 7.70),
    "rx-w": (45.25, 6.95),
}
_GEOD = Geod(ellps="WGS84")


def _delays() -> dict[str, float]:
    out = {}
    for rid, (lat, lon) in RX.items():
        _, _, d = _GEOD.inv(TX[1], TX[0], lon, lat)
        out[rid] = float(d) / SPEED_OF_LIGHT_M_S
    return out


def _signals(seed: int = 11) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(SECONDS * FS)
    f = np.fft.fftfreq(n, 1.0 / FS)
    spec = rng.normal(size=n) + 1j * rng.normal(size=n)
    spec[np.abs(f) > 1500.0] = 0.0
    out = {}
    for rid, tau in _delays().items():
        x = np.fft.ifft(spec * np.exp(-2j * np.pi * f * tau))
        x = x / np.sqrt(np.mean(np.abs(x) ** 2))
        noise = (rng.normal(size=n) + 1j * rng.normal(size=n)) * np.sqrt(0.1 * 0.25 / 2)
        out[rid] = (0.05 * (x + noise)).astype(np.complex64)
    return out


def _chunks(rid: str, x: np.ndarray, clock: ClockSource, power_db: float) -> list[IqChunk]:
    lat, lon = RX[rid]
    return [
        IqChunk(
            receiver_id=rid,
            seq=k,
            t_ns=T0 + round(k * CHUNK / FS * 1e9),
            clock=clock,
            center_freq_hz=7.1e6,
            sample_rate_hz=FS,
            sample_format=SampleFormat.CF32,
            iq=x[k * CHUNK : (k + 1) * CHUNK],
            full_scale_dbm=power_db,
            position=Position(lat_deg=lat, lon_deg=lon),
        )
        for k in range(x.size // CHUNK)
    ]


def _power_db(rid: str) -> float:
    """Log-distance, n = 2.5: the level each receiver's full scale stands for."""
    _, _, d = _GEOD.inv(TX[1], TX[0], RX[rid][1], RX[rid][0])
    return 40.0 - 25.0 * np.log10(float(d))


@pytest.fixture(scope="module")
def observation():
    sess = TdoaSessions(window_s=30.0, grace_s=0.0)
    signals = _signals()
    gps = [c for rid, x in signals.items()
           for c in _chunks(rid, x, ClockSource.GPS, _power_db(rid))]  # fmt: skip
    ntp = _chunks("rx-n", signals["rx-n"], ClockSource.NTP, 0.0)
    for c in ntp:
        assert not is_tdoa_snippet(c, measure_chunk(c))
    for c in sorted(gps, key=lambda c: c.t_ns):
        m = measure_chunk(c)
        assert is_tdoa_snippet(c, m)
        sess.add(c, m, now_ns=0)
    (block,) = sess.close_ready(now_ns=10**12)  # everyone idle: the block closes
    obs = tdoa_observation(block)
    assert obs is not None
    return obs


def test_a_pure_carrier_gives_no_fix() -> None:
    """A carrier's correlation peaks at zero lag whatever the delay: refused, not a wrong fix."""
    sess = TdoaSessions(window_s=30.0, grace_s=0.0)
    n = np.arange(int(SECONDS * FS))
    rng = np.random.default_rng(3)
    for rid, tau in _delays().items():
        x = np.exp(2j * np.pi * 500.0 * (n / FS - tau))
        x = x + 0.01 * (rng.normal(size=n.size) + 1j * rng.normal(size=n.size))
        for c in _chunks(rid, (0.05 * x).astype(np.complex64), ClockSource.GPS, -20.0):
            sess.add(c, measure_chunk(c), now_ns=0)
    (block,) = sess.close_ready(now_ns=10**12)
    with pytest.raises(EstimationError, match="unresolved"):
        tdoa_observation(block)


def _check_fix(loc: Localization) -> float:
    frame = LocalFrame(loc.position.lat_deg, loc.position.lon_deg)
    e, n, _ = frame.to_enu(TX[0], TX[1], 0.0)
    cov = np.array([[loc.cov_ee_m2, loc.cov_en_m2], [loc.cov_en_m2, loc.cov_nn_m2]])
    return float(mahalanobis2([e, n], cov))


def test_block_lags_match_the_delays(observation) -> None:
    tau = _delays()
    assert {m.receiver_id for m in observation.members} == set(RX)
    assert len(observation.tdoa_pairs) == 6
    for p in observation.tdoa_pairs:
        expected = tau[p.receiver_a] - tau[p.receiver_b]
        assert abs(p.tdoa_s - expected) <= 4.0 * p.sigma_s, (p, expected)
        assert p.quality > 0.5 and p.method == "xcorr"
        assert p.sigma_s < 20e-6  # 3 kHz of band, 3 s at 10 dB: microseconds, not a peak width


def test_tdoa_and_hybrid_fixes_hold_the_truth(observation) -> None:
    fix = localize_tdoa(observation)
    assert fix.method == "tdoa" and fix.n_receivers == 4
    assert _check_fix(fix) <= 11.8
    hybrid = localize_hybrid(observation, fix)
    assert hybrid.method == "hybrid"
    assert _check_fix(hybrid) <= 11.8
