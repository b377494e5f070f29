"""``python -m bench soak --minutes M --json FILE``: memory and flow of a long ``heimdall up``.

Runs the real ``heimdall up`` (the :class:`~heimdall.infra.runtime.Runtime`, embedded broker,
simulated seed network in real time, no dashboard) as a child process for ``M`` minutes and,
every ``--sample-s`` seconds (30), samples from outside, as an operator would:

* the resident set size (``VmRSS`` of ``/proc/PID/status``) of the embedded broker and of
  every process of the run, by role (``up`` itself, which runs the sink, ``worker-N``,
  ``simulator``, ``archive``);
* the events per topic (sum over partitions of high minus low watermark, Kafka's
  ``GetWatermarkOffsets``) and the earliest offset kept (retention at work shows as a
  rising low watermark);
* the lag of every consumer group (high watermark minus committed offset, summed);
* restarts: a role whose process id changed between samples.

The broker's growth rate is the least-squares slope of its RSS samples (MB/min), skipping
the first sample (start-up).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from rich.table import Table

from bench.common import Context

ROLE_PATTERNS = (  # first match wins; matched against the command line
    ("broker", re.compile(r"tansu")),
    ("worker", re.compile(r"heimdall\.streams\.worker")),
    ("archive", re.compile(r"heimdall\.consumers\.archive")),
    ("dashboard", re.compile(r"heimdall\.infra\.dashboard")),
    ("simulator", re.compile(r"heimdall\.infra\.cli simulate")),
    ("network", re.compile(r"heimdall\.infra\.cli receivers")),
)


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MB (10^6 bytes), from ``/proc/PID/status``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root`` (transitively), with its command line."""
    parent: dict[int, int] = {}
    cmd: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            parent[int(d.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            cmd[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
    out: dict[int, str] = {}
    frontier = [root]
    while frontier:
        p = frontier.pop()
        for child, pp in parent.items():
            if pp == p and child not in out:
                out[child] = cmd.get(child, "")
                frontier.append(child)
    return out


def roles(root: int) -> dict[str, int]:
    """``{role: pid}`` of the run: ``up`` itself and its children (workers numbered)."""
    out = {"up": root}
    n_workers = 0
    for pid, cmdline in sorted(descendants(root).items()):
        for role, pattern in ROLE_PATTERNS:
            if pattern.search(cmdline):
                if role == "worker":
                    role = f"worker-{n_workers}"
                    n_workers += 1
                out.setdefault(role, pid)
                break
    return out


def broker_address(cmdline: str) -> str | None:
    m = re.search(r"--listener-url\s+tcp://(\S+)", cmdline)
    return m.group(1) if m else None


class Flow:
    """Events per topic and lag per consumer group of the embedded broker."""

    def __init__(self, bootstrap: str) -> None:
        conf = {"bootstrap.servers": bootstrap, "log_level": 3}
        self.admin = AdminClient(conf)
        self.consumer = Consumer(conf | {"group.id": "bench-soak-probe"})
        self.bootstrap = bootstrap

    def sample(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        """(events per topic, earliest offset kept per topic, lag per group)."""
        md = self.admin.list_topics(timeout=10).topics
        events: dict[str, int] = {}
        earliest: dict[str, int] = {}
        high: dict[tuple[str, int], int] = {}
        for name, t in md.items():
            if name.startswith("__"):
                continue
            n = lo_sum = 0
            for p in t.partitions:
                lo, hi = self.consumer.get_watermark_offsets(TopicPartition(name, p), timeout=5)
                n += max(hi - lo, 0)
                lo_sum += lo
                high[(name, p)] = hi
            events[name], earliest[name] = n, lo_sum
        lag: dict[str, int] = {}
        groups = self.admin.list_consumer_groups(request_timeout=10).result()
        for g in groups.valid:
            c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": g.group_id,
                          "log_level": 3})  # fmt: skip
            try:
                parts = [TopicPartition(t, p) for (t, p) in high if t in events]
                committed = c.committed(parts, timeout=10)
                tps = [tp for tp in committed if tp.offset >= 0]
                if tps:
                    lag[g.group_id] = sum(max(high[(tp.topic, tp.partition)] - tp.offset, 0)
                                          for tp in tps)  # fmt: skip
            finally:
                c.close()
        return events, earliest, lag

    def close(self) -> None:
        self.consumer.close()


def slope_mb_per_min(t_s: list[float], mb: list[float]) -> float | None:
    """Least-squares slope of ``mb`` against ``t_s`` in MB/min, the first sample skipped."""
    if len(t_s) < 3:
        return None
    return float(np.polyfit(np.asarray(t_s[1:]) / 60.0, np.asarray(mb[1:]), 1)[0])


def soak(minutes: float, sample_s: float, data_dir: Path, log_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CLICKHOUSE_"))}
    env.update(HEIMDALL_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    duration_s = minutes * 60.0
    with open(log_path, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "heimdall.infra.cli", "up", "--duration", str(duration_s),
             "--no-dashboard", "--summary-json", str(data_dir / "summary.json")],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    result: dict[str, Any] = {
        "minutes": minutes, "sample_s": sample_s, "t_s": [], "broker_rss_mb": [],
        "rss_mb": {}, "events": [], "earliest_offset": [], "lag": [], "restarts": {},
    }  # fmt: skip
    pids: dict[str, int] = {}
    flow: Flow | None = None
    t0 = time.monotonic()
    next_sample = t0 + sample_s
    try:
        while up.poll() is None:
            time.sleep(max(0.0, min(1.0, next_sample - time.monotonic())))
            if time.monotonic() < next_sample or up.poll() is not None:
                continue
            next_sample += sample_s
            now = roles(up.pid)
            for role, pid in now.items():
                if role in pids and pids[role] != pid:
                    result["restarts"][role] = result["restarts"].get(role, 0) + 1
            pids.update(now)
            if flow is None and "broker" in now:
                addr = broker_address(descendants(up.pid).get(now["broker"], ""))
                flow = Flow(addr) if addr else None
            t = time.monotonic() - t0
            result["t_s"].append(round(t, 1))
            broker = rss_mb(now["broker"]) if "broker" in now else None
            result["broker_rss_mb"].append(None if broker is None else round(broker, 1))
            for role, pid in now.items():
                mb = rss_mb(pid)
                series = result["rss_mb"].setdefault(role, [None] * (len(result["t_s"]) - 1))
                series.append(None if mb is None else round(mb, 1))
            for series in result["rss_mb"].values():  # roles gone this time
                series.extend([None] * (len(result["t_s"]) - len(series)))
            if flow is not None:
                try:
                    events, earliest, lag = flow.sample()
                except Exception as exc:  # a sample lost is reported, not fatal
                    events, earliest, lag = {}, {}, {"error": str(exc)}  # type: ignore[dict-item]
                result["events"].append(events)
                result["earliest_offset"].append(earliest)
                result["lag"].append(lag)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                up.kill()
        if flow is not None:
            flow.close()
    result["exit_code"] = up.returncode
    bt = [t for t, v in zip(result["t_s"], result["broker_rss_mb"], strict=True) if v is not None]
    bv = [v for v in result["broker_rss_mb"] if v is not None]
    result["broker_growth_mb_per_min"] = slope_mb_per_min(bt, bv)
    summary = data_dir / "summary.json"
    if summary.exists():
        result["up_summary"] = json.loads(summary.read_text())
    return result


def run(ctx: Context) -> None:
    minutes = float(ctx.options.get("minutes") or (2.0 if ctx.quick else 60.0))
    sample_s = float(ctx.options.get("sample_s") or 30.0)
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"heimdall-soak-{os.getpid()}"
    base.mkdir(parents=True, exist_ok=True)
    ctx.console.print(f"soak: heimdall up for {minutes:g} min, a sample every {sample_s:g} s "
                      f"(log {base / 'up.log'})")  # fmt: skip
    r = soak(minutes, sample_s, base / "data", base / "up.log")
    t = Table(title=f"soak: {minutes:g} min of heimdall up (RSS MB; events; lag)",
              title_justify="left")  # fmt: skip
    roles_ = sorted(r["rss_mb"], key=lambda k: (k != "broker", k))
    for col in ["t s", *roles_, "rf.iq events", "low wm rf.iq", "lag (sum)"]:
        t.add_column(col, justify="right")
    for i, ts in enumerate(r["t_s"]):
        ev = r["events"][i] if i < len(r["events"]) else {}
        lo = r["earliest_offset"][i] if i < len(r["earliest_offset"]) else {}
        lag = r["lag"][i] if i < len(r["lag"]) else {}
        iq = next((v for k, v in ev.items() if k.endswith("rf.iq.v1")), None)
        low = next((v for k, v in lo.items() if k.endswith("rf.iq.v1")), None)
        lag_sum = sum(v for v in lag.values() if isinstance(v, int))
        cells = [f"{r['rss_mb'][k][i]:.0f}" if r["rss_mb"][k][i] is not None else "-"
                 for k in roles_]  # fmt: skip
        t.add_row(f"{ts:.0f}", *cells, f"{iq or 0:,}", f"{low or 0:,}", f"{lag_sum:,}")
    ctx.console.print(t)
    g = r["broker_growth_mb_per_min"]
    ctx.console.print(
        f"broker RSS growth: {'n/a' if g is None else f'{g:.1f} MB/min'}; restarts: "
        f"{r['restarts'] or 'none'}; heimdall up exited {r['exit_code']}"
    )
    path = ctx.options.get("json")
    if path:
        Path(path).write_text(json.dumps(r, indent=1))
        ctx.console.print(f"[dim]written to {path}[/dim]")
