"""Simulated receiver networks of any size, built from the seed network (fixed seed)."""

from __future__ import annotations

import numpy as np

from heimdall.producers.sim.receivers import ReceiverSpec
from heimdall.producers.sim.scenario import SEED_RECEIVERS, Scenario, default_transmitters

REGION_LAT_DEG = (44.3, 45.6)
REGION_LON_DEG = (7.2, 9.2)
REGION_ALT_M = (50.0, 800.0)
NETWORK_SEED = 20261101


def receivers(n: int, seed: int = NETWORK_SEED) -> list[ReceiverSpec]:
    """The seven seed receivers, then ``n - 7`` more spread uniformly over the same region.

    The extra receivers depend only on ``seed`` and their index: network 25 is network 7 plus
    18, and network 50 is network 25 plus 25.
    """
    out = [
        ReceiverSpec(receiver_id=rid, lat_deg=lat, lon_deg=lon, alt_m=alt)
        for rid, lat, lon, alt in SEED_RECEIVERS[:n]
    ]
    rng = np.random.default_rng(seed)
    for i in range(max(0, n - len(out))):
        lat, lon, alt = (
            float(rng.uniform(*r)) for r in (REGION_LAT_DEG, REGION_LON_DEG, REGION_ALT_M)
        )
        out.append(
            ReceiverSpec(receiver_id=f"bench-rx-{i:03d}", lat_deg=lat, lon_deg=lon, alt_m=alt)
        )
    return out


def network(n: int) -> Scenario:
    """``n`` receivers and the two default transmitters (two 12 kHz channels, 0.2 s chunks)."""
    return Scenario(receivers=receivers(n), transmitters=default_transmitters())


def describe_region() -> str:
    return (
        f"extra receivers uniform in lat {REGION_LAT_DEG[0]}–{REGION_LAT_DEG[1]}°, "
        f"lon {REGION_LON_DEG[0]}–{REGION_LON_DEG[1]}°, seed {NETWORK_SEED}"
    )
