"""The dashboard server with 1, 10 and 50 open pages at 100 receivers: CPU, memory, latency.

An embedded Tansu broker; ``heimdall dashboard`` as a process of its own (its CPU and
resident memory read from ``/proc/<pid>``); this process publishes the load of a 100-receiver
network — one ``Measurement`` per receiver every 0.2 s (500/s on ``rf.features``), a
``ReceiverStatus`` per receiver every 10 s, 2 channels × 2 methods of ``Localization`` per
second — and opens the pages: WebSocket clients in one asyncio loop, and, where Chromium is
installed, one real headless page whose ``window.heimdallDrawLatencyMs`` (published → drawn)
is read at the end.

Latency is ``receive time − published_ns`` of each pushed fix, on the same clock (one
machine); the push coalesces changes for 50 ms, and the feed's fetch waits up to
``KAFKA_FETCH_MAX_WAIT_MS`` (100 ms).

``python -m bench.bench_dashboard [--quick]`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Context, fmt, table
from heimdall.core import kafka
from heimdall.core.settings import load_settings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.broker import EmbeddedBroker
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import (
    ClockSource,
    Localization,
    Measurement,
    Position,
    ReceiverState,
    ReceiverStatus,
)

RECEIVERS = 100
PAGES = (1, 10, 50)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Load(threading.Thread):
    """Publishes a 100-receiver network's dashboard-relevant events until stopped."""

    def __init__(self, settings: Any) -> None:
        super().__init__(name="bench-dashboard-load", daemon=True)
        self.settings = settings
        self.stop = threading.Event()
        rng = np.random.default_rng(7)
        self.positions = [
            (45.0 + rng.uniform(-0.5, 0.5), 8.0 + rng.uniform(-0.7, 0.7)) for _ in range(RECEIVERS)
        ]

    def run(self) -> None:
        pub, t = Publisher(self.settings), self.settings.topics
        tick, next_status = 0, 0.0
        while not self.stop.is_set():
            t_start = time.monotonic()
            now = time.time_ns()
            if t_start >= next_status:
                for i, (lat, lon) in enumerate(self.positions):
                    s = ReceiverStatus(
                        receiver_id=f"rx-{i:03d}",
                        kind="sim",
                        position=Position(lat_deg=lat, lon_deg=lon),
                        state=ReceiverState.ONLINE,
                        updated_ns=now,
                    )
                    pub.publish(t.receivers, s.receiver_id, s)
                next_status = t_start + 10.0
            for i, (lat, lon) in enumerate(self.positions):
                m = Measurement(
                    chunk_id=f"c{tick}-{i}",
                    receiver_id=f"rx-{i:03d}",
                    t_ns=now,
                    duration_s=0.2,
                    clock=ClockSource.NTP,
                    position=Position(lat_deg=lat, lon_deg=lon),
                    channel_id="145.5000MHz",
                    channel_freq_hz=145.5e6,
                    channel_bw_hz=12.5e3,
                    power_dbm=-90.0 + (i % 20),
                    noise_floor_dbm_hz=-170.0,
                    snr_db=20.0,
                    freq_offset_hz=0.0,
                    occupied_bw_hz=1e4,
                    detected=True,
                    psd_dbm_hz=tuple(np.full(32, -160.0)),
                )
                pub.publish(t.features, m.channel_id, m)
            if tick % 5 == 0:  # once a second: 2 channels x 2 methods
                for ch, lon in (("145.5000MHz", 8.2), ("145.6000MHz", 7.8)):
                    for method in ("rss-ml", "rss-ml+track"):
                        loc = Localization(
                            observation_id=f"o{tick}",
                            channel_id=ch,
                            t_ns=now,
                            position=Position(lat_deg=45.0, lon_deg=lon),
                            cov_ee_m2=2500.0,
                            cov_en_m2=100.0,
                            cov_nn_m2=4900.0,
                            method=method,
                            n_receivers=RECEIVERS,
                            processing_latency_s=0.1,
                            published_ns=time.time_ns(),
                        )
                        pub.publish(t.localizations, ch, loc)
            pub.producer.poll(0)
            tick += 1
            self.stop.wait(max(0.2 - (time.monotonic() - t_start), 0.0))
        pub.flush()


