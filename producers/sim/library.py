"""Built-in scenarios and scenario files.

:func:`load_scenario` takes a built-in name or the path of a YAML / JSON file holding a
:class:`~.scenario.Scenario` (the pydantic model is the file format: the same field
names, nested; see ``Scenario.model_json_schema()``). A file that does not validate
raises :class:`heimdall.core.errors.ConfigError` with one line naming every bad field by
its path, e.g. ``transmitters[1].tx_power_dbm: Input should be a valid number``.

Built-ins
---------
``seed-network``
    :func:`~.scenario.seed_network`: the seven seed receivers, two static 2 m
    transmitters, free space, ideal receivers. The end-to-end test's accuracy bound
    relies on exactly this, so it is left as it is.
``seed-network-rich``
    The same receivers with realistic impairments (GPS / NTP / free-running clocks,
    LO and sample-clock errors, 14-bit ADCs, hidden calibration errors), log-distance
    propagation (n = 2.8) with Gudmundson shadowing (6 dB, 500 m) and Rician fading
    (K = 6), the two seed transmitters and a mobile NBFM transmitter driving
    Torino -> Milano at 25 m/s, keyed 4 s every 10 s. Not named ``seed-network``: with
    6 dB shadowing an RSS fix is off by kilometres, beyond the end-to-end test's bound.
``dense-urban``
    20 rooftop receivers (30 m) over 3 x 3 km of central Milano; PMR446 (446.00625 MHz)
    and FRS (462.5625 MHz) handhelds at 0.5 W / 2 W, 1.5 m, one walking; Okumura-Hata
    urban (clipped to its validity ranges: links under 1 km are held at the 1 km loss),
    8 dB / 50 m shadowing, Rayleigh fading with 2 Hz scatter Doppler.
``hf-tdoa``
    Six GPS-disciplined 12 kHz IQ receivers spread over Europe like the KiwiSDR network
    (NL, UK, ES, IT, AT, DE), a 40 m CW beacon and a 2FSK (RTTY-like, 50 Bd,
    +-85 Hz) burst transmitter near Lyon. Ground-wave/sky-wave physics is out of scope:
    the path is log-distance with n = 2 (spherical spreading) and the receivers' noise
    figure of 35 dB stands for HF external (atmospheric / man-made) noise (ITU-R P.372).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from heimdall.core.errors import ConfigError

from .clocks import ClockSpec
from .fading import FadingSpec
from .motion import ScheduleSpec, TrajectorySpec, Waypoint
from .pathloss import HataSpec, LogDistanceSpec
from .receivers import ReceiverSpec
from .scenario import SEED_RECEIVERS, PropagationSpec, Scenario, default_transmitters, seed_network
from .shadowing import ShadowingSpec
from .transmitters import TransmitterSpec
from .waveforms import CwSpec, FskSpec, NbfmSpec

__all__ = [
    "SCENARIOS",
    "dense_urban",
    "format_validation_error",
    "hf_tdoa",
    "load_scenario",
    "seed_network_rich",
]


def seed_network_rich() -> Scenario:
    """The seed network with impairments, shadowing, fading and a mobile (module doc)."""
    clocks = [
        ClockSpec(kind="gps", jitter_ns=30.0),
        ClockSpec(kind="gps", jitter_ns=30.0),
        ClockSpec(kind="ntp", offset_ms=3.0, wander_ms=1.0),
        ClockSpec(kind="gps", jitter_ns=50.0),
        ClockSpec(kind="free", offset_ms=20.0),
        ClockSpec(kind="ntp", offset_ms=5.0, wander_ms=2.0),
        ClockSpec(kind="gps", jitter_ns=30.0),
    ]
    rng = np.random.default_rng(20_261_101)
    receivers = [
        ReceiverSpec(
            receiver_id=rid,
            lat_deg=lat,
            lon_deg=lon,
            alt_m=alt,
            noise_figure_db=6.0,
            antenna_height_m=12.0,
            gain_db=20.0,
            adc_bits=14,
            adc_full_scale_dbm=-40.0,
            lo_ppm=float(rng.uniform(-1.0, 1.0)) if clk.kind != "gps" else 0.0,
            sample_clock_ppm=float(rng.uniform(-2.0, 2.0)) if clk.kind == "free" else 0.0,
            clock=clk,
            calibration_offset_db=float(rng.normal(0.0, 1.0)),
        )
        for (rid, lat, lon, alt), clk in zip(SEED_RECEIVERS, clocks, strict=True)
    ]
    mobile = TransmitterSpec(
        source_id="mobile-145650",
        lat_deg=45.07,
        lon_deg=7.69,
        alt_m=240.0,
        channel_freq_hz=145.65e6,
        freq_offset_hz=60.0,
        tx_power_dbm=37.0,
        antenna_height_m=1.5,
        waveform=NbfmSpec(deviation_hz=2_500.0),
        trajectory=TrajectorySpec(
            waypoints=[
                Waypoint(lat_deg=45.07, lon_deg=7.69, alt_m=240.0),  # Torino
                Waypoint(lat_deg=45.19, lon_deg=8.42, alt_m=130.0),  # Vercelli
                Waypoint(lat_deg=45.45, lon_deg=8.62, alt_m=150.0),  # Novara
                Waypoint(lat_deg=45.48, lon_deg=9.12, alt_m=120.0),  # Milano
            ],
            speed_mps=25.0,
        ),
        schedule=ScheduleSpec(period_s=10.0, on_s=4.0),
    )
    return Scenario(
        name="seed-network-rich",
        description=seed_network_rich.__doc__ or "",
        receivers=receivers,
        transmitters=[*default_transmitters(), mobile],
        propagation=PropagationSpec(
            model=LogDistanceSpec(exponent=2.8, ref_distance_m=1_000.0),
            shadowing=ShadowingSpec(sigma_db=6.0, decorrelation_m=500.0),
            fading=FadingSpec(k_factor=6.0, scatter_doppler_hz=0.5),
        ),
    )


def dense_urban(n_receivers: int = 20) -> Scenario:
    """~20 rooftop receivers over 3 km of Milano, PMR446/FRS handhelds (module doc)."""
    lat0, lon0 = 45.4642, 9.1900
    m_per_deg_lat = 111_132.0
    m_per_deg_lon = 111_320.0 * np.cos(np.radians(lat0))
    rng = np.random.default_rng(446)
    side = int(np.ceil(np.sqrt(n_receivers)))
    grid = (np.arange(side) + 0.5) / side * 3_000.0 - 1_500.0
    east, north = np.meshgrid(grid, grid)
    pts = np.column_stack([east.ravel(), north.ravel()])[:n_receivers]
    pts += rng.uniform(-150.0, 150.0, pts.shape)
    receivers = [
        ReceiverSpec(
            receiver_id=f"mi-{i:02d}",
            lat_deg=lat0 + float(n) / m_per_deg_lat,
            lon_deg=lon0 + float(e) / m_per_deg_lon,
            alt_m=150.0,
            antenna_height_m=30.0,
            noise_figure_db=8.0,
            clock=ClockSpec(kind="gps", jitter_ns=40.0),
        )
        for i, (e, n) in enumerate(pts)
    ]

    def at(e: float, n: float) -> dict[str, float]:
        return {"lat_deg": lat0 + n / m_per_deg_lat, "lon_deg": lon0 + e / m_per_deg_lon}

    transmitters = [
        TransmitterSpec(
            source_id="pmr-ch1",
            **at(-400.0, 300.0),
            alt_m=121.5,
            channel_freq_hz=446.00625e6,
            freq_offset_hz=-180.0,
            tx_power_dbm=27.0,
            waveform=NbfmSpec(deviation_hz=2_500.0),
            schedule=ScheduleSpec(period_s=20.0, on_s=6.0),
        ),
        TransmitterSpec(
            source_id="pmr-ch1-walker",
            **at(600.0, -800.0),
            alt_m=121.5,
            channel_freq_hz=446.00625e6,
            freq_offset_hz=220.0,
            tx_power_dbm=27.0,
            waveform=NbfmSpec(deviation_hz=2_500.0),
            schedule=ScheduleSpec(period_s=20.0, on_s=6.0, offset_s=10.0),
            trajectory=TrajectorySpec(
                waypoints=[
                    Waypoint(**at(600.0, -800.0), alt_m=121.5),
                    Waypoint(**at(600.0, 400.0), alt_m=121.5),
                    Waypoint(**at(-200.0, 400.0), alt_m=121.5),
                ],
                speed_mps=1.4,
            ),
        ),
        TransmitterSpec(
            source_id="frs-ch1",
            **at(900.0, 900.0),
            alt_m=121.5,
            channel_freq_hz=462.5625e6,
            freq_offset_hz=90.0,
            tx_power_dbm=33.0,
            waveform=NbfmSpec(deviation_hz=2_500.0),
        ),
    ]
    return Scenario(
        name="dense-urban",
        description=dense_urban.__doc__ or "",
        receivers=receivers,
        transmitters=transmitters,
        propagation=PropagationSpec(
            model=HataSpec(environment="urban", out_of_range="clip"),
            shadowing=ShadowingSpec(sigma_db=8.0, decorrelation_m=50.0),
            fading=FadingSpec(k_factor=0.0, scatter_doppler_hz=2.0),
        ),
    )


KIWI_LIKE_SITES: tuple[tuple[str, float, float, float], ...] = (
    ("kiwi-twente", 52.239, 6.851, 40.0),
    ("kiwi-london", 51.50, -0.12, 30.0),
    ("kiwi-madrid", 40.42, -3.70, 660.0),
    ("kiwi-bologna", 44.49, 11.34, 60.0),
    ("kiwi-vienna", 48.21, 16.37, 190.0),
    ("kiwi-berlin", 52.52, 13.40, 40.0),
)
"""(receiver_id, lat_deg, lon_deg, alt_m) of the hf-tdoa receivers."""


def hf_tdoa() -> Scenario:
    """Six GPS-disciplined 12 kHz receivers over Europe, HF CW and 2FSK (module doc)."""
    receivers = [
        ReceiverSpec(
            receiver_id=rid,
            lat_deg=lat,
            lon_deg=lon,
            alt_m=alt,
            antenna_height_m=10.0,
            noise_figure_db=35.0,
            clock=ClockSpec(kind="gps", jitter_ns=50.0),
        )
        for rid, lat, lon, alt in KIWI_LIKE_SITES
    ]
    transmitters = [
        TransmitterSpec(
            source_id="hf-cw-7030",
            lat_deg=45.76,
            lon_deg=4.84,
            alt_m=200.0,
            antenna_height_m=15.0,
            channel_freq_hz=7.030e6,
            freq_offset_hz=700.0,
            tx_power_dbm=50.0,
            waveform=CwSpec(message="VVV DE HEIMDALL BEACON", wpm=18.0),
        ),
        TransmitterSpec(
            source_id="hf-fsk-7040",
            lat_deg=45.70,
            lon_deg=4.90,
            alt_m=200.0,
            antenna_height_m=15.0,
            channel_freq_hz=7.040e6,
            freq_offset_hz=-400.0,
            tx_power_dbm=50.0,
            waveform=FskSpec(levels=2, symbol_rate_hz=50.0, deviation_hz=85.0, frame_symbols=50),
            schedule=ScheduleSpec(period_s=30.0, on_s=8.0),
        ),
    ]
    return Scenario(
        name="hf-tdoa",
        description=hf_tdoa.__doc__ or "",
        receivers=receivers,
        transmitters=transmitters,
        propagation=PropagationSpec(model=LogDistanceSpec(exponent=2.0, ref_distance_m=1.0)),
    )


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "seed-network": seed_network,
    "seed-network-rich": seed_network_rich,
    "dense-urban": dense_urban,
    "hf-tdoa": hf_tdoa,
}
"""Built-in scenarios by name."""


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(scenario)"


def format_validation_error(exc: ValidationError) -> str:
    """One line: ``path: message`` for every error, joined by ``; ``."""
    return "; ".join(f"{_loc(tuple(e['loc']))}: {e['msg']}" for e in exc.errors())


def parse_scenario(data: Any, where: str = "scenario") -> Scenario:
    """Validate a decoded scenario document; :class:`ConfigError` on a bad field."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {format_validation_error(exc)}") from None


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a YAML / JSON scenario file.

    Parameters
    ----------
    name_or_path : str or Path
        A key of :data:`SCENARIOS`, or a path ending in ``.yaml``, ``.yml`` or ``.json``.

    Raises
    ------
    ConfigError
        Unknown name, unreadable or unparsable file, or a field that does not validate
        (the message names its path, e.g. ``transmitters[1].tx_power_dbm: ...``).
    """
    key = str(name_or_path)
    if key in SCENARIOS:
        return SCENARIOS[key]()
    path = Path(key)
    if path.suffix.lower() not in (".yaml", ".yml", ".json") or not path.exists():
        raise ConfigError(
            f"unknown scenario {key!r}: not a built-in ({', '.join(sorted(SCENARIOS))}) "
            "nor an existing .yaml/.yml/.json file"
        )
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the scenario: {exc}".splitlines()[0]) from None
    return parse_scenario(data, str(path))
