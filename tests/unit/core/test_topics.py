"""``topic_mismatches``: the rules of ``heimdall topics ensure --check`` on what a broker
reports (a stand-in admin with the metadata and configs a broker returns; no broker)."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

from confluent_kafka.admin import ConfigResource

from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import TopicSpec, heimdall_topics, topic_mismatches


class StandInAdmin:
    """Answers ``list_topics`` and ``describe_configs`` like AdminClient, from a dict."""

    def __init__(self, topics: dict[str, tuple[int, dict[str, str]]]) -> None:
        self.topics = topics

    def list_topics(self, timeout: float) -> Any:
        return SimpleNamespace(topics={n: SimpleNamespace(partitions=dict.fromkeys(range(p)))
                                       for n, (p, _) in self.topics.items()})  # fmt: skip

    def describe_configs(self, resources: list[ConfigResource], request_timeout: float) -> Any:
        out = {}
        for r in resources:
            f: Future[dict[str, Any]] = Future()
            f.set_result({k: SimpleNamespace(value=v) for k, v in self.topics[r.name][1].items()})
            out[r] = f
        return out


SPEC = TopicSpec("rf.iq.v1", 4, {"retention.ms": "3600000", "max.message.bytes": "8388608"})


def test_matching_and_larger_topics_pass() -> None:
    same = StandInAdmin({"rf.iq.v1": (4, dict(SPEC.config))})
    assert topic_mismatches(same, [SPEC]) == []  # type: ignore[arg-type]
    wider = StandInAdmin({"rf.iq.v1": (6, {**SPEC.config, "max.message.bytes": "16777216"})})
    assert topic_mismatches(wider, [SPEC]) == []  # type: ignore[arg-type]


def test_each_mismatch_is_one_line() -> None:
    admin = StandInAdmin(
        {"rf.iq.v1": (2, {"retention.ms": "604800000", "max.message.bytes": "1048576"})}
    )
    other = TopicSpec("rf.dlq.v1", 1, {})
    assert topic_mismatches(admin, [SPEC, other]) == [  # type: ignore[arg-type]
        "rf.dlq.v1: missing",
        "rf.iq.v1: max.message.bytes is 1048576, expected at least 8388608",
        "rf.iq.v1: partitions is 2, expected at least 4",
        "rf.iq.v1: retention.ms is 604800000, expected 3600000",
    ]


def test_a_config_the_broker_does_not_report_is_a_mismatch() -> None:
    spec = TopicSpec("rf.receivers.v1", 1, {"cleanup.policy": "compact"})
    admin = StandInAdmin({"rf.receivers.v1": (1, {})})
    assert topic_mismatches(admin, [spec]) == [  # type: ignore[arg-type]
        "rf.receivers.v1: cleanup.policy is unset, expected compact"
    ]


def test_heimdall_topics_validate_against_themselves() -> None:
    specs = heimdall_topics(HeimdallSettings())
    admin = StandInAdmin({s.name: (s.partitions, dict(s.config)) for s in specs})
    assert topic_mismatches(admin, specs) == []  # type: ignore[arg-type]