async def _pages(url: str, n: int, seconds: float) -> tuple[list[float], list[int]]:
    """n WebSocket pages for ``seconds``: fix latencies (ms) and messages per page."""
    import aiohttp

    latencies: list[float] = []
    counts = [0] * n

    async def page(k: int, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(url) as ws:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = await ws.receive(timeout=left)
                except TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                counts[k] += 1
                if k == 0:
                    now_ns = time.time_ns()
                    data = json.loads(msg.data)
                    if data.get("type") == "update":
                        for f in data.get("fixes", ()):
                            latencies.append((now_ns - f["published_ns"]) / 1e6)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(page(k, session) for k in range(n)))
    return latencies, counts


def _browser_latency(url: str, seconds: float) -> list[float] | None:
    """Published → drawn (ms) measured in a headless Chromium page, or None without one."""
    import shutil

    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver_path is None:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        d.get(url)
        time.sleep(seconds)
        return [float(v) for v in d.execute_script("return window.heimdallDrawLatencyMs") or []]
    finally:
        d.quit()


def _into(holder: dict[str, Any], fn: Any, *args: Any) -> None:
    holder["b"] = fn(*args)


def run(ctx: Context) -> None:
    seconds = 8.0 if ctx.quick else 20.0
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
    ):
        settings = load_settings(
            data_dir=Path(tmp) / "heimdall", kafka={"bootstrap_servers": broker.bootstrap_servers}
        )
        ensure_topics(kafka.admin(settings), heimdall_topics(settings))
        port = _free_port()
        env = {**os.environ, **settings.to_env()}
        log = open(Path(tmp) / "dashboard.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "heimdall.infra.dashboard", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        load = Load(settings)
        rows = []
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.2)
            load.start()
            time.sleep(3.0)  # warm-up: the feed reaches the live end
            url = f"http://127.0.0.1:{port}/"
            for n in PAGES:
                cpu0, t0 = _cpu_s(proc.pid), time.monotonic()
                browser: list[float] | None = None
                holder: dict[str, Any] = {}
                bt = threading.Thread(
                    target=_into, args=(holder, _browser_latency, url, seconds), daemon=True
                )
                bt.start()
                lat, counts = asyncio.run(_pages(url.replace("http", "ws") + "ws", n, seconds))
                bt.join(60)
                browser = holder.get("b")
                cpu = (_cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0)
                rows.append(
                    [
                        str(n),
                        fmt(100 * cpu, 1),
                        fmt(_rss_mb(proc.pid), 0),
                        fmt(np.median(counts) / seconds, 1),
                        fmt(float(np.percentile(lat, 50)), 0) if lat else "–",
                        fmt(float(np.percentile(lat, 99)), 0) if lat else "–",
                        fmt(float(np.percentile(browser, 50)), 0) if browser else "–",
                        fmt(float(np.percentile(browser, 99)), 0) if browser else "–",
                    ]
                )
        finally:
            load.stop.set()
            load.join(30)
            proc.terminate()
            proc.wait(30)
            log.close()
    t = table(
        f"dashboard server, {RECEIVERS} receivers (500 measurements/s, 4 fixes/s)",
        [
            "pages",
            "CPU % of a core",
            "RSS MB",
            "msgs/s per page",
            "push p50 ms",
            "push p99 ms",
            "drawn p50 ms",
            "drawn p99 ms",
        ],
        f"{seconds:.0f} s per row; pages: WebSocket clients, plus one headless Chromium page "
        "where installed (drawn: published → drawn, measured in that page); push: published → "
        "received by a client; CPU and RSS of the dashboard process",
    )
    for row in rows:
        t.add_row(*row)
    ctx.show(t)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    from bench.__main__ import make_console

    run(Context(console=make_console(), quick=parser.parse_args().quick))
