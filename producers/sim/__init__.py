"""Simulated receiver network: analytic waveforms, free-space propagation, thermal noise.

Public API::

    from heimdall.producers.sim import Simulator, seed_network

    sim = Simulator(seed_network(), seed=1)
    for chunks, truths in sim.steps(start_t_ns, n_steps=10):
        ...

Modules: :mod:`.propagation` (geodesy, FSPL, delay), :mod:`.waveforms` (analytic
envelopes), :mod:`.receivers` and :mod:`.transmitters` (specs, thermal noise),
:mod:`.scenario` (the pydantic scene, :func:`seed_network`), :mod:`.simulator`.
"""

from .propagation import SPEED_OF_LIGHT_M_S, fspl_db, geodetic_to_ecef, slant_range_m
from .receivers import ReceiverSpec, thermal_noise_power_dbm
from .scenario import SEED_RECEIVERS, Scenario, default_transmitters, seed_network
from .simulator import SimChunk, SimStep, SimTruth, Simulator
from .transmitters import ChannelSpec, TransmitterSpec
from .waveforms import (
    Carrier,
    CarrierSpec,
    NbfmMultisine,
    NbfmSpec,
    Waveform,
    WaveformSpec,
    cycles_at,
)

__all__ = [
    "SEED_RECEIVERS",
    "SPEED_OF_LIGHT_M_S",
    "Carrier",
    "CarrierSpec",
    "ChannelSpec",
    "NbfmMultisine",
    "NbfmSpec",
    "ReceiverSpec",
    "Scenario",
    "SimChunk",
    "SimStep",
    "SimTruth",
    "Simulator",
    "TransmitterSpec",
    "Waveform",
    "WaveformSpec",
    "cycles_at",
    "default_transmitters",
    "fspl_db",
    "geodetic_to_ecef",
    "seed_network",
    "slant_range_m",
    "thermal_noise_power_dbm",
]
