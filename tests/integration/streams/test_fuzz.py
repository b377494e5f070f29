"""Hostile input on every topic the stream worker consumes, against the real broker.

Random bytes, truncated events, valid Avro with NaN/inf/absurd values, empty values, 5 MB
values, wrong schema fingerprints and magic bytes, and events of the wrong type go to
``rf.iq.v1``, ``rf.snippets.v1``, ``rf.features.v1``, ``rf.observations.v1`` and
``rf.models.v1`` (:mod:`tests.integration.streams.fuzz_events`, fixed seed). The worker must
not crash, every one of them must land in the dead-letter topic with a one-line reason from
the stage that reads the topic, and a simulation published after them must still be measured
and localized.

``HEIMDALL_FUZZ_PER_KIND`` sets the events per kind and topic (default 150; the issue's
10,000 per topic: ``HEIMDALL_FUZZ_PER_KIND=1700``, a few minutes).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.processes import Child, child_env
from heimdall.producers.publisher import Publisher
from heimdall.producers.sim.stream import run_simulation
from heimdall.schemas.dlq import DeadLetter
from heimdall.schemas.models import Localization
from heimdall.schemas.serde import Serde
from tests.integration.streams.fuzz_events import Fuzzer, FuzzEvent

pytestmark = pytest.mark.integration

WORKER_MODULE = "heimdall.streams.worker"

PER_KIND = int(os.environ.get("HEIMDALL_FUZZ_PER_KIND", "150"))
#: topic role -> the stage that reads it (the dead letter's ``stage`` header)
STAGES = {
    "iq": "features",
    "snippets": "tdoa",
    "features": "associate",
    "observations": "localize",
    "models": "model-watcher",
}
#: What the reason of each kind says (the absurd kinds: the field, as in ``members[0].t_ns:``)
REASON_SAYS = {
    "empty": r"^empty payload$",
    "wrong-type": r"^expected heimdall\.v1\.\w+, got heimdall\.v1\.\w+$",
    "header": r"fingerprint|magic byte|no schema registry|single-object marker",
    "truncated": r"^(truncated|corrupt) (heimdall\.v1\.\w+ body|single-object header)",
    "absurd": r"^[a-z_-]+(\[\d+\])?(\.[a-z_]+)*: ",  # a field, or the estimator (rss-ml:)
}
ABSURD_MODEL_SAYS = r"^model file|^cannot load the model|^model .*: |: empty$"


def read_dlq(settings: HeimdallSettings, keys: set[bytes], timeout_s: float) -> list[DeadLetter]:
    """Dead letters until every key in ``keys`` has one (or the timeout)."""
    c = kafka.consumer(settings, f"fuzz-dlq-{time.monotonic_ns()}")
    c.subscribe([settings.topics.dlq])
    out: list[DeadLetter] = []
    seen: set[bytes] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while not keys <= seen and time.monotonic() < deadline:
            for m in c.consume(1000, timeout=0.5):
                if m.error():
                    continue
                d = DeadLetter.from_message(m.key(), m.value(), m.headers())
                out.append(d)
                if d.key is not None:
                    seen.add(d.key)
    finally:
        c.close()
    return out


def count_localizations(settings: HeimdallSettings, timeout_s: float) -> int:
    serde = Serde()
    c = kafka.consumer(settings, f"fuzz-loc-{time.monotonic_ns()}")
    c.subscribe([settings.topics.localizations])
    n = 0
    deadline = time.monotonic() + timeout_s
    try:
        while n == 0 and time.monotonic() < deadline:
            for m in c.consume(100, timeout=0.5):
                if m.error():
                    continue
                loc = serde.decode(m.value())
                if isinstance(loc, Localization) and loc.channel_id != "fuzz-channel":
                    n += 1  # of the simulation, not of a fuzzed observation
    finally:
        c.close()
    return n


def test_fuzzed_input_goes_to_the_dlq_and_the_stream_goes_on(
    settings: HeimdallSettings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"max_chunk_samples": 1 << 16})
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    fuzzer = Fuzzer(Serde(), seed=15, model_name=settings.model_name)
    t = settings.topics
    topics = {role: getattr(t, role) for role in STAGES}
    events: list[FuzzEvent] = []
    pub = Publisher(settings)
    for role, topic in topics.items():
        for e in fuzzer.events(role, PER_KIND):
            events.append(e)
            pub.publish_raw(topic, e.key, e.value)
    assert pub.flush() == 0
    by_key = {e.key: e for e in events}
    assert len(by_key) == len(events)

    env = child_env(settings.to_env())
    worker = Child("streams", [], env, tmp_path / "worker.log", module=WORKER_MODULE).start()
    try:
        dead = read_dlq(settings, set(by_key), timeout_s=240)
        assert worker.running, worker.tail(40)
        # valid traffic after the fuzz is still measured, associated and localized
        stats = run_simulation(settings, "seed-network", duration_s=6.0, realtime=False, seed=2)
        assert stats.get(t.iq, 0) > 0
        n_fixes = count_localizations(settings, timeout_s=120)
        assert worker.running, worker.tail(40)
    finally:
        worker.stop()
    log_text = (tmp_path / "worker.log").read_text(errors="replace")

    fuzz_dead = [d for d in dead if d.key in by_key]
    missing = Counter(
        (by_key[k].role, by_key[k].kind) for k in set(by_key) - {d.key for d in fuzz_dead}
    )
    assert not missing, f"not dead-lettered (role, kind): {dict(missing)}"
    for d in fuzz_dead:
        e = by_key[d.key]  # type: ignore[index]
        assert d.stage == STAGES[e.role], (e.role, e.kind, d.stage, d.reason)
        assert d.topic == topics[e.role]
        assert d.value == e.value  # untouched
        assert d.reason and "\n" not in d.reason and d.reason != "?", (e.role, e.kind)
        assert "Traceback" not in d.reason
        says = ABSURD_MODEL_SAYS if (e.role, e.kind) == ("models", "absurd") else None
        says = says or REASON_SAYS.get(e.kind)
        if says is not None:
            assert re.search(says, d.reason), (e.role, e.kind, d.reason)
    assert n_fixes > 0, worker.tail(40)
    assert "Traceback" not in log_text, log_text[-4000:]
