"""A network file with an rtl_tcp receiver, run into the embedded broker.

The rtl_tcp server is the local stand-in of osmocom ``rtl-sdr``'s ``src/rtl_tcp.c``
(github.com/osmocom/rtl-sdr), :mod:`tests.unit.producers.adapters.rtltcp_server`, running on
its own event loop in a thread; the adapters run through :func:`run_network` (one loop, one
producer, the pump thread), and a consumer reads back decoded IqChunks and ReceiverStatuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.producers.network import run_network
from heimdall.schemas.models import ClockSource, IqChunk, ReceiverState, ReceiverStatus
from heimdall.schemas.serde import Serde
from tests.unit.producers.adapters.rtltcp_server import RtlTcpTestServer, Tone

from ._harness import read, serving

pytestmark = pytest.mark.integration

F_CH = 145_500_000.0


@pytest.fixture
def rtl_server() -> Iterator[RtlTcpTestServer]:
    """A real-time rtl_tcp stand-in on its own loop and thread (stopped and joined after)."""
    server = RtlTcpTestServer(tones=[Tone(F_CH + 1500, 0.3)], realtime=True)
    with serving(server, name="rtl-tcp-test-server"):
        yield server


def test_rtltcp_network_into_kafka(
    settings: HeimdallSettings, rtl_server: RtlTcpTestServer, tmp_path: Path
) -> None:
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    network = tmp_path / "network.yaml"
    network.write_text(
        f"""
runtime: {{status_interval_s: 0.5}}
receivers:
  - id: rtl-test
    kind: rtltcp
    address: 127.0.0.1:{rtl_server.port}
    position: {{lat: 45.07, lon: 7.68, alt: 240}}
    antenna: whip
    options: {{freq_hz: {F_CH}, gain_db: 20}}
  - id: kiwi-later
    kind: sim
    position: {{lat: 45.0, lon: 7.0}}
"""
    )
    result = run_network(settings, network, duration_s=2.5)
    assert result.skipped and "kiwi-later" in result.skipped[0]
    (s,) = result.summary.adapters
    assert s.receiver_id == "rtl-test" and s.state is ReceiverState.OFFLINE
    assert s.chunks >= 8 and s.dropped == 0 and s.errors == 0
    assert result.summary.undelivered == 0 and result.summary.pump.failed == 0

    serde = Serde()
    msgs = read(settings, [settings.topics.iq, settings.topics.receivers], 30.0)
    chunks = [serde.decode(m.value() or b"", expect=IqChunk) for m in msgs
              if m.topic() == settings.topics.iq]  # fmt: skip
    statuses = [serde.decode(m.value() or b"", expect=ReceiverStatus) for m in msgs
                if m.topic() == settings.topics.receivers]  # fmt: skip
    assert {m.key() for m in msgs} == {b"rtl-test"}
    assert len(chunks) == s.chunks
    chunks.sort(key=lambda c: c.seq)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    c = chunks[-1]
    assert c.receiver_id == "rtl-test" and c.source == "rtltcp" and c.clock is ClockSource.NTP
    assert c.center_freq_hz == F_CH and c.sample_rate_hz == 12_000.0 and c.n_samples == 2400
    assert c.gain_db == 20.0 and c.position.lat_deg == 45.07
    x = np.concatenate([k.iq for k in chunks[-4:]])
    spec = np.abs(np.fft.fft(x * np.hanning(x.size)))
    assert abs(np.fft.fftfreq(x.size, 1 / 12_000)[np.argmax(spec)] - 1500.0) <= 12_000 / x.size

    states = [st.state for st in statuses]
    assert ReceiverState.CONNECTING in states and ReceiverState.ONLINE in states
    assert states[-1] is ReceiverState.OFFLINE
    online = [st for st in statuses if st.state is ReceiverState.ONLINE]
    assert len(online) >= 3  # the change, then every 0.5 s
    assert any(3.0 < st.chunks_per_s < 7.0 for st in online)  # 5 chunks/s at 0.2 s each
    assert all(st.antenna == "whip" and st.kind == "rtltcp" for st in statuses)
    assert statuses[-1].last_data_ns is not None and statuses[-1].dropped == 0
