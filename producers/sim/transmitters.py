"""Simulated transmitters and the channels receivers tune to."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from heimdall.core.channels import channel_id_for

from .motion import ScheduleSpec, TrajectorySpec
from .waveforms import CarrierSpec, WaveformSpec

__all__ = ["ChannelSpec", "TransmitterSpec", "default_channel_id"]


default_channel_id = channel_id_for
"""The channel label of a frequency: :func:`heimdall.core.channels.channel_id_for`."""


class ChannelSpec(BaseModel):
    """A channel: a nominal frequency a receiver tunes its centre frequency to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    freq_hz: float = Field(gt=0.0)
    channel_id: str = ""

    @model_validator(mode="after")
    def _fill_id(self) -> ChannelSpec:
        if not self.channel_id:
            object.__setattr__(self, "channel_id", default_channel_id(self.freq_hz))
        return self


class TransmitterSpec(BaseModel):
    """A simulated transmitter at a fixed position, antenna 0 dBi.

    Attributes
    ----------
    source_id : str
        Stable identifier (key of its ground truth).
    lat_deg, lon_deg, alt_m : float
        WGS84 position of the antenna (alt above the ellipsoid), deg, deg, m.
    channel_freq_hz : float
        Nominal channel frequency, Hz (what receivers tune to).
    freq_offset_hz : float
        Carrier offset from the nominal frequency (oscillator error), Hz.
    tx_power_dbm : float
        Mean transmitted power (EIRP), dBm; 40 dBm = 10 W.
    waveform : WaveformSpec
        What it sends.
    channel_id : str
        Channel label; defaults to :func:`default_channel_id` of ``channel_freq_hz``.
    antenna_height_m : float
        Antenna height above the local ground, m (two-ray and Hata models).
    trajectory : TrajectorySpec or None
        A route; the transmitter then moves (lat/lon/alt default to its first waypoint
        and are only its nominal position).
    schedule : ScheduleSpec or None
        Periodic on/off keying (bursts, duty cycle); ``None`` = always on.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _position_from_route(cls, data: Any) -> Any:
        if isinstance(data, dict) and "lat_deg" not in data and data.get("trajectory"):
            traj = data["trajectory"]
            wps = traj.get("waypoints") if isinstance(traj, dict) else traj.waypoints
            if wps:
                w0 = wps[0]
                get = w0.get if isinstance(w0, dict) else lambda k, d=None: getattr(w0, k, d)
                data = {
                    **data,
                    "lat_deg": get("lat_deg"),
                    "lon_deg": get("lon_deg"),
                    "alt_m": get("alt_m", 0.0),
                }
        return data

    source_id: str = Field(min_length=1)
    lat_deg: float = Field(ge=-90.0, le=90.0)
    lon_deg: float = Field(ge=-180.0, le=180.0)
    alt_m: float = 0.0
    channel_freq_hz: float = Field(gt=0.0)
    freq_offset_hz: float = 0.0
    tx_power_dbm: float = 40.0
    waveform: WaveformSpec = Field(default_factory=CarrierSpec)
    channel_id: str = ""
    antenna_height_m: float = Field(default=1.5, gt=0.0)
    trajectory: TrajectorySpec | None = None
    schedule: ScheduleSpec | None = None

    @model_validator(mode="after")
    def _fill_id(self) -> TransmitterSpec:
        if not self.channel_id:
            object.__setattr__(self, "channel_id", default_channel_id(self.channel_freq_hz))
        return self

    @property
    def freq_hz(self) -> float:
        """Actual carrier frequency, channel_freq_hz + freq_offset_hz, Hz."""
        return self.channel_freq_hz + self.freq_offset_hz

    @property
    def channel(self) -> ChannelSpec:
        """The nominal channel this transmitter uses."""
        return ChannelSpec(freq_hz=self.channel_freq_hz, channel_id=self.channel_id)
