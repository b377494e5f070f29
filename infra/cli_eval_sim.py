r"""``heimdall eval sim``: estimator RMSE vs the Cramér–Rao bound on simulated scenarios.

Command function, registered by ``infra/cli.py`` as ``heimdall eval sim``. The simulator is
driven here (``infra`` is the roof and may import ``producers``); the statistics live in
:mod:`heimdall.ml.evaluation.crlb_check`, which only sees arrays.

Data
----
Measurements come from the simulator's fast labelled path
(:class:`~heimdall.producers.sim.labelled.LabelledGenerator`), which shares the IQ
simulator's link budget, path-loss model, shadowing field and clock models. The evaluated
transmitters are static, unkeyed carriers placed at fixed positions (a 3 × 3 grid over the
central 60 % of the receivers' bounding box by default, or the scenario's own transmitters).

Independence across trials
--------------------------
The simulator's shadowing is a Gudmundson field per receiver, :math:`S_r(x)`, a function of
the transmitter position x with correlation :math:`e^{-|\Delta x|/d_c}`; different receivers'
fields are independent (no site-to-site cross-correlation). For a fixed seed a static link's
shadowing is therefore one fixed number — a bias, not noise. The CRLB describes the spread
over independent realisations, so RSS trial t uses its own simulator seed ``seed + t``: at a
fixed position the per-receiver shadowing values are then i.i.d. :math:`\mathcal N(0,\sigma^2)`
across receivers and trials, as :func:`~heimdall.ml.estimators.rss.rss_crlb` assumes. (With a
single seed, positions further apart than a few :math:`d_c` would also give nearly independent
draws; the grid positions here are 500–1000 m apart against :math:`d_c` = 50 m.)
Small-scale fading is removed for RSS (it is not in the bound; a channel estimate averages
it out over time). GPS clock jitter in the labelled path is drawn independently per chunk,
so TDOA trials are consecutive chunks of one generator.

Scenarios
---------
``urban-rss`` (built here, RSS)
    The ``dense-urban`` receivers (20 rooftop sites, 30 m masts, on a jittered 600 m grid
    over 3.0 × 2.4 km of Milano) with a log-distance model whose exponent is the
    Okumura–Hata urban slope for 30 m base antennas,
    :math:`n = (44.9 - 6.55 \log_{10} 30)/10 = 3.52`, anchored at Hata's 1 km loss
    (446 MHz, 1.5 m mobile), Gudmundson shadowing σ = 8 dB, :math:`d_c` = 50 m, no fading;
    5 W carriers at 1.5 m. (``dense-urban`` itself uses Hata clipped at 1 km: inside a 3 km
    network most links are shorter than 1 km and have a constant loss, so no log-distance
    bound applies to it.)
``urban-rss-2db``
    The same with σ = 2 dB: the small-noise regime, where the ML estimator is efficient.
``urban-rss-49rx``
    σ = 8 dB with 49 receivers (a jittered 7 × 7 grid, 430 m spacing, over the same 3 km).
``hf-tdoa`` (TDOA)
    Six GPS-disciplined receivers across Europe (50 ns jitter); the built-in scenario.

Any built-in scenario or scenario file of :func:`~heimdall.producers.sim.library.load_scenario`
is accepted too (RSS needs a log-distance model; TDOA needs GPS clocks on every receiver).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer

from heimdall.core.errors import ConfigError
from heimdall.core.geodesy import ecef_to_geodetic
from heimdall.ml.evaluation.crlb_check import CrlbReport, check_rss, check_tdoa
from heimdall.producers.sim.labelled import LabelledBatch, LabelledGenerator
from heimdall.producers.sim.library import dense_urban, load_scenario
from heimdall.producers.sim.pathloss import LogDistanceSpec, hata_loss_db
from heimdall.producers.sim.propagation import SPEED_OF_LIGHT_M_S, geodetic_to_ecef
from heimdall.producers.sim.scenario import PropagationSpec, Scenario
from heimdall.producers.sim.shadowing import ShadowingSpec
from heimdall.producers.sim.simulator import Simulator
from heimdall.producers.sim.transmitters import TransmitterSpec
from heimdall.producers.sim.waveforms import CarrierSpec

__all__ = [
    "EVAL_SCENARIOS",
    "eval_sim",
    "evaluate_sim",
    "grid_positions",
    "place_transmitters",
    "simulate_rss",
    "simulate_tdoa",
    "urban_rss_scenario",
]

Method = Literal["rss", "tdoa"]
Positions = Literal["grid", "scenario"]
_T0_NS = 1_760_000_000_000_000_000
_HATA_FREQ_HZ = 446.00625e6
_HATA_H_BASE_M = 30.0
_HATA_H_MOBILE_M = 1.5


def hata_urban_exponent(h_base_m: float = _HATA_H_BASE_M) -> float:
    """Okumura–Hata urban slope as a path-loss exponent: ``(44.9 − 6.55 log10 h_b) / 10``."""
    return (44.9 - 6.55 * math.log10(h_base_m)) / 10.0


def urban_rss_scenario(
    sigma_db: float = 8.0,
    decorrelation_m: float = 50.0,
    *,
    n_receivers: int = 20,
    tx_power_dbm: float = 37.0,
) -> Scenario:
    """The ``urban-rss`` scenario (module docstring): dense-urban receivers, Hata-slope
    log-distance, Gudmundson shadowing (σ, d_c), no fading, no transmitters of its own."""
    base = dense_urban(n_receivers)
    exponent = hata_urban_exponent()
    l_1km = float(hata_loss_db(1_000.0, _HATA_FREQ_HZ, _HATA_H_BASE_M, _HATA_H_MOBILE_M, "urban"))
    proto = TransmitterSpec(
        source_id="eval-proto",
        lat_deg=base.receivers[0].lat_deg,
        lon_deg=base.receivers[0].lon_deg,
        alt_m=121.5,
        antenna_height_m=_HATA_H_MOBILE_M,
        channel_freq_hz=_HATA_FREQ_HZ,
        tx_power_dbm=tx_power_dbm,
        waveform=CarrierSpec(),
    )
    return Scenario(
        name="urban-rss"
        + (f"-{sigma_db:g}db" if sigma_db != 8.0 else "")
        + (f"-{n_receivers}rx" if n_receivers != 20 else ""),
        description=(
            f"dense-urban receivers; log-distance n = {exponent:.3f} (Hata urban slope, "
            f"h_b = 30 m), L(1 km) = {l_1km:.1f} dB; shadowing {sigma_db:g} dB / "
            f"{decorrelation_m:g} m; no fading"
        ),
        receivers=base.receivers,
        transmitters=[proto],
        propagation=PropagationSpec(
            model=LogDistanceSpec(exponent=exponent, ref_distance_m=1_000.0, ref_loss_db=l_1km),
            shadowing=ShadowingSpec(sigma_db=sigma_db, decorrelation_m=decorrelation_m),
        ),
    )


EVAL_SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "urban-rss": urban_rss_scenario,
    "urban-rss-2db": lambda: urban_rss_scenario(sigma_db=2.0),
    "urban-rss-49rx": lambda: urban_rss_scenario(n_receivers=49),
}
"""Scenarios built for this evaluation (besides :func:`load_scenario`'s)."""


def _load(name: str) -> Scenario:
    return EVAL_SCENARIOS[name]() if name in EVAL_SCENARIOS else load_scenario(name)


def grid_positions(scenario: Scenario, per_side: int = 3, frac: float = 0.6) -> np.ndarray:
    """``per_side``² (east, north) points on a grid over the central ``frac`` of the
    receivers' ENU bounding box (the scenario's frame), m, shape (K, 2)."""
    sim = Simulator(scenario.model_copy(update={"transmitters": []}), noise=False)
    rx = sim.to_enu(sim.rx_ecef_m)[:, :2]
    lo, hi = rx.min(axis=0), rx.max(axis=0)
    mid, half = 0.5 * (lo + hi), 0.5 * frac * (hi - lo)
    u = np.linspace(-1.0, 1.0, per_side) if per_side > 1 else np.zeros(1)
    ge, gn = np.meshgrid(mid[0] + u * half[0], mid[1] + u * half[1])
    return np.column_stack([ge.ravel(), gn.ravel()])


def place_transmitters(scenario: Scenario, positions_en: np.ndarray) -> Scenario:
    """The scenario with its transmitters replaced by static, unkeyed copies of its first
    transmitter (its frequency, power, antenna height and altitude) at the given (east,
    north) positions of the scenario's ENU frame."""
    if not scenario.transmitters:
        raise ConfigError(f"scenario {scenario.name!r} has no transmitter to copy")
    proto = scenario.transmitters[0]
    sim = Simulator(scenario.model_copy(update={"transmitters": []}), noise=False)
    pos = np.asarray(positions_en, dtype=float).reshape(-1, 2)
    ecef = sim.from_enu(np.column_stack([pos, np.zeros(len(pos))]))
    lat, lon, _ = ecef_to_geodetic(ecef[:, 0], ecef[:, 1], ecef[:, 2])
    txs = [
        proto.model_copy(
            update={
                "source_id": f"eval-{k:02d}",
                "lat_deg": float(lat[k]),
                "lon_deg": float(lon[k]),
                "trajectory": None,
                "schedule": None,
                "waveform": CarrierSpec(),
            }
        )
        for k in range(len(pos))
    ]
    return scenario.model_copy(update={"transmitters": txs})


def _static(scenario: Scenario) -> Scenario:
    """The scenario's transmitters at their start positions, static and unkeyed."""
    txs = [
        t.model_copy(update={"trajectory": None, "schedule": None, "waveform": CarrierSpec()})
        for t in scenario.transmitters
    ]
    return scenario.model_copy(update={"transmitters": txs})


def _enu(gen: LabelledGenerator, batch: LabelledBatch) -> tuple[np.ndarray, np.ndarray]:
    """Receiver and transmitter antenna positions in the scenario's ENU frame, m."""
    sim = gen.sim
    tx_ecef = geodetic_to_ecef(batch.tx_lat_deg, batch.tx_lon_deg, batch.tx_alt_m)
    return sim.to_enu(sim.rx_ecef_m), sim.to_enu(tx_ecef)


def simulate_rss(
    scenario: Scenario, trials: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Received powers of ``trials`` independent shadowing realisations (seeds ``seed + t``).

    Returns
    -------
    rx_enu : (m, 3), tx_enu : (K, 3), power_dbm : (trials, K, m), measurement_sd_db : float
        The last is the RMS of (reported − true mean) power: the features-stage
        measurement noise, which the bound (shadowing only) leaves out.
    """
    scn = scenario.model_copy(
        update={"propagation": scenario.propagation.model_copy(update={"fading": None})}
    )
    powers, meas = [], []
    rx = tx = np.empty((0, 3))
    for t in range(trials):
        gen = LabelledGenerator(scn, seed=seed + t)
        batch = gen.scenario_samples(_T0_NS, 1)
        if t == 0:
            rx, tx = _enu(gen, batch)
        powers.append(batch.power_dbm)
        meas.append(batch.power_dbm - batch.rx_power_dbm - gen.cal_db)
    m = np.asarray(meas)
    return rx, tx, np.asarray(powers), float(np.sqrt(np.mean(m * m)))


def simulate_tdoa(
    scenario: Scenario, trials: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrival times (as each GPS clock reports them) of ``trials`` consecutive chunks.

    Returns
    -------
    rx_enu : (m, 3), tx_enu : (K, 3), toa_s : (trials, K, m), sigma_s : (m,)
    """
    bad = [r.receiver_id for r in scenario.receivers if r.clock.kind != "gps"]
    if bad or any(r.clock.jitter_ns <= 0.0 for r in scenario.receivers):
        raise ConfigError(
            "the TDOA bound needs a GPS clock with jitter > 0 on every receiver; "
            f"not GPS: {', '.join(bad) or 'none'}"
        )
    gen = LabelledGenerator(scenario, seed=seed)
    batch = gen.scenario_samples(_T0_NS, trials, toa=True)
    assert batch.toa_s is not None
    n_tx = len(scenario.transmitters)
    rx, tx = _enu(gen, batch)
    sigma = np.array([r.clock.jitter_ns * 1e-9 for r in scenario.receivers])
    toa = batch.toa_s.reshape(trials, n_tx, -1)
    return rx, tx[:n_tx], toa, sigma


def evaluate_sim(
    scenario: str | Scenario,
    method: Method,
    trials: int = 200,
    *,
    seed: int = 0,
    positions: Positions = "grid",
    grid_per_side: int = 3,
) -> CrlbReport:
    """Monte-Carlo RMSE of the RSS or TDOA estimator vs the CRLB on a simulated scenario.

    Parameters
    ----------
    scenario : str or Scenario
        A name of :data:`EVAL_SCENARIOS`, a built-in scenario or file of
        :func:`load_scenario`, or a scenario object.
    method : {"rss", "tdoa"}
    trials : int
        Independent trials per position (RSS: independent shadowing fields; TDOA:
        independent clock jitter).
    seed : int
        First simulator seed.
    positions : {"grid", "scenario"}
        Transmitter positions: :func:`grid_positions` (``grid_per_side``²) or the
        scenario's own transmitters (start positions, made static).

    Returns
    -------
    CrlbReport
        See :mod:`heimdall.ml.evaluation.crlb_check`; ``geometry`` states the geometry
        and the noise model.
    """
    scn = _load(scenario) if isinstance(scenario, str) else scenario
    if trials < 2:
        raise ConfigError("at least 2 trials are needed")
    placed = (
        place_transmitters(scn, grid_positions(scn, grid_per_side))
        if positions == "grid"
        else _static(scn)
    )
    if method == "rss":
        model = scn.propagation.model
        shadow = scn.propagation.shadowing
        if not isinstance(model, LogDistanceSpec) or shadow is None or shadow.sigma_db <= 0:
            raise ConfigError(
                f"scenario {scn.name!r}: the RSS bound needs log-distance path loss with "
                "shadowing (try urban-rss)"
            )
        rx, tx, power, meas_sd = simulate_rss(placed, trials, seed)
        spacing = np.linalg.norm(tx[:, None, :2] - tx[None, :, :2], axis=-1)
        np.fill_diagonal(spacing, np.inf)
        cal = max((abs(r.calibration_offset_db) for r in scn.receivers), default=0.0)
        text = (
            f"Log-distance n = {model.exponent:.3f}, Gudmundson shadowing σ = "
            f"{shadow.sigma_db:g} dB, d_c = {shadow.decorrelation_m:g} m (independent field per "
            f"receiver; a new field per trial, seeds {seed}..{seed + trials - 1}); fading off; "
            f"measurement noise {meas_sd:.3f} dB RMS (not in the bound)"
            + (f"; calibration errors up to {cal:.2f} dB (a bias)" if cal else "")
            + "."
        )
        details: dict[str, Any] = {
            "path_loss_exponent": model.exponent,
            "sigma_db": shadow.sigma_db,
            "decorrelation_m": shadow.decorrelation_m,
            "min_tx_spacing_m": float(spacing.min()) if len(tx) > 1 else None,
            "measurement_sd_db": meas_sd,
            "max_calibration_offset_db": cal,
            "trials": trials,
            "seed": seed,
        }
        return check_rss(
            rx,
            tx,
            power,
            exponent=model.exponent,
            sigma_db=shadow.sigma_db,
            scenario=scn.name,
            model=text,
            details=details,
        )
    rx, tx, toa, sigma = simulate_tdoa(placed, trials, seed)
    text = (
        f"GPS clocks, timing jitter {', '.join(f'{s * 1e9:g}' for s in sorted(set(sigma)))} ns "
        f"(independent per receiver and chunk); TDOAs against receiver 0 "
        f"({scn.receivers[0].receiver_id}); transmitter height known."
    )
    details = {"sigma_ns": [float(s * 1e9) for s in sigma], "trials": trials, "seed": seed}
    return check_tdoa(
        rx,
        tx,
        toa,
        sigma_s=sigma,
        speed_m_s=SPEED_OF_LIGHT_M_S,
        scenario=scn.name,
        model=text,
        details=details,
    )


def eval_sim(
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help="urban-rss[-2db|-49rx], a built-in scenario (hf-tdoa, …) or a scenario file",
        ),
    ] = "urban-rss",
    method: Annotated[str, typer.Option("--method", help="rss or tdoa")] = "rss",
    trials: Annotated[int, typer.Option("--trials", help="trials per position", min=2)] = 200,
    seed: Annotated[int, typer.Option("--seed", help="first simulator seed")] = 0,
    positions: Annotated[
        str, typer.Option("--positions", help="grid (3×3 inside the network) or scenario")
    ] = "grid",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the report as JSON here")
    ] = None,
) -> None:
    """Estimator RMSE vs the Cramér–Rao bound on a simulated scenario (target ≤ 1.25×)."""
    if method not in ("rss", "tdoa"):
        raise typer.BadParameter(f"--method {method!r}: rss or tdoa")
    if positions not in ("grid", "scenario"):
        raise typer.BadParameter(f"--positions {positions!r}: grid or scenario")
    meth: Method = "rss" if method == "rss" else "tdoa"
    pos: Positions = "grid" if positions == "grid" else "scenario"
    try:
        report = evaluate_sim(scenario, meth, trials, seed=seed, positions=pos)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(report.summary())
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2))
    if not report.passed:
        raise typer.Exit(1)
