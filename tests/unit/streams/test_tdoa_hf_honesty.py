"""Honesty of the live TDOA fixes of the ``hf-tdoa`` scenario, offline (issue 11).

The stream's own functions, no broker: :class:`~heimdall.producers.sim.simulator.Simulator`
→ :func:`~heimdall.producers.sim.stream.to_iq_chunk` → :func:`~heimdall.streams.features.
measure_chunks` → :class:`~heimdall.streams.tdoa.TdoaSessions` (10 s blocks) →
:func:`~heimdall.streams.tdoa.tdoa_observation` → :func:`~heimdall.streams.localize.
localize_tdoa`, one 8 s burst of the 2FSK transmitter per seed (seeds 0–119; the CW beacon is
refused as unresolved). The fix error's Mahalanobis distance ``d²`` in the fix's own
covariance is χ²₂ for an honest ellipse: 39.3 % within 1σ (``d² ≤ 1``), 86.5 % within 2σ
(``d² ≤ 4``); required within 5 points (issue 11).

The RMSE is compared with the Cramér–Rao bound of the lag covariance the fix used
(:func:`~heimdall.ml.estimators.tdoa.tdoa_crlb` at the truth with the per-receiver arrival
sigmas of :func:`~heimdall.ml.tdoa.fix.arrival_sigmas`, i.e. of the measured statistical
sigmas, not of the signal's bandwidth and SNR): RMSE 11 m, bound 13 m on these seeds.

History (issue 11). The RMSE was 9× that bound, 148 m, with three causes found one by one:
the simulated 2FSK jumped in phase at every 1 s frame and its schedule keyed a hard gate,
both evaluated at each receiver's delayed sample instants without a band limit (now a
raised-cosine phase glide and key edges, ``FskBursts``, ``ScheduleSpec.envelope``); the
simulator delayed by the chord through the Earth while the fix measures geodesics (~1 km
apart at 1000 km; now ``surface_path_m``); and the band-pass's edge transients where a block
cuts the burst before the far receivers' tail (pair biases to 0.25 µs, the same in every seed;
now dropped, ``lags._filtered``).

Coverage is now conservative, 52.5 % / 92.5 %: the pairs' sub-window sigmas are larger than
their errors (error / sigma has a standard deviation of 0.88 over 300 pairs of 20 seeds),
which is what 1.3× too large a lag variance predicts (P(χ²₂ ≤ 1.3) = 48 %, P(χ²₂ ≤ 5.2) =
93 %). A delete-one jackknife over the windows gives the same sigmas (0.88), so it is not
unequal window information. (At this SNR the unweighted correlation is at the Cramér–Rao
bound of the signal — two receivers of this burst at 30 dB per sample: 0.16 µs measured,
~0.19 µs from Knapp & Carter's bound — so the lag estimate is not the problem; its sub-window
standard error is.) The likely cause: without noise the 16 windows of a 2FSK record scatter
by ~0.15 µs (σ_stat 0.034–0.043 µs) while the full-record lag is within 0.02 µs of the truth,
a window-level error of the signal itself that the standard error counts as noise (the ratio
error / sigma is 0.75 at 30 dB, 0.96 at 10 dB and 1.1 at 0 dB per sample). Until the sigma
separates it, the
coverage test is an expected failure.

Calibration from the fits' redundancy (:class:`~heimdall.ml.tdoa.calibration.PooledVariance`,
one per channel as the stream keeps it, fix after fix): the pooled χ²/ν of the first 40 fixes
is 0.73 ≈ 1/1.14² — the residuals alone see the overstatement the truth shows. With it the
120 fixes cover the truth 39.2 % within 1σ (target met) and 93.3 % within 2σ (target
86.5 ± 5: missed by 1.8 points, 2.2 binomial sd; the uncalibrated 40 seeds gave 52.5 % /
92.5 %); the factor ends at 0.80. The 2σ tail is lighter than χ²₂ says: after scaling, the
errors are not a scaled Gaussian of the stated shape — the window-level self-noise above is
not a common factor.

The hybrid fixes of the same blocks use the TDOA fix's lag covariance (shared receivers,
variance factor): 36.7 % / 92.5 %; with the pairs taken as independent, as before, they
covered 17.5 % / 61.7 % (ellipses ~2× too small).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Geod

from heimdall.core.errors import EstimationError
from heimdall.core.geodesy import AzimuthalFrame
from heimdall.ml.estimators.tdoa import tdoa_crlb
from heimdall.ml.tdoa.calibration import PooledVariance
from heimdall.ml.tdoa.fix import arrival_sigmas, pair_covariance
from heimdall.ml.tdoa.lags import PairLag
from heimdall.producers.sim.library import load_scenario
from heimdall.producers.sim.simulator import Simulator
from heimdall.producers.sim.stream import StreamGain, to_iq_chunk
from heimdall.schemas.models import Localization, Observation
from heimdall.streams.features import measure_chunks
from heimdall.streams.localize import localize_hybrid, localize_tdoa
from heimdall.streams.tdoa import TdoaSessions, is_tdoa_snippet, tdoa_observation

_G = Geod(ellps="WGS84")
#: The 30 s schedule of the 2FSK puts a burst at T0 + 10 s; simulate 9–19 s.
T0_NS = 1_700_000_000_000_000_000
START_NS = T0_NS + 9_000_000_000
SECONDS = 10.0
SEEDS = range(120)


def _fixes(seed: int, variance: PooledVariance) -> list[tuple[Observation, Localization]]:
    sc = load_scenario("hf-tdoa")
    sim = Simulator(sc, seed=seed)
    gain = StreamGain.for_simulator(sim)
    sessions = TdoaSessions(window_s=SECONDS, idle_s=5.0, grace_s=0.0)
    blocks = []
    now = 0
    for k, step in enumerate(sim.steps(START_NS, int(SECONDS / sc.chunk_s))):
        chunks = [to_iq_chunk(c, gain) for c in step.chunks]
        now = k * sc.chunk_ns
        for c, m in zip(chunks, measure_chunks(chunks), strict=True):
            if not isinstance(m, Exception) and is_tdoa_snippet(c, m):
                blocks += sessions.add(c, m, now_ns=now)[0]
    blocks += sessions.close_ready(now_ns=now + 10**12)
    out = []
    for b in blocks:
        if not b.channel_id.startswith("7.04"):
            continue
        try:
            obs = tdoa_observation(b)
        except EstimationError:
            continue
        if obs is not None:
            out.append((obs, localize_tdoa(obs, variance)))
    return out


@pytest.fixture(scope="module")
def results() -> dict[str, np.ndarray]:
    tx = load_scenario("hf-tdoa").transmitters[1]
    d2, err2, crb, d2_hybrid = [], [], [], []
    variance = PooledVariance()  # the stream keeps one per channel, fix after fix
    for seed in SEEDS:
        for obs, loc in _fixes(seed, variance):
            az, _, d = _G.inv(tx.lon_deg, tx.lat_deg, loc.position.lon_deg, loc.position.lat_deg)
            e = np.array([d * math.sin(math.radians(az)), d * math.cos(math.radians(az))])
            cov = np.array([[loc.cov_ee_m2, loc.cov_en_m2], [loc.cov_en_m2, loc.cov_nn_m2]])
            d2.append(float(e @ np.linalg.solve(cov, e)))
            d2_hybrid.append(_d2(tx.lat_deg, tx.lon_deg, localize_hybrid(obs, loc)))
            err2.append(float(e @ e))
            pairs = [
                PairLag(p.receiver_a, p.receiver_b, -p.tdoa_s, p.sigma_s, p.quality,
                        sigma_sys_s=p.sigma_sys_s)
                for p in obs.tdoa_pairs
            ]  # fmt: skip
            toa, widened = arrival_sigmas(pairs)
            names = sorted(toa)
            pos = {m.receiver_id: (m.position.lat_deg, m.position.lon_deg) for m in obs.members}
            east, north = AzimuthalFrame(tx.lat_deg, tx.lon_deg).to_en(
                [pos[n][0] for n in names], [pos[n][1] for n in names]
            )
            bound = tdoa_crlb(
                np.c_[east, north],
                (0.0, 0.0),
                cov_s2=pair_covariance(widened, toa, 0.0),
                pairs=[(names.index(p.b), names.index(p.a)) for p in pairs],
            )
            crb.append(float(np.trace(bound)))
    out = {"d2": np.array(d2), "err2": np.array(err2), "crb": np.array(crb)}
    out["d2_hybrid"] = np.array(d2_hybrid)
    print(
        f"\nhf-tdoa: {len(d2)} fixes, 1σ {np.mean(out['d2'] <= 1):.3f} 2σ "
        f"{np.mean(out['d2'] <= 4):.3f}, RMSE {math.sqrt(out['err2'].mean()):.0f} m, "
        f"CRB {math.sqrt(out['crb'].mean()):.0f} m, variance factor {variance.factor:.3f}"
    )
    h = out["d2_hybrid"]
    print(f"hybrid: 1σ {np.mean(h <= 1):.3f} 2σ {np.mean(h <= 4):.3f}")
    return out


def _d2(lat_deg: float, lon_deg: float, loc: Localization) -> float:
    """Squared Mahalanobis distance of the truth from ``loc`` in its own covariance."""
    az, _, d = _G.inv(lon_deg, lat_deg, loc.position.lon_deg, loc.position.lat_deg)
    e = np.array([d * math.sin(math.radians(az)), d * math.cos(math.radians(az))])
    cov = np.array([[loc.cov_ee_m2, loc.cov_en_m2], [loc.cov_en_m2, loc.cov_nn_m2]])
    return float(e @ np.linalg.solve(cov, e))


@pytest.mark.xfail(
    strict=True,
    reason="2σ over-covers: 39.2 %/93.3 % within 1σ/2σ with the pooled variance factor "
    "(module docstring)",
)
def test_live_fixes_cover_the_truth_as_stated(results: dict[str, np.ndarray]) -> None:
    d2 = results["d2"]
    assert d2.size >= 108  # one fix per burst, a few may be refused
    assert abs(np.mean(d2 <= 1.0) - 0.393) <= 0.05
    assert abs(np.mean(d2 <= 4.0) - 0.865) <= 0.05


def test_rmse_within_a_quarter_of_the_bound(results: dict[str, np.ndarray]) -> None:
    assert math.sqrt(results["err2"].mean()) <= 1.25 * math.sqrt(results["crb"].mean())


@pytest.mark.xfail(
    strict=True,
    reason="2σ over-covers: 36.7 %/92.5 % within 1σ/2σ (was 17.5 %/61.7 % with the pairs taken "
    "as independent and no variance factor)",
)
def test_hybrid_fixes_cover_the_truth_as_stated(results: dict[str, np.ndarray]) -> None:
    """The hybrid fix of the same blocks (RSS of the members + the lags, with the TDOA fix's
    lag covariance: shared receivers and the pooled variance factor)."""
    h = results["d2_hybrid"]
    assert h.size == results["d2"].size
    assert abs(np.mean(h <= 1.0) - 0.393) <= 0.05
    assert abs(np.mean(h <= 4.0) - 0.865) <= 0.05
