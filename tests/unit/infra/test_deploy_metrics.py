"""The deployment's monitoring is consistent with the code: the Grafana dashboard queries
only metrics Heimdall exposes and shows every one of them, and Prometheus scrapes the
compose services on the port their environment gives them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY, CollectorRegistry

from heimdall.core import metrics

DEPLOY = Path(__file__).resolve().parents[3] / "infra" / "deploy"


def exposed_names() -> set[str]:
    """Every sample name this code can expose (heimdall_*), with _total/_bucket/… suffixes."""
    names = {n for n in REGISTRY._names_to_collectors if n.startswith("heimdall_")}
    runtime = CollectorRegistry(auto_describe=True)  # names read from a collect()
    runtime.register(metrics.RuntimeCollector(lambda: {"c": 1}, lambda: {"self": os.getpid()}))
    return names | set(runtime._names_to_collectors)


def dashboard_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "heimdall-dashboard.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboard_queries_only_exposed_metrics_and_all_of_them() -> None:
    used = {m for e in dashboard_exprs() for m in re.findall(r"\bheimdall_[a-z_]+", e)}
    exposed = exposed_names()
    assert used - exposed == set()
    families = {re.sub(r"_(total|bucket|count|sum|created|info)$", "", n) for n in exposed}
    shown = {re.sub(r"_(total|bucket|count|sum|created|info)$", "", n) for n in used}
    assert families - shown == set()


def test_prometheus_scrapes_the_compose_services_on_their_metrics_port() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    port = int(services["worker"]["environment"]["HEIMDALL_METRICS_PORT"])
    assert services["worker"]["environment"]["HEIMDALL_METRICS_HOST"] == "0.0.0.0"
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets: list[tuple[str, int]] = []
    for job in prom["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            targets += [(name, sd["port"]) for name in sd["names"]]
        for sc in job.get("static_configs", []):
            for t in sc["targets"]:
                host, p = t.split(":")
                targets.append((host, int(p)))
    assert {host for host, _ in targets} == {"worker", "sink", "archive"}
    assert all(p == port for _, p in targets)
    for host, _ in targets:  # every scraped service runs Heimdall with that environment
        assert services[host]["environment"]["HEIMDALL_METRICS_PORT"] == str(port)
