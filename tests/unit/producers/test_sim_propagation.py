"""Propagation models against theory: two-ray, log-distance, Hata / COST-231, correlated
shadowing (Gudmundson), Rician / Rayleigh fading (Clarke)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from heimdall.producers.sim import (
    ChannelSpec,
    ReceiverSpec,
    Scenario,
    Simulator,
    TransmitterSpec,
)
from heimdall.producers.sim.fading import FadingSpec, SumOfSinusoidsFading, rice_parameters
from heimdall.producers.sim.pathloss import (
    LogDistanceSpec,
    hata_loss_db,
    log_distance_loss_db,
    reflection_coefficient,
    two_ray_asymptote_db,
    two_ray_loss_db,
)
from heimdall.producers.sim.propagation import SPEED_OF_LIGHT_M_S, fspl_db
from heimdall.producers.sim.scenario import PropagationSpec
from heimdall.producers.sim.shadowing import ShadowingSpec

T0_NS = 1_760_000_000_000_000_000


# ----------------------------------------------------------------------------- two-ray


def test_two_ray_tends_to_d4_asymptote() -> None:
    """With Gamma = -1, beyond 10x the crossover 4 pi h_t h_r / lambda the exact two-ray loss
    equals 40 log10 d - 20 log10(h_t h_r) within 0.05 dB, and falls 40 dB per decade."""
    ht, hr, f = 30.0, 2.0, 450e6
    lam = SPEED_OF_LIGHT_M_S / f
    d_cross = 4 * np.pi * ht * hr / lam
    d = np.geomspace(10 * d_cross, 1000 * d_cross, 50)
    exact = two_ray_loss_db(d, ht, hr, f, gamma=-1.0)
    np.testing.assert_allclose(exact, two_ray_asymptote_db(d, ht, hr), atol=0.05)
    slope = np.polyfit(np.log10(d), exact, 1)[0]
    assert slope == pytest.approx(40.0, abs=0.05)


def test_two_ray_near_field_oscillates_about_free_space() -> None:
    """Before the crossover the two rays interfere: |1/r1 - e^{-jk dr}/r2| swings between
    ~0 and ~2/r1, i.e. up to +6.02 dB above free space (constructive) and deep nulls."""
    ht, hr, f = 30.0, 2.0, 450e6
    d = np.linspace(50.0, 800.0, 20_000)
    gain_vs_fs = fspl_db(np.hypot(d, ht - hr), f) - two_ray_loss_db(d, ht, hr, f, gamma=-1.0)
    assert gain_vs_fs.max() == pytest.approx(20 * np.log10(2.0), abs=0.3)
    assert gain_vs_fs.min() < -20.0


def test_reflection_coefficient_limits() -> None:
    """Fresnel coefficients: |Gamma| <= 1, both -> -1 at grazing incidence; Gamma_V has its
    minimum near the pseudo-Brewster angle tan psi_B ~ 1 / sqrt(eps_r) (lossless limit)."""
    sp = np.sin(np.radians(np.linspace(0.001, 90.0, 9000)))
    for pol in ("horizontal", "vertical"):
        g = reflection_coefficient(sp, 100e6, pol, 15.0, 0.005)
        assert np.all(np.abs(g) <= 1.0 + 1e-12)
        assert g[0].real == pytest.approx(-1.0, abs=0.01)
    gv = reflection_coefficient(sp, 1e9, "vertical", 15.0, 0.0)
    psi_min = np.degrees(np.arcsin(sp[np.argmin(np.abs(gv))]))
    assert psi_min == pytest.approx(np.degrees(np.arctan(1 / np.sqrt(15.0))), abs=0.1)


# ----------------------------------------------------------------------------- empirical


def test_log_distance_slope() -> None:
    """L = L(d0) + 10 n log10(d / d0); L(d0) defaults to free space at d0."""
    d = np.array([100.0, 1000.0, 10_000.0])
    loss = log_distance_loss_db(d, 450e6, 3.5, ref_distance_m=100.0)
    assert loss[0] == pytest.approx(float(fspl_db(100.0, 450e6)), abs=1e-9)
    np.testing.assert_allclose(np.diff(loss), 35.0, atol=1e-9)


def test_hata_reference_values() -> None:
    """Hata (1980) at f = 900 MHz, h_b = 50 m, h_m = 1.5 m, d = 5 km, medium city:
    a(h_m) = (1.1 log f - 0.7) h_m - (1.56 log f - 0.8) = 0.0159 dB,
    L = 69.55 + 26.16 log f - 13.82 log h_b - a + (44.9 - 6.55 log h_b) log d = 146.93 dB;
    suburban -2 (log(f/28))^2 - 5.4 = -9.94 dB; open -4.78 (log f)^2 + 18.33 log f - 40.94
    = -28.51 dB. COST-231 at 1800 MHz: 46.3 + 33.9 log f (+3 dB metropolitan).
    Slope: 44.9 - 6.55 log h_b dB/decade."""
    lf = np.log10(900.0)
    a_hm = (1.1 * lf - 0.7) * 1.5 - (1.56 * lf - 0.8)
    assert a_hm == pytest.approx(0.0159, abs=1e-3)
    urban = hata_loss_db(5_000.0, 900e6, 50.0, 1.5)
    assert urban == pytest.approx(146.93, abs=0.02)
    sub = hata_loss_db(5_000.0, 900e6, 50.0, 1.5, "suburban")
    assert urban - sub == pytest.approx(2 * np.log10(900 / 28) ** 2 + 5.4, abs=1e-9)
    assert urban - sub == pytest.approx(9.94, abs=0.01)
    opn = hata_loss_db(5_000.0, 900e6, 50.0, 1.5, "open")
    assert urban - opn == pytest.approx(28.51, abs=0.01)
    lf18 = np.log10(1800.0)
    a18 = (1.1 * lf18 - 0.7) * 1.5 - (1.56 * lf18 - 0.8)
    cost = (
        46.3 + 33.9 * lf18 - 13.82 * np.log10(50) - a18 + (44.9 - 6.55 * np.log10(50)) * np.log10(5)
    )
    assert hata_loss_db(5_000.0, 1.8e9, 50.0, 1.5) == pytest.approx(cost, abs=1e-9)
    assert hata_loss_db(5_000.0, 1.8e9, 50.0, 1.5, city_size="large") == pytest.approx(
        cost + a18 - (3.2 * np.log10(11.75 * 1.5) ** 2 - 4.97) + 3.0, abs=1e-9
    )
    slope = hata_loss_db(10_000.0, 900e6, 50.0, 1.5) - hata_loss_db(1_000.0, 900e6, 50.0, 1.5)
    assert slope == pytest.approx(44.9 - 6.55 * np.log10(50.0), abs=1e-9)


def test_hata_validity_ranges_raise_or_clip() -> None:
    """Outside 150-2000 MHz, h_b 30-200 m, h_m 1-10 m, d 1-20 km: 'raise' names the
    quantity, 'clip' holds the loss at the edge of the range."""
    with pytest.raises(ValueError, match="freq_mhz"):
        hata_loss_db(5_000.0, 100e6, 50.0, 1.5)
    with pytest.raises(ValueError, match="distance_km"):
        hata_loss_db(500.0, 450e6, 50.0, 1.5)
    with pytest.raises(ValueError, match="h_base_m"):
        hata_loss_db(5_000.0, 450e6, 10.0, 1.5)
    clipped = hata_loss_db(500.0, 450e6, 10.0, 1.5, out_of_range="clip")
    assert clipped == pytest.approx(hata_loss_db(1_000.0, 450e6, 30.0, 1.5))


# ----------------------------------------------------------------------------- shadowing


def _shadowed_scene(n_rx: int, sigma_db: float, d_corr_m: float, exponent: float) -> Scenario:
    rng = np.random.default_rng(42)
    receivers = [
        ReceiverSpec(
            receiver_id=f"rx{i:02d}",
            lat_deg=float(45.0 + rng.uniform(-0.1, 0.1)),
            lon_deg=float(7.6 + rng.uniform(-0.14, 0.14)),
        )
        for i in range(n_rx)
    ]
    return Scenario(
        receivers=receivers,
        channels=[ChannelSpec(freq_hz=446e6)],
        propagation=PropagationSpec(
            model=LogDistanceSpec(exponent=exponent, ref_distance_m=100.0),
            shadowing=ShadowingSpec(sigma_db=sigma_db, decorrelation_m=d_corr_m),
        ),
    )


def test_regression_recovers_exponent_sigma_and_decorrelation_distance() -> None:
    """Simulated link losses L = L0 + 10 n log10 d + S, S Gudmundson-correlated:

    1. OLS of L on 10 log10 d over 40 receivers x 1500 random positions recovers n = 3.2
       within 0.1 and sigma = 7 dB (residual std) within 10 %;
    2. pairs of links of one receiver along straight routes, Delta apart, have the
       empirical correlation rho(Delta) = mean(S_a S_b) / sigma^2; a least-squares fit of
       ln rho = -Delta / d_c recovers d_c = 150 m within 10 %.
    """
    n_true, sigma_true, dc_true = 3.2, 7.0, 150.0
    sim = Simulator(_shadowed_scene(40, sigma_true, dc_true, n_true), seed=3)
    rng = np.random.default_rng(7)
    enu = np.column_stack(
        [rng.uniform(-15e3, 15e3, 1500), rng.uniform(-15e3, 15e3, 1500), np.zeros(1500)]
    )
    f = np.full(1500, 446e6)
    h = np.full(1500, 1.5)
    d, loss, shadow = sim.large_scale_loss_db(sim.from_enu(enu), freq_hz=f, tx_height_m=h)
    total = (loss + shadow).ravel()
    x = 10 * np.log10(d.ravel())
    keep = d.ravel() > 100.0
    coef, *_ = np.linalg.lstsq(np.column_stack([np.ones(keep.sum()), x[keep]]), total[keep])
    n_hat = coef[1]
    sigma_hat = float(np.std(total[keep] - coef[0] - coef[1] * x[keep], ddof=2))
    assert n_hat == pytest.approx(n_true, abs=0.1)
    assert sigma_hat == pytest.approx(sigma_true, rel=0.1)

    # routes: 60 per receiver field, 41 points 15 m apart, random start and heading
    n_routes, n_pts, step = 60, 41, 15.0
    start = rng.uniform(-10e3, 10e3, (n_routes, 2))
    head = rng.uniform(0, 2 * np.pi, n_routes)
    s = np.arange(n_pts) * step
    pts = (
        start[:, None, :]
        + s[None, :, None] * np.stack([np.cos(head), np.sin(head)], -1)[:, None, :]
    )
    pts3 = np.concatenate([pts.reshape(-1, 2), np.zeros((n_routes * n_pts, 1))], axis=1)
    d, loss, shadow = sim.large_scale_loss_db(
        sim.from_enu(pts3), freq_hz=np.full(len(pts3), 446e6), tx_height_m=np.full(len(pts3), 1.5)
    )
    resid = (loss + shadow - coef[0] - coef[1] * 10 * np.log10(d)).reshape(-1, n_routes, n_pts)
    resid -= resid.mean()
    lags = np.arange(1, 25)
    rho = np.array([np.mean(resid[:, :, : n_pts - k] * resid[:, :, k:]) for k in lags]) / np.mean(
        resid**2
    )
    use = rho > 0.15
    slope = np.sum(lags[use] * step * np.log(rho[use])) / np.sum((lags[use] * step) ** 2)
    dc_hat = -1.0 / slope
    assert dc_hat == pytest.approx(dc_true, rel=0.1)


def test_shadowing_is_static_for_a_static_link_and_correlated_along_a_route() -> None:
    """Same link -> same shadowing every chunk (and every Simulator with the same seed);
    another seed gives another field; chunks at t and t + 10 s have the same power."""
    sc = _shadowed_scene(5, 8.0, 100.0, 3.0).model_copy(
        update={
            "transmitters": [
                TransmitterSpec(source_id="tx", lat_deg=45.01, lon_deg=7.61, channel_freq_hz=446e6)
            ]
        }
    )
    a, b = Simulator(sc, seed=1, noise=False), Simulator(sc, seed=1, noise=False)
    np.testing.assert_array_equal(a.rx_power_dbm, b.rx_power_dbm)
    assert not np.allclose(a.rx_power_dbm, Simulator(sc, seed=2).rx_power_dbm)
    p0 = [10 * np.log10(np.mean(np.abs(c.iq) ** 2)) for c in a.step(T0_NS).chunks]
    p1 = [10 * np.log10(np.mean(np.abs(c.iq) ** 2)) for c in a.step(T0_NS + 10**10).chunks]
    np.testing.assert_allclose(p0, p1, atol=1e-3)
    np.testing.assert_allclose(p0, a.rx_power_dbm[:, 0], atol=0.05)


# ----------------------------------------------------------------------------- fading


@pytest.mark.parametrize("k_factor", [0.0, 1.0, 5.0])
def test_fading_envelope_is_rice_distributed(k_factor: float) -> None:
    """|h| over 4000 independent links follows Rice(b = sqrt(2K), scale = sqrt(1/(2(K+1))))
    (Rayleigh for K = 0): Kolmogorov-Smirnov p > 0.01, and E|h|^2 = 1 within 5 %."""
    n = 4000
    spec = FadingSpec(k_factor=k_factor, n_sinusoids=32)
    fad = SumOfSinusoidsFading(
        spec, [np.random.SeedSequence(11, spawn_key=(i,)) for i in range(n)], 10.0
    )
    env = np.abs(fad.at(T0_NS, np.zeros(1))[:, 0])
    b, scale = rice_parameters(k_factor)
    ks = stats.kstest(env, stats.rice(b, scale=scale).cdf)
    assert ks.pvalue > 0.01, ks
    assert np.mean(env**2) == pytest.approx(1.0, rel=0.05)
    if k_factor == 0.0:
        assert stats.kstest(env, stats.rayleigh(scale=np.sqrt(0.5)).cdf).pvalue > 0.01


def test_fading_autocorrelation_is_clarke_j0() -> None:
    """Rayleigh sum of sinusoids: E[h(t) h*(t + tau)] = J0(2 pi f_D tau) within 0.05
    (2000 links, f_D = 20 Hz, tau up to 60 ms = 1.2 / f_D)."""
    fd, n = 20.0, 2000
    fad = SumOfSinusoidsFading(
        FadingSpec(n_sinusoids=32),
        [np.random.SeedSequence(5, spawn_key=(i,)) for i in range(n)],
        fd,
    )
    tau = np.linspace(0.0, 0.06, 13)
    h = fad.at(T0_NS, tau)
    acf = np.mean(h * np.conj(h[:, :1]), axis=0).real
    np.testing.assert_allclose(acf, special.j0(2 * np.pi * fd * tau), atol=0.05)


def test_simulator_applies_fading_per_link() -> None:
    """With Rayleigh fading and no noise, a static link's chunk power is P_rx + 20 log10 |h|
    (h constant for a static link), and stays the same on the next chunk."""
    sc = Scenario(
        receivers=[
            ReceiverSpec(receiver_id=f"r{i}", lat_deg=45 + 0.01 * i, lon_deg=7.5) for i in range(6)
        ],
        transmitters=[
            TransmitterSpec(source_id="t", lat_deg=45.05, lon_deg=7.6, channel_freq_hz=446e6)
        ],
        propagation=PropagationSpec(fading=FadingSpec()),
    )
    sim = Simulator(sc, seed=4, noise=False)
    assert sim.fading is not None
    h = sim.fading.at(T0_NS, np.zeros(1))[:, 0]
    for t in (T0_NS, T0_NS + 10**9):
        p = np.array([10 * np.log10(np.mean(np.abs(c.iq) ** 2)) for c in sim.step(t).chunks])
        np.testing.assert_allclose(p, sim.rx_power_dbm[:, 0] + 20 * np.log10(np.abs(h)), atol=0.01)


def test_surface_path_follows_the_earth() -> None:
    """``surface_path_m``: the geodesic, longer than the chord by s³ / (24 R²) (R the Earth's
    radius of curvature, ~6371 km here): ~1.03 km at 1000 km along a meridian, 0.13 km at
    500 km, 8 mm at 20 km; a height difference adds in quadrature."""
    from pyproj import Geod

    from heimdall.producers.sim.propagation import (
        geodetic_to_ecef,
        slant_range_m,
        surface_path_m,
    )

    lat2 = np.array([45.0 + 20e3 / 111_132, 45.0 + 500e3 / 111_132, 45.0 + 1000e3 / 111_132])
    s = np.asarray(Geod(ellps="WGS84").inv(np.full(3, 7.0), np.full(3, 45.0), np.full(3, 7.0),
                                           lat2)[2])  # fmt: skip
    path = surface_path_m(45.0, 7.0, 0.0, lat2, 7.0, 0.0)
    np.testing.assert_allclose(path, s, rtol=1e-12)
    chord = slant_range_m(geodetic_to_ecef(45.0, 7.0, 0.0), geodetic_to_ecef(lat2, 7.0, 0.0))
    # the meridian's radius of curvature at 45–54° N is 6.37–6.38 Mm
    np.testing.assert_allclose(path - chord, s**3 / (24 * 6.375e6**2), rtol=0.01, atol=1e-3)
    assert 7e-3 < (path - chord)[0] < 9e-3
    assert 1.0e3 < (path - chord)[2] < 1.06e3
    up = surface_path_m(45.0, 7.0, 0.0, lat2[0], 7.0, 300.0)
    assert up == pytest.approx(np.hypot(s[0], 300.0), rel=1e-12)
