"""The compose file is consistent with the code: every Heimdall service runs a command the
CLI has, every variable it sets is a real setting, the topics and buckets jobs run before
the stages, and the bucket created is the one OBJECT_STORE_URL names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic_settings import BaseSettings

from heimdall.consumers.archive_store import ArchiveSettings
from heimdall.core.settings import HeimdallSettings
from heimdall.infra.cli import app

DEPLOY = Path(__file__).resolve().parents[3] / "infra" / "deploy"


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # type: ignore[no-any-return]


def heimdall_services() -> dict[str, dict[str, Any]]:
    """The services built from this repository (image entrypoint: ``heimdall``)."""
    return {n: s for n, s in compose()["services"].items() if "build" in s}


def env_names(cls: type[BaseSettings], prefix: str | None = None) -> set[str]:
    """Every environment variable a settings class reads, nested groups included."""
    cfg = cls.model_config
    prefix = cfg.get("env_prefix", "") if prefix is None else prefix
    delim = cfg.get("env_nested_delimiter") or ""
    out: set[str] = set()
    for name, field in cls.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseSettings):
            out |= env_names(ann)  # a group: its own prefix (KAFKA_, CLICKHOUSE_, …)
        elif isinstance(ann, type) and hasattr(ann, "model_fields") and delim:
            out |= {f"{prefix}{name}{delim}{k}".upper() for k in ann.model_fields}
        else:
            out.add(f"{prefix}{name}".upper())
    return out


def test_every_heimdall_service_runs_a_real_command() -> None:
    root = typer.main.get_command(app)
    services = heimdall_services()
    assert {"worker", "sink", "archive", "topics", "simulator"} <= set(services)
    for name, svc in services.items():
        assert "entrypoint" not in svc, f"{name}: the image's entrypoint is `heimdall`"
        cmd: Any = root
        words = [w for w in svc["command"] if not w.startswith("-")]
        for word in words:
            if word not in getattr(cmd, "commands", {}):  # typer's own click: duck-typed
                break  # an argument (a scenario, a file)
            cmd = cmd.commands[word]
        assert cmd is not root, f"{name}: `heimdall {' '.join(svc['command'])}` is no command"
        options = {o for p in cmd.params for o in getattr(p, "opts", [])}
        for flag in (w.split("=")[0] for w in svc["command"] if w.startswith("-")):
            assert flag in options, f"{name}: {cmd.name} has no option {flag}"


def test_every_variable_is_a_real_setting() -> None:
    known = env_names(HeimdallSettings) | env_names(ArchiveSettings)
    assert "KAFKA_BOOTSTRAP_SERVERS" in known and "HEIMDALL_TOPICS__IQ" in known
    for name, svc in heimdall_services().items():
        unknown = set(svc["environment"]) - known
        assert not unknown, f"{name}: {sorted(unknown)} are not Heimdall settings"


def test_topics_and_buckets_are_created_before_the_stages() -> None:
    services = compose()["services"]
    for name, svc in heimdall_services().items():
        if name == "topics":
            assert svc["command"] == ["topics", "ensure"]
            continue
        deps = svc["depends_on"]
        for job in ("topics", "buckets"):
            assert deps[job] == {"condition": "service_completed_successfully"}, name
    bucket = services["worker"]["environment"]["OBJECT_STORE_URL"].removeprefix("s3://")
    assert f"local/{bucket.split('/')[0]}" in " ".join(services["buckets"]["entrypoint"])
    for job in ("topics", "buckets"):
        assert services[job]["restart"] == "on-failure"  # until the broker / MinIO answers
