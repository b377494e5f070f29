"""The features stage: one IQ chunk in, one measurement of its channel out.

The channel is the one the receiver is tuned to: centred on the chunk's centre frequency,
``channel_bw_hz`` wide (default 80 % of the sample rate, inside the anti-alias filter's
passband). What each number means is documented in ``schemas/avsc/measurement.avsc``; the
DSP is :func:`heimdall.streams.dsp.features.measure_channel`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from heimdall.core.channels import channel_id_for
from heimdall.core.derived_ids import derived_event_id
from heimdall.core.errors import InvalidEventError
from heimdall.schemas.models import IqChunk, Measurement
from heimdall.streams.dsp.batch import measure_channels
from heimdall.streams.dsp.features import measure_channel


def measurement_id(chunk: IqChunk) -> str:
    """The measurement's event id, derived from the chunk's (:mod:`heimdall.core.derived_ids`).

    A chunk measured again after a crash (its batch was not committed) gets the same id, so
    the replayed measurement replaces the first one in ClickHouse instead of adding a row.
    """
    return derived_event_id("measurement", chunk.t_ns, chunk.event_id)


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
        event_id=measurement_id(chunk),
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


def measure_chunks(
    chunks: Sequence[IqChunk], channel_bw_hz: float | None = None
) -> list[Measurement | InvalidEventError]:
    """Measure the tuned channel of every chunk, the DSP vectorised over the batch.

    Chunks of one length and sample rate are measured together
    (:func:`heimdall.streams.dsp.batch.measure_channels`); the result is in the order of
    ``chunks``, a :class:`Measurement` or, for a chunk that cannot be measured (non-finite
    samples, too few samples, a bad rate), the :class:`InvalidEventError` saying why, so that
    the caller refuses exactly that chunk.
    """
    out: list[Measurement | InvalidEventError | None] = [None] * len(chunks)
    groups: dict[tuple[int, float], list[int]] = {}
    for i, chunk in enumerate(chunks):
        groups.setdefault((chunk.n_samples, float(chunk.sample_rate_hz)), []).append(i)
    published_ns = time.time_ns()
    for (n, rate_hz), members in groups.items():
        x = np.stack([chunks[i].iq for i in members]) if n else np.zeros((len(members), 0))
        finite = np.asarray(np.isfinite(x).all(axis=1), dtype=bool)
        for i in np.asarray(members)[~finite]:
            out[i] = InvalidEventError("iq: samples contain NaN or infinity")
        good = [i for i, ok in zip(members, finite.tolist(), strict=True) if ok]
        if not good:
            continue
        try:
            m = measure_channels(
                x[finite],
                sample_rate_hz=rate_hz,
                full_scale_dbm=[chunks[i].full_scale_dbm for i in good],
                channel_bw_hz=channel_bw_hz,
            )
        except InvalidEventError as exc:
            for i in good:
                out[i] = exc
            continue
        bw = channel_bw_hz if channel_bw_hz is not None else 0.8 * rate_hz
        psd_rows = m.psd_dbm_hz.tolist()
        for row, i in enumerate(good):
            c = chunks[i]
            out[i] = Measurement(
                event_id=measurement_id(c),
                chunk_id=c.event_id,
                receiver_id=c.receiver_id,
                t_ns=c.t_ns,
                duration_s=n / c.sample_rate_hz,
                clock=c.clock,
                position=c.position,
                channel_id=channel_id_for(c.center_freq_hz),
                channel_freq_hz=c.center_freq_hz,
                channel_bw_hz=bw,
                power_dbm=float(m.power_dbm[row]),
                noise_floor_dbm_hz=float(m.noise_floor_dbm_hz[row]),
                snr_db=float(m.snr_db[row]),
                freq_offset_hz=float(m.freq_offset_hz[row]),
                occupied_bw_hz=float(m.occupied_bw_hz[row]),
                detected=bool(m.detected[row]),
                psd_dbm_hz=tuple(psd_rows[row]),
                psd_bin_hz=m.psd_bin_hz,
                chunk_published_ns=c.published_ns,
                published_ns=published_ns,
            )
    done = [o for o in out if o is not None]
    assert len(done) == len(chunks)  # every chunk was measured or refused
    return done
