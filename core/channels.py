"""Channel naming shared by the adapters (which label truth) and the streams (which measure)."""

from __future__ import annotations


def channel_id_for(freq_hz: float) -> str:
    """A stable, readable channel name at 100 Hz resolution: ``145.5000MHz``."""
    return f"{freq_hz / 1e6:.4f}MHz"
