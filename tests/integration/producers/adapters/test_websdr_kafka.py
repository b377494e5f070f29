"""OpenWebRX and KiwiSDR receivers of a network file, run into the embedded broker.

The servers are the local stand-ins of OpenWebRX(+) (github.com/jketterl/openwebrx,
github.com/luarvique/openwebrx: ``owrx/connection.py``, ``owrx/dsp.py``, csdr's FFT and ADPCM)
and of the KiwiSDR firmware (github.com/jks-prv/Beagle_SDR_GPS ``rx/rx_sound.cpp``), in
:mod:`tests.unit.producers.adapters.openwebrx_server` and ``kiwisdr_server``, running on their
own event loop in a thread. The adapters run through :func:`run_network` (one loop, one
producer, the pump thread); a consumer reads back decoded Measurements (features topic),
WaterfallRows (waterfall topic), AudioChunks (audio topic), IqChunks (IQ topic) and
ReceiverStatuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.producers.adapters.adpcm import SyncAdpcmDecoder
from heimdall.producers.network import run_network
from heimdall.schemas.models import (
    AudioChunk,
    ClockSource,
    IqChunk,
    Measurement,
    ReceiverState,
    ReceiverStatus,
    WaterfallRow,
)
from heimdall.schemas.serde import Serde
from tests.unit.producers.adapters.kiwisdr_server import KiwiTestServer
from tests.unit.producers.adapters.openwebrx_server import OpenWebRxTestServer, Tone

from ._harness import read, serving

pytestmark = pytest.mark.integration

F_OWRX = 145_010_000.0
F_KIWI = 10_000_000.0


@pytest.fixture
def servers() -> Iterator[tuple[OpenWebRxTestServer, KiwiTestServer]]:
    """Both stand-ins on one loop in a thread (stopped and joined after)."""
    owrx = OpenWebRxTestServer(tones=[Tone(F_OWRX + 1000, 0.1)], fft_compression="none")
    kiwi = KiwiTestServer(tones=[Tone(F_KIWI + 1000, 0.25)], full_scale_dbm=-10.0)
    with serving(owrx, kiwi, name="websdr-test-servers"):
        yield owrx, kiwi


def test_openwebrx_and_kiwisdr_network_into_kafka(
    settings: HeimdallSettings,
    servers: tuple[OpenWebRxTestServer, KiwiTestServer],
    tmp_path: Path,
) -> None:
    owrx, kiwi = servers
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    network = tmp_path / "network.yaml"
    network.write_text(
        f"""
runtime: {{status_interval_s: 0.5}}
receivers:
  - id: owrx-test
    kind: openwebrx
    url: {owrx.url}
    position: {{lat: 45.07, lon: 7.68, alt: 240}}
    calibration_offset_db: -1.5
    options: {{freq_hz: {F_OWRX}, measure: fft, integration_s: 0.3}}
  - id: kiwi-test
    kind: kiwisdr
    address: 127.0.0.1:{kiwi.port}
    position: {{lat: 45.08, lon: 7.77}}
    options: {{freq_hz: {F_KIWI}, rssi_measurements: true}}
"""
    )
    result = run_network(settings, network, duration_s=3.0)
    assert not result.skipped
    by_id = {s.receiver_id: s for s in result.summary.adapters}
    assert set(by_id) == {"owrx-test", "kiwi-test"}
    for s in by_id.values():
        assert s.state is ReceiverState.OFFLINE and s.errors == 0 and s.dropped == 0
        assert s.chunks >= 4
    assert result.summary.undelivered == 0 and result.summary.pump.failed == 0

    serde = Serde()
    t = settings.topics
    msgs = read(settings, [t.iq, t.features, t.receivers, t.waterfall, t.audio], 30.0)
    ms = [serde.decode(m.value() or b"", expect=Measurement) for m in msgs
          if m.topic() == t.features]  # fmt: skip
    chunks = [serde.decode(m.value() or b"", expect=IqChunk) for m in msgs if m.topic() == t.iq]
    statuses = [serde.decode(m.value() or b"", expect=ReceiverStatus) for m in msgs
                if m.topic() == t.receivers]  # fmt: skip

    rows = [serde.decode(m.value() or b"", expect=WaterfallRow) for m in msgs
            if m.topic() == t.waterfall]  # fmt: skip
    audio = [serde.decode(m.value() or b"", expect=AudioChunk) for m in msgs
             if m.topic() == t.audio]  # fmt: skip

    owrx_ms = [m for m in ms if m.receiver_id == "owrx-test"]
    assert owrx_ms and rows and audio
    assert len(owrx_ms) + len(rows) + len(audio) == by_id["owrx-test"].chunks
    m = owrx_ms[-1]
    assert m.channel_id == "145.0100MHz" and m.clock is ClockSource.NTP
    assert m.power_dbm == pytest.approx(-20.0 - 1.5, abs=0.3)  # −20 dBFS tone, −1.5 dB cal.
    assert m.freq_offset_hz == pytest.approx(1000.0, abs=150)

    # every waterfall row, decoded on rf.waterfall, is the row the server computed (float32)
    rows.sort(key=lambda r: r.seq)
    assert [r.seq for r in rows] == list(range(len(rows)))
    assert all(r.receiver_id == "owrx-test" and r.compression == "none" for r in rows)
    for r in rows:
        np.testing.assert_array_equal(r.values, owrx.rows_db_sent[r.seq])
    assert rows[-1].center_freq_hz == owrx.center_freq_hz and rows[-1].full_scale_dbm == -1.5
    # the audio, decoded on rf.audio: what the server's ADPCM stream decodes to, in order
    audio.sort(key=lambda c: c.seq)
    assert [c.seq for c in audio] == list(range(len(audio)))
    got = np.concatenate([c.samples for c in audio])
    decoded = SyncAdpcmDecoder().decode(b"".join(owrx.audio_data_sent))[: got.size]
    np.testing.assert_array_equal(got, decoded)
    assert {(c.mode, c.freq_hz, c.sample_rate_hz, c.n_samples) for c in audio} == {
        ("nfm", F_OWRX, 12_000.0, 3000)
    }

    kiwi_ms = [m for m in ms if m.receiver_id == "kiwi-test"]
    assert chunks and all(c.receiver_id == "kiwi-test" for c in chunks)
    assert len(chunks) + len(kiwi_ms) == by_id["kiwi-test"].chunks
    chunks.sort(key=lambda c: c.seq)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    c = chunks[-1]
    assert c.clock is ClockSource.GPS and c.source == "kiwisdr" and c.n_samples == 2400
    assert c.sample_rate_hz == pytest.approx(12_001.135)
    assert c.full_scale_dbm == pytest.approx(-10.0, abs=0.2)
    assert {k.chunk_id for k in kiwi_ms} <= {k.event_id for k in chunks}
    # GPS time of each chunk against the server's truth (first frame dropped)
    for k in chunks:
        want = kiwi.frame_times_ns[1] + round(2400 * k.seq * 1e9 / 12_001.135)
        assert abs(k.t_ns - want) <= 2

    for rid in ("owrx-test", "kiwi-test"):
        states = [s.state for s in statuses if s.receiver_id == rid]
        assert ReceiverState.ONLINE in states and states[-1] is ReceiverState.OFFLINE
