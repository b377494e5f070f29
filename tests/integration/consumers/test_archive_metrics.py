"""The archiver's metrics against the real broker: files and bytes per topic, events in and
written, moved by exactly what the archiver wrote (it runs in this process: the default
registry is read directly)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from heimdall.consumers.archive_store import ArchiveStore
from heimdall.core.settings import HeimdallSettings
from tests.integration.consumers.test_archive import _publish, _run_archiver, topics_ready

pytestmark = pytest.mark.integration
__all__ = ["topics_ready"]  # the fixture, imported


def snapshot(topic: str) -> dict[str, float]:
    def get(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return {
        "files": get("heimdall_archive_files_total", topic=topic),
        "bytes": get("heimdall_archive_bytes_total", topic=topic),
        "in": get("heimdall_stage_events_in_total", stage="archive"),
        "out": get("heimdall_stage_events_out_total", stage="archive"),
    }


def test_archive_metrics_count_files_bytes_and_events(topics_ready: HeimdallSettings) -> None:
    settings = topics_ready
    topic = settings.topics.iq
    before = snapshot(topic)
    chunks = _publish(settings, 20)
    store = ArchiveStore.from_settings(settings)
    w = _run_archiver(settings, store, len(chunks))
    after = snapshot(topic)
    assert w.stats.events_written == len(chunks)
    files = store.files(topic)
    assert {k: after[k] - before[k] for k in after} == {
        "files": len(files),
        "bytes": sum(f.size_bytes for f in files),
        "in": w.stats.consumed,
        "out": len(chunks),
    }
