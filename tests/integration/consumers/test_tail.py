"""`heimdall tail`: decoded events as JSON lines, dead letters with their reason."""

from __future__ import annotations

import io
import json

import pytest

from heimdall.consumers.tail import tail_topic
from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.producers.publisher import Publisher
from heimdall.schemas.dlq import dlq_headers
from heimdall.schemas.models import Position, Truth

pytestmark = pytest.mark.integration


def test_tail_prints_decoded_json_lines(settings: HeimdallSettings) -> None:
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    pub = Publisher(settings)
    truths = [
        Truth(
            source_id=f"tx-{i}",
            t_ns=i,
            position=Position(lat_deg=45.0, lon_deg=7.0 + i, alt_m=0.0),
            freq_hz=145.5e6,
            channel_id="145.5000MHz",
        )
        for i in range(3)
    ]
    for t in truths:
        pub.publish(settings.topics.truth, t.source_id, t)
    pub.publish_raw(
        settings.topics.dlq,
        b"rx-9",
        b"\x07bad",
        headers=dlq_headers(
            "samples: NaN", topic="rf.iq.v1", partition=1, offset=42, stage="features"
        ),
    )
    assert pub.flush() == 0

    out = io.StringIO()
    n = tail_topic(settings, "truth", from_beginning=True, max_events=3, timeout_s=30, out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == 3 and len(lines) == 3
    assert {e["value"]["source_id"] for e in lines} == {"tx-0", "tx-1", "tx-2"}
    assert all(e["schema"] == "heimdall.v1.Truth" for e in lines)

    out = io.StringIO()
    tail_topic(settings, "dlq", from_beginning=True, max_events=1, timeout_s=30, out=out)
    dead = json.loads(out.getvalue())["dead_letter"]
    assert dead["reason"] == "samples: NaN" and dead["offset"] == 42
    assert dead["stage"] == "features" and dead["value_b64"] == "B2JhZA=="
