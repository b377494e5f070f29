"""Valid wire dicts (avsc field names) of the four stored event types, for sink tests."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

T0_NS = 1_800_000_000_000_000_000  # 2027-01-15


def position(lat: float = 45.0, lon: float = 7.0, alt: float = 250.0) -> dict[str, float]:
    return {"lat_deg": lat, "lon_deg": lon, "alt_m": alt}


def measurement(i: int = 0, **over: Any) -> dict[str, Any]:
    w: dict[str, Any] = {
        "event_id": str(uuid4()),
        "chunk_id": str(uuid4()),
        "receiver_id": f"rx{i % 5}",
        "t_ns": T0_NS + i * 50_000_000,
        "duration_s": 0.05,
        "clock": "gps",
        "position": position(45.0 + i * 1e-4, 7.0),
        "channel_id": "145.500MHz",
        "channel_freq_hz": 145.5e6,
        "channel_bw_hz": 12.5e3,
        "power_dbm": -90.0 - i % 7,
        "noise_floor_dbm_hz": -170.0,
        "snr_db": 20.0,
        "freq_offset_hz": 12.5,
        "occupied_bw_hz": 8e3,
        "detected": True,
        "psd_dbm_hz": [-170.0, -160.5, -150.25],
        "psd_bin_hz": 100.0,
        "chunk_published_ns": T0_NS + 1,
        "published_ns": T0_NS + 2,
    }
    w.update(over)
    return w


def member(rx: str, lat: float, lon: float, n: int = 2) -> dict[str, Any]:
    return {
        "receiver_id": rx,
        "position": position(lat, lon, 100.0),
        "clock": "ntp",
        "t_ns": T0_NS,
        "power_dbm": -95.5,
        "power_std_db": 1.5,
        "snr_db": 15.0,
        "noise_floor_dbm_hz": -171.0,
        "freq_offset_hz": -3.0,
        "n_measurements": n,
        "measurement_ids": [str(uuid4()) for _ in range(n)],
    }


def observation(i: int = 0, **over: Any) -> dict[str, Any]:
    w: dict[str, Any] = {
        "event_id": str(uuid4()),
        "channel_id": "145.500MHz",
        "channel_freq_hz": 145.5e6,
        "window_start_ns": T0_NS + i * 1_000_000_000,
        "window_end_ns": T0_NS + (i + 1) * 1_000_000_000,
        "members": [member("rx0", 45.0, 7.0, 1), member("rx1", 45.1, 7.1, 2),
                    member("rx2", 45.2, 7.0, 3)],
        "tdoa_pairs": [{"receiver_a": "rx0", "receiver_b": "rx1", "tdoa_s": 1.5e-6,
                        "sigma_s": 5e-8}],
        "latest_chunk_published_ns": T0_NS + 5,
        "upstream_latency_s": 0.02,
        "published_ns": T0_NS + 6,
    }  # fmt: skip
    w.update(over)
    return w


def localization(i: int = 0, **over: Any) -> dict[str, Any]:
    w: dict[str, Any] = {
        "event_id": str(uuid4()),
        "observation_id": str(uuid4()),
        "channel_id": "145.500MHz",
        "t_ns": T0_NS + i * 1_000_000_000,
        "position": position(45.05, 7.05, 0.0),
        "cov_ee_m2": 900.0,
        "cov_en_m2": 50.0,
        "cov_nn_m2": 1600.0,
        "method": "rss-ml",
        "model_version": None,
        "n_receivers": 4,
        "converged": True,
        "params": {"tx_power_dbm_1m": -20.0, "path_loss_exponent": 2.8},
        "processing_latency_s": 0.012,
        "published_ns": T0_NS + 7,
    }
    w.update(over)
    return w


def truth(i: int = 0, **over: Any) -> dict[str, Any]:
    w: dict[str, Any] = {
        "event_id": str(uuid4()),
        "source_id": "tx1",
        "t_ns": T0_NS + i * 1_000_000_000,
        "position": position(45.05, 7.05, 10.0),
        "channel_id": "145.500MHz",
        "freq_hz": 145.5e6,
        "tx_power_dbm": 37.0,
        "waveform": "nfm",
        "transmitting": True,
        "velocity_enu_mps": [1.0, 0.5, 0.0],
    }
    w.update(over)
    return w


#: topic role -> (schema full name, builder)
BUILDERS = {
    "features": ("heimdall.v1.Measurement", measurement),
    "observations": ("heimdall.v1.Observation", observation),
    "localizations": ("heimdall.v1.Localization", localization),
    "truth": ("heimdall.v1.Truth", truth),
}
