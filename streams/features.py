"""The features stage: one IQ chunk in, one measurement of its channel out.

The channel is the one the receiver is tuned to: centred on the chunk's centre frequency,
``channel_bw_hz`` wide (default 80 % of the sample rate, inside the anti-alias filter's
passband). What each number means is documented in ``schemas/avsc/measurement.avsc``; the
DSP is :func:`heimdall.streams.dsp.features.measure_channel`.
"""

from __future__ import annotations

import time

from heimdall.core.channels import channel_id_for
from heimdall.core.ids import new_event_id
from heimdall.schemas.models import IqChunk, Measurement
from heimdall.streams.dsp.features import measure_channel


def measure_chunk(chunk: IqChunk, channel_bw_hz: float | None = None) -> Measurement:
    """Measure the tuned channel of ``chunk``."""
    m = measure_channel(
        chunk.iq,
        sample_rate_hz=chunk.sample_rate_hz,
        full_scale_dbm=chunk.full_scale_dbm,
        channel_bw_hz=channel_bw_hz,
    )
    bw = channel_bw_hz if channel_bw_hz is not None else 0.8 * chunk.sample_rate_hz
    return Measurement(
        event_id=new_event_id(),
        chunk_id=chunk.event_id,
        receiver_id=chunk.receiver_id,
        t_ns=chunk.t_ns,
        duration_s=len(chunk.iq) / chunk.sample_rate_hz,
        clock=chunk.clock,
        position=chunk.position,
        channel_id=channel_id_for(chunk.center_freq_hz),
        channel_freq_hz=chunk.center_freq_hz,
        channel_bw_hz=bw,
        power_dbm=m.power_dbm,
        noise_floor_dbm_hz=m.noise_floor_dbm_hz,
        snr_db=m.snr_db,
        freq_offset_hz=m.freq_offset_hz,
        occupied_bw_hz=m.occupied_bw_hz,
        detected=m.detected,
        psd_dbm_hz=tuple(float(v) for v in m.psd_dbm_hz),
        psd_bin_hz=m.psd_bin_hz,
        chunk_published_ns=chunk.published_ns,
        published_ns=time.time_ns(),
    )


def measure_chunks(chunks, channel_bw_hz=None):  # TEMPORARY shim until the batched DSP lands
    from heimdall.core.errors import InvalidEventError

    out = []
    for c in chunks:
        try:
            out.append(measure_chunk(c, channel_bw_hz))
        except InvalidEventError as exc:
            out.append(exc)
    return out
