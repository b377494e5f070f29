"""Scenarios: which receivers, which transmitters, how the receivers sample.

A :class:`Scenario` is a pydantic model, so it can later be loaded from YAML/JSON
(``Scenario.model_validate(...)``); :func:`seed_network` builds the built-in one.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .fading import FadingSpec
from .pathloss import FreeSpaceSpec, PathLossSpec
from .receivers import ReceiverSpec
from .shadowing import ShadowingSpec
from .transmitters import ChannelSpec, TransmitterSpec
from .waveforms import CarrierSpec, NbfmSpec

__all__ = [
    "SEED_RECEIVERS",
    "PropagationSpec",
    "Scenario",
    "default_transmitters",
    "seed_network",
]

_NS_PER_S = 1_000_000_000

SEED_RECEIVERS: tuple[tuple[str, float, float, float], ...] = (
    ("aquila-di-giaveno", 45.02, 7.29, 600.0),
    ("montanaro", 45.234, 7.857, 300.0),
    ("torino", 45.044, 7.672, 250.0),
    ("coazze", 45.03, 7.27, 700.0),
    ("passo-del-giovi", 44.561, 8.956, 480.0),
    ("genova", 44.395, 8.956, 100.0),
    ("milano-baggio", 45.478, 9.123, 120.0),
)
"""The seed network: (receiver_id, lat_deg, lon_deg, alt_m)."""


class PropagationSpec(BaseModel):
    """How every link of a scenario propagates.

    Attributes
    ----------
    model : PathLossSpec
        Median path loss (:mod:`.pathloss`); free space by default.
    shadowing : ShadowingSpec or None
        Spatially correlated log-normal shadowing (:mod:`.shadowing`); none by default.
    fading : FadingSpec or None
        Rician / Rayleigh small-scale fading (:mod:`.fading`); none by default.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: PathLossSpec = Field(default_factory=FreeSpaceSpec)
    shadowing: ShadowingSpec | None = None
    fading: FadingSpec | None = None


class Scenario(BaseModel):
    """A simulated RF scene.

    Attributes
    ----------
    receivers : list of ReceiverSpec
        The receiver network (ids unique).
    transmitters : list of TransmitterSpec
        The emitters (ids unique).
    channels : list of ChannelSpec or None
        Channels every receiver tunes to. ``None`` (default): one per distinct
        nominal transmitter frequency, in order of first appearance.
    chunk_s : float
        Duration of one IQ chunk (one simulation step), s.
    sample_rate_hz : float
        Complex sample rate of every receiver, Hz; also the noise bandwidth.
    propagation : PropagationSpec
        Path-loss model, shadowing and fading (free space, none, none by default).
    name, description : str
        Labels.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = ""
    description: str = ""
    receivers: list[ReceiverSpec]
    transmitters: list[TransmitterSpec] = Field(default_factory=list)
    channels: list[ChannelSpec] | None = None
    chunk_s: float = Field(default=0.2, gt=0.0)
    sample_rate_hz: float = Field(default=12_000.0, gt=0.0)
    propagation: PropagationSpec = Field(default_factory=PropagationSpec)

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        rx_ids = [r.receiver_id for r in self.receivers]
        if len(set(rx_ids)) != len(rx_ids):
            raise ValueError("receiver ids must be unique")
        tx_ids = [t.source_id for t in self.transmitters]
        if len(set(tx_ids)) != len(tx_ids):
            raise ValueError("transmitter source ids must be unique")
        n = self.chunk_s * self.sample_rate_hz
        if abs(n - round(n)) > 1e-6 or round(n) < 1:
            raise ValueError("chunk_s * sample_rate_hz must be a positive integer")
        chunk_ns = round(n) * _NS_PER_S / self.sample_rate_hz
        if abs(chunk_ns - round(chunk_ns)) > 1e-3:
            raise ValueError("a chunk must last an integer number of nanoseconds")
        by_freq: dict[float, str] = {}
        for ch in self.tuned_channels():
            if by_freq.setdefault(ch.freq_hz, ch.channel_id) != ch.channel_id:
                raise ValueError(f"two channel ids for {ch.freq_hz} Hz")
        return self

    @property
    def n_samples(self) -> int:
        """Samples per chunk, N = chunk_s * sample_rate_hz."""
        return round(self.chunk_s * self.sample_rate_hz)

    @property
    def chunk_ns(self) -> int:
        """Duration of one chunk, integer ns (exactly N / fs)."""
        return round(self.n_samples * _NS_PER_S / self.sample_rate_hz)

    def tuned_channels(self) -> list[ChannelSpec]:
        """The channels every receiver records, one chunk each per step."""
        if self.channels is not None:
            return list(self.channels)
        seen: dict[float, ChannelSpec] = {}
        for tx in self.transmitters:
            seen.setdefault(tx.channel_freq_hz, tx.channel)
        return list(seen.values())


def default_transmitters(tx_power_dbm: float = 40.0) -> list[TransmitterSpec]:
    """The two default 2 m transmitters, inside the seed network.

    - ``rpt-145500``: a repeater-like unmodulated carrier, 145.500 MHz + 250 Hz,
      near 45.0 N 8.2 E.
    - ``nbfm-145600``: NBFM with band-limited-noise audio (300-3000 Hz, 2.5 kHz
      deviation), 145.600 MHz - 120 Hz, near 44.9 N 7.8 E.
    """
    return [
        TransmitterSpec(
            source_id="rpt-145500",
            lat_deg=45.0,
            lon_deg=8.2,
            alt_m=350.0,
            channel_freq_hz=145.5e6,
            freq_offset_hz=250.0,
            tx_power_dbm=tx_power_dbm,
            waveform=CarrierSpec(),
        ),
        TransmitterSpec(
            source_id="nbfm-145600",
            lat_deg=44.9,
            lon_deg=7.8,
            alt_m=300.0,
            channel_freq_hz=145.6e6,
            freq_offset_hz=-120.0,
            tx_power_dbm=tx_power_dbm,
            waveform=NbfmSpec(deviation_hz=2_500.0, audio_low_hz=300.0, audio_high_hz=3_000.0),
        ),
    ]


def seed_network(
    *,
    noise_figure_db: float = 6.0,
    sample_rate_hz: float = 12_000.0,
    chunk_s: float = 0.2,
    transmitters: list[TransmitterSpec] | None = None,
) -> Scenario:
    """The built-in scenario: the seven seed receivers and :func:`default_transmitters`.

    Parameters
    ----------
    noise_figure_db : float
        Noise figure of every receiver, dB.
    sample_rate_hz : float
        Complex sample rate, Hz.
    chunk_s : float
        Chunk duration, s.
    transmitters : list of TransmitterSpec, optional
        Replace the default transmitters.
    """
    receivers = [
        ReceiverSpec(
            receiver_id=rid,
            lat_deg=lat,
            lon_deg=lon,
            alt_m=alt,
            noise_figure_db=noise_figure_db,
        )
        for rid, lat, lon, alt in SEED_RECEIVERS
    ]
    return Scenario(
        receivers=receivers,
        transmitters=default_transmitters() if transmitters is None else transmitters,
        chunk_s=chunk_s,
        sample_rate_hz=sample_rate_hz,
    )
