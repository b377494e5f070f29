"""A network file of the three shared DCF77 KiwiSDR recordings, run against the real embedded
broker: every chunk of every recording on rf.iq.v1 with its GPS event time, and the truth of
DCF77 (declared under ``sources:``) on rf.truth.v1 on the same clock."""

from __future__ import annotations

import calendar
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.producers.network import load_network, run_network
from heimdall.producers.network_recordings import ReplaySpec
from heimdall.producers.recordings.kiwi_wav import read_kiwi_wav
from heimdall.producers.recordings.replay import kiwi_chunks, kiwi_position
from heimdall.schemas.models import ClockSource, IqChunk, Position, Truth
from heimdall.schemas.serde import Serde

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / ".." / "shared" / "data" / "kiwi-dcf77"
EXAMPLE = REPO / "examples" / "dcf77-network.yaml"
STATIONS = {"kiwi-df0kl": "DF0KL", "kiwi-f1jek": "F1JEK", "kiwi-hb9ryz": "HB9RYZ"}
DAY_2017_11_27_NS = calendar.timegm((2017, 11, 27, 0, 0, 0, 0, 0, 0)) * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000

needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"the shared KiwiSDR DCF77 recordings are not in {DATA}"
)


def consume(
    settings: HeimdallSettings, group: str, topics: Sequence[str], n: int, timeout_s: float = 60
) -> list[tuple[str, bytes | None, IqChunk | Truth, int]]:
    """``n`` events of ``topics``: (topic, key, event, Kafka timestamp ms)."""
    serde = Serde()
    c = kafka.consumer(settings, group)
    c.subscribe(list(topics))
    out: list[tuple[str, bytes | None, IqChunk | Truth, int]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            kind = IqChunk if m.topic() == settings.topics.iq else Truth
            event = serde.decode(m.value() or b"", kind)
            out.append((m.topic() or "", m.key(), event, m.timestamp()[1]))
    finally:
        c.close()
    return out


@needs_data
def test_the_dcf77_network_publishes_every_chunk_and_the_truth(
    settings: HeimdallSettings, group_id: str
) -> None:
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    net = load_network(EXAMPLE)  # the example the README documents, relative paths and all
    assert [r.id for r in net.receivers] == list(STATIONS)
    fast = net.model_copy(update={"replay": ReplaySpec(pace="fast")})

    result = run_network(settings, fast)

    expected: dict[str, list[IqChunk]] = {}
    for rid, station in STATIONS.items():
        rec = read_kiwi_wav(DATA / f"20171127T104156Z_77500_{station}_iq.wav")
        expected[rid] = list(kiwi_chunks(rec, position=kiwi_position(rec), receiver_id=rid))
    counts = {rid: len(c) for rid, c in expected.items()}
    assert counts == {"kiwi-df0kl": 138, "kiwi-f1jek": 136, "kiwi-hb9ryz": 139}
    assert result.replay is not None and result.replay.undelivered == 0
    assert result.replay.chunks == counts and not result.skipped
    n_truth = result.truths["dcf77"]

    got = consume(
        settings,
        group_id,
        [settings.topics.iq, settings.topics.truth],
        sum(counts.values()) + n_truth,
    )
    iq = [e for e in got if e[0] == settings.topics.iq]
    truths = [e for e in got if e[0] == settings.topics.truth]
    assert len(iq) == sum(counts.values()) and len(truths) == n_truth
    for rid, want in expected.items():
        mine = sorted((e for e in iq if e[1] == rid.encode()), key=lambda e: e[2].seq)
        chunks = [e[2] for e in mine]
        assert all(isinstance(c, IqChunk) and c.receiver_id == rid for c in chunks)
        assert [c.t_ns for c in chunks] == [c.t_ns for c in want]  # every chunk, its GPS time
        assert all(c.clock is ClockSource.GPS and c.source == "kiwi-wav" for c in chunks)
        assert all(ts == c.t_ns // 1_000_000 for (_, _, c, ts) in mine)  # Kafka time = event
        assert chunks[0].position == want[0].position
    all_chunks = [e[2] for e in iq]
    assert all(DAY_2017_11_27_NS <= c.t_ns < DAY_2017_11_27_NS + DAY_NS for c in all_chunks)

    # DCF77's truth: keyed by its id, on its channel, at the first chunk then each second
    first = min(c.t_ns for c in all_chunks)
    end = max(c.t_ns + round(c.duration_s * 1e9) for c in all_chunks)
    s = 1_000_000_000
    want_t = [first, *(k * s for k in range(first // s + 1, (end - 1) // s + 1))]
    assert len(want_t) == 31  # 10:41:55.95 to 10:42:25.6
    tr = sorted((e for e in truths), key=lambda e: e[2].t_ns)
    assert [e[2].t_ns for e in tr] == want_t
    assert {e[1] for e in tr} == {b"dcf77"}
    t0 = tr[0][2]
    assert isinstance(t0, Truth)
    assert (t0.source_id, t0.channel_id, t0.freq_hz) == ("dcf77", "0.0775MHz", 77_500.0)
    assert t0.position == Position(lat_deg=50.0152, lon_deg=9.0112, alt_m=0.0)


@needs_data
def test_receivers_run_command(settings: HeimdallSettings, tmp_path: Path) -> None:
    """``heimdall receivers run`` through the real CLI app, on a network with one unusable
    recording (no position) beside a good one: the good one runs, the other is one line."""
    from typer.testing import CliRunner

    from heimdall.infra.cli import app

    lonely = tmp_path / "lonely" / "20171127T104156Z_77500_LONELY_iq.wav"
    lonely.parent.mkdir()
    lonely.write_bytes((DATA / "20171127T104156Z_77500_F1JEK_iq.wav").read_bytes())
    net = tmp_path / "net.yaml"
    net.write_text(
        f"""
replay: {{pace: fast}}
receivers:
  - {{id: kiwi-df0kl, kind: kiwi-wav,
     options: {{path: {DATA / "20171127T104156Z_77500_DF0KL_iq.wav"}}}}}
  - {{id: kiwi-lonely, kind: kiwi-wav, options: {{path: lonely/{lonely.name}}}}}
sources:
  - {{id: dcf77, lat: 50.0152, lon: 9.0112, freq_hz: 77500}}
"""
    )
    r = CliRunner().invoke(app, ["receivers", "run", str(net)], env=settings.to_env())
    out = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "recordings: published 138 chunks (kiwi-df0kl: 138)" in out
    assert "known sources: published dcf77: 30 truths" in out  # 10:41:56.13 to 10:42:25.4
    assert "not run: receivers[1] 'kiwi-lonely': " in out
    assert "no position for station LONELY" in out

    r = CliRunner().invoke(
        app, ["receivers", "run", str(tmp_path / "nothing.yaml")], env=settings.to_env()
    )
    assert r.exit_code != 0
