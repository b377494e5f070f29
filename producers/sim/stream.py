"""The simulator as a receiver adapter: scenario steps → ``rf.iq``, ``rf.truth``, ``rf.receivers``.

Samples go on the wire as ci16, as a real 16-bit receiver would deliver them: each
(receiver, channel) stream gets a fixed gain chosen on its first chunk so that the peak sits
``headroom_db`` below full scale, and ``full_scale_dbm`` carries that gain so that the
features stage measures powers at the antenna port.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from heimdall.core.settings import HeimdallSettings
from heimdall.producers.publisher import Publisher
from heimdall.producers.sim.library import SCENARIOS, load_scenario
from heimdall.producers.sim.scenario import Scenario
from heimdall.producers.sim.simulator import SimChunk, SimTruth, Simulator
from heimdall.schemas.models import (
    ClockSource,
    IqChunk,
    Position,
    ReceiverState,
    ReceiverStatus,
    SampleFormat,
    Truth,
)

log = logging.getLogger(__name__)

__all__ = [
    "SCENARIOS",
    "StreamGain",
    "load_scenario",
    "receiver_statuses",
    "run_simulation",
    "to_iq_chunk",
    "to_truth",
]


@dataclass
class StreamGain:
    """Fixed per-stream gain, as a receiver with a fixed gain setting has.

    Full scale = ``headroom_db`` above the larger of the first chunk's peak and
    ``min_peak_dbm[receiver_id]``, the strongest signal the receiver is expected to see
    (:meth:`for_simulator`). The first chunk alone is not enough: a burst that starts after
    it (a scheduled transmitter, a repeater) would clip at the noise-set full scale (ci16 at
    1.0 FS: the ``hf-tdoa`` 2FSK bursts came out at 1.2 FS RMS and their lags were 100×
    worse).
    """

    headroom_db: float = 12.0
    full_scale_dbm: dict[tuple[str, float], float] = field(default_factory=dict)
    min_peak_dbm: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_simulator(cls, sim: Simulator, headroom_db: float = 12.0) -> StreamGain:
        """Peaks from the simulator's link budget: each receiver's strongest mean received
        power (``Simulator.rx_power_dbm``), plus 10 dB for fading peaks when it fades
        (a Rayleigh envelope exceeds its mean power by 10 dB with probability e^-10)."""
        margin_db = 10.0 if sim.fading is not None else 0.0
        peaks = {
            r.receiver_id: float(np.max(sim.rx_power_dbm[i], initial=-np.inf)) + margin_db
            for i, r in enumerate(sim.scenario.receivers)
        }
        return cls(headroom_db=headroom_db, min_peak_dbm=peaks)

    def scale(self, chunk: SimChunk) -> tuple[np.ndarray, float]:
        key = (chunk.receiver_id, chunk.center_freq_hz)
        fs_dbm = self.full_scale_dbm.get(key)
        if fs_dbm is None:
            peak = float(np.max(np.abs(np.concatenate([chunk.iq.real, chunk.iq.imag]))))
            peak_dbm = chunk.full_scale_dbm + 20 * math.log10(max(peak, 1e-30))
            peak_dbm = max(peak_dbm, self.min_peak_dbm.get(chunk.receiver_id, -np.inf))
            fs_dbm = peak_dbm + self.headroom_db
            self.full_scale_dbm[key] = fs_dbm
        amp = 10 ** ((fs_dbm - chunk.full_scale_dbm) / 20)
        return (chunk.iq / amp).astype(np.complex64), fs_dbm


def to_iq_chunk(chunk: SimChunk, gain: StreamGain) -> IqChunk:
    """The wire event of a simulated chunk: ci16 samples.

    Quantised chunks (a receiver with an ADC) go out as they are, at the ADC's full
    scale; ideal float chunks get the per-stream :class:`StreamGain`.
    """
    if chunk.adc_bits is not None:
        iq, fs_dbm = chunk.iq, chunk.full_scale_dbm
    else:
        iq, fs_dbm = gain.scale(chunk)
    return IqChunk(
        receiver_id=chunk.receiver_id,
        seq=chunk.seq,
        t_ns=chunk.t_ns,
        clock=ClockSource(chunk.clock),
        center_freq_hz=chunk.center_freq_hz,
        sample_rate_hz=chunk.sample_rate_hz,
        sample_format=SampleFormat.CI16,
        iq=iq,
        full_scale_dbm=fs_dbm,
        gain_db=chunk.gain_db,
        position=Position(lat_deg=chunk.lat_deg, lon_deg=chunk.lon_deg, alt_m=chunk.alt_m),
        source="sim",
        published_ns=time.time_ns(),
    )


def to_truth(t: SimTruth) -> Truth:
    return Truth(
        source_id=t.source_id,
        t_ns=t.t_ns,
        position=Position(lat_deg=t.lat_deg, lon_deg=t.lon_deg, alt_m=t.alt_m),
        channel_id=t.channel_id,
        freq_hz=t.freq_hz,
        tx_power_dbm=t.tx_power_dbm,
        waveform=t.waveform,
        transmitting=t.transmitting,
        velocity_enu_mps=t.velocity_enu_mps,
    )


def receiver_statuses(scenario: Scenario, state: ReceiverState) -> list[ReceiverStatus]:
    now = time.time_ns()
    return [
        ReceiverStatus(
            receiver_id=r.receiver_id,
            kind="sim",
            position=Position(lat_deg=r.lat_deg, lon_deg=r.lon_deg, alt_m=r.alt_m),
            state=state,
            updated_ns=now,
        )
        for r in scenario.receivers
    ]


def run_simulation(
    settings: HeimdallSettings,
    scenario_name: str | Scenario = "seed-network",
    *,
    duration_s: float | None = None,
    realtime: bool = True,
    seed: int = 1,
    stop: threading.Event | None = None,
    publisher: Publisher | None = None,
) -> dict[str, int]:
    """Publish the scenario until ``duration_s`` of signal time, ``stop`` or SIGTERM.

    ``scenario_name`` is a built-in name, a scenario file (:func:`load_scenario`) or a
    :class:`Scenario`. Returns the number of events published per topic.
    """
    scenario = (
        scenario_name if isinstance(scenario_name, Scenario) else load_scenario(scenario_name)
    )
    sim = Simulator(scenario, seed=seed)
    pub = publisher or Publisher(settings)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    t = settings.topics
    for status in receiver_statuses(scenario, ReceiverState.ONLINE):
        pub.publish(t.receivers, status.receiver_id, status)
    chunk_ns = scenario.chunk_ns
    start_t_ns = (time.time_ns() // chunk_ns) * chunk_ns
    n_steps = None if duration_s is None else round(duration_s * 1e9 / chunk_ns)
    gain = StreamGain.for_simulator(sim)
    wall0 = time.monotonic()
    try:
        for k, step in enumerate(sim.steps(start_t_ns, n_steps)):
            if stop.is_set():
                break
            if realtime:  # publish a chunk once its last sample exists
                delay = wall0 + (k + 1) * chunk_ns / 1e9 - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            for truth in step.truths:
                pub.publish(t.truth, truth.source_id, to_truth(truth), truth.t_ns)
            for c in step.chunks:
                pub.publish(t.iq, c.receiver_id, to_iq_chunk(c, gain), c.t_ns)
    finally:
        for status in receiver_statuses(scenario, ReceiverState.OFFLINE):
            pub.publish(t.receivers, status.receiver_id, status)
        left = pub.flush()
        if left:
            log.error("%d events were not delivered", left)
    return dict(pub.stats.sent)
