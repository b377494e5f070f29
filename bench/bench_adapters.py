"""CPU of the receiver-adapter process: many live connections, Kafka producing included.

One process (this one) runs the adapters the way ``heimdall receivers run`` does: one asyncio
loop reading every socket, a :class:`~heimdall.producers.adapters.pump.KafkaPump` thread
encoding and producing to an embedded Tansu broker (its own process) with one producer. The
servers run in a separate process (``multiprocessing`` spawn) so their CPU is not counted.
CPU is ``getrusage(RUSAGE_SELF)`` user + system time over a wall-clock window after a
warm-up, as a % of one core, split by thread from ``/proc/self/task/*/stat``: the event loop
(sockets, DSP, chunking), the pump (Avro encoding, ``produce``) and librdkafka's own threads
(batching, zstd compression, network).

Scenarios (native rates; the target is < 20 % of one core for 50 receivers):

* **50 × ci16 @ 12 kS/s** — a KiwiSDR-like stream: 12 kS/s complex int16 (48 KB/s each) in
  512-sample frames, ~23 frames/s per connection, through a minimal adapter
  (:class:`Ci16TcpAdapter`) on the same machinery (buffer, stall detector, statuses, pump).
* **N × rtl_tcp @ 1.152 MS/s** — the real :class:`~heimdall.producers.adapters.rtltcp.RtlTcpAdapter`
  (u8 I/Q, 2.3 MB/s each) mixed and decimated ×96 to 12 kHz. 1.152 MS/s is the integer
  multiple of 12 kHz closest to the common 1.024 MS/s.
* **50 × rtl_tcp @ 288 kS/s** — the lowest rtl-sdr rate band (×24), 50 dongles' worth.

``python -m bench.bench_adapters [--quick]`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Context, fmt, machine_line, table
from heimdall.core import kafka
from heimdall.core.settings import TopicNames, load_settings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.broker import EmbeddedBroker
from heimdall.producers.adapters.base import AdapterOptions, ReceiverAdapter, ReceiverInfo
from heimdall.producers.adapters.pump import KafkaPump
from heimdall.producers.adapters.rtltcp import RtlTcpAdapter, RtlTcpConfig
from heimdall.producers.adapters.runtime import serve_adapters
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import ClockSource, IqChunk, Position, SampleFormat

F_CH = 145_500_000.0
KIWI_RATE = 12_000
KIWI_FRAME = 512  # samples per frame, as KiwiSDR's IQ frames


# --------------------------------------------------------------------- adapter


class Ci16TcpAdapter(ReceiverAdapter):
    """A minimal adapter: raw little-endian complex int16 over TCP, in fixed chunks.

    It is what a websocket adapter reduces to once frames are unwrapped, and shows the
    subclassing contract: ``open`` connects, ``stream`` reads, calls ``data_received`` and
    ``emit``; the base class does the rest.
    """

    kind = "ci16"
    label = "ci16 server"

    def __init__(
        self,
        info: ReceiverInfo,
        host: str,
        port: int,
        rate_hz: float,
        chunk_samples: int = 2400,
        options: AdapterOptions | None = None,
    ) -> None:
        super().__init__(info, options)
        self.host, self.port, self.rate_hz, self.chunk_samples = host, port, rate_hz, chunk_samples
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending = bytearray()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def reset(self) -> None:
        self._pending.clear()

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = self._reader = None

    async def stream(self) -> None:
        assert self._reader is not None
        need = 4 * self.chunk_samples
        while data := await self._reader.read(1 << 16):
            now = time.time_ns()
            self.data_received(len(data))
            self._pending += data
            while len(self._pending) >= need:
                raw = bytes(self._pending[:need])
                del self._pending[:need]
                v = np.frombuffer(raw, dtype="<i2").astype(np.float32) * np.float32(1 / 32768)
                backlog = len(self._pending) // 4 + self.chunk_samples
                self.emit(
                    IqChunk(
                        receiver_id=self.info.receiver_id,
                        seq=self.next_seq(),
                        t_ns=now - round(backlog * 1e9 / self.rate_hz),
                        clock=ClockSource.NTP,
                        center_freq_hz=F_CH,
                        sample_rate_hz=self.rate_hz,
                        sample_format=SampleFormat.CI16,
                        iq=v.view(np.complex64),
                        full_scale_dbm=-20.0,
                        position=self.info.position,
                        source=self.kind,
                        published_ns=now,
                    )
                )


# --------------------------------------------------------------------- servers


async def _ci16_server(host: str, stop: asyncio.Event) -> asyncio.Server:
    """A server sending 512-sample ci16 frames at 12 kS/s to every client."""
    rng = np.random.default_rng(1)
    n = KIWI_RATE  # one second, looped
    k = np.arange(n)
    x = 0.3 * np.exp(2j * np.pi * 1500 * k / KIWI_RATE) + 0.01 * (
        rng.standard_normal(n) + 1j * rng.standard_normal(n)
    )
    iq = np.empty(2 * n, dtype="<i2")
    iq[0::2] = np.rint(x.real * 32767)
    iq[1::2] = np.rint(x.imag * 32767)
    loop_bytes = iq.tobytes() * 2
    frame = 4 * KIWI_FRAME

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        t0, sent, pos = time.monotonic(), 0, 0
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while not stop.is_set():
                writer.write(loop_bytes[pos : pos + frame])
                pos = (pos + frame) % (4 * n)
                sent += KIWI_FRAME
                await writer.drain()
                ahead = t0 + sent / KIWI_RATE - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        writer.close()

    return await asyncio.start_server(handle, host, 0)


def _serve(kind: str, n: int, rate: int, conn: Connection) -> None:
    """Child process: ``n`` servers of ``kind``; sends the ports, runs until told to stop."""
    from tests.unit.producers.adapters.rtltcp_server import RtlTcpTestServer, Tone

    async def main() -> None:
        stop = asyncio.Event()
        ports: list[int] = []
        servers: list[Any] = []
        for _ in range(n):
            if kind == "ci16":
                server = await _ci16_server("127.0.0.1", stop)
                servers.append(server)
                ports.append(int(server.sockets[0].getsockname()[1]))
            else:
                srv = RtlTcpTestServer(
                    tones=[Tone(F_CH + 1500, 0.3)],
                    realtime=True,
                    loop_s=1.0,
                    block_bytes=max(4096, 2 * rate // 50),  # ~20 ms blocks
                    sample_rate_hz=rate,
                )
                await srv.start()
                servers.append(srv)
                ports.append(srv.port)
        conn.send(ports)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "stop"
        t = os.times()
        conn.send(t.user + t.system)
        stop.set()
        await asyncio.sleep(0.2)  # let the senders see the stop
        for s in servers:
            if isinstance(s, asyncio.Server):
                s.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.wait_closed(), 2.0)
            else:
                await s.close()

    asyncio.run(main())


# --------------------------------------------------------------------- measuring


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of every thread of this process: tid → (name, user + system)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


@dataclass
class Result:
    scenario: str
    receivers: int
    rate_hz: float
    mb_in_per_s: float
    chunks_per_s: float
    cpu_pct: float
    loop_pct: float
    pump_pct: float
    rdkafka_pct: float
    server_pct: float
    dropped: int
    errors: int
    delivered: int
    undelivered: int


def measure(
    scenario: str,
    kind: str,
    n: int,
    rate: int,
    bootstrap: str,
    warmup_s: float,
    window_s: float,
) -> Result:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(kind, n, rate, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the server process did not start")
        ports: list[int] = parent.recv()
        unique = uuid.uuid4().hex[:8]
        topics = TopicNames(
            **{k: f"bench{unique}.{v}" for k, v in TopicNames().model_dump().items()}
        )
        settings = load_settings(
            data_dir=Path(tempfile.gettempdir()) / f"heimdall-bench-{unique}",
            topics=topics,
            kafka={"bootstrap_servers": bootstrap},
        )
        ensure_topics(kafka.admin(settings), heimdall_topics(settings))
        opts = AdapterOptions(stall_timeout_s=10.0, status_interval_s=5.0)
        adapters: list[ReceiverAdapter] = []
        for i, port in enumerate(ports):
            info = ReceiverInfo(
                receiver_id=f"{kind}-{i:02d}",
                kind=kind,
                position=Position(lat_deg=45.0 + i * 0.01, lon_deg=7.5),
                url=f"127.0.0.1:{port}",
            )
            if kind == "ci16":
                adapters.append(Ci16TcpAdapter(info, "127.0.0.1", port, KIWI_RATE, options=opts))
            else:
                cfg = RtlTcpConfig(host="127.0.0.1", port=port, freq_hz=F_CH,
                                   sample_rate_hz=rate, gain_db=30.0)  # fmt: skip
                adapters.append(RtlTcpAdapter(info, cfg, opts))
        publisher = Publisher(settings)
        pump = KafkaPump(publisher, settings.topics)
        for a in adapters:
            pump.attach(a)
        pump.start()
        window: dict[str, Any] = {}

        async def main() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(serve_adapters(adapters, stop))
            await asyncio.sleep(warmup_s)
            window["r0"] = resource.getrusage(resource.RUSAGE_SELF)
            window["t0"] = _thread_cpu()
            window["w0"] = time.monotonic()
            window["b0"] = sum(a.stats.bytes_in for a in adapters)
            window["c0"] = sum(a.stats.chunks for a in adapters)
            await asyncio.sleep(window_s)
            window["r1"] = resource.getrusage(resource.RUSAGE_SELF)
            window["t1"] = _thread_cpu()
            window["w1"] = time.monotonic()
            window["b1"] = sum(a.stats.bytes_in for a in adapters)
            window["c1"] = sum(a.stats.chunks for a in adapters)
            stop.set()
            await task

        try:
            asyncio.run(main())
        finally:
            undelivered = pump.stop()
        parent.send("stop")
        server_cpu_s = parent.recv() if parent.poll(10) else float("nan")
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    wall = window["w1"] - window["w0"]
    r0, r1 = window["r0"], window["r1"]
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    by = {"loop": 0.0, "pump": 0.0, "rdk": 0.0}
    main_tid = threading.main_thread().native_id
    for tid, (name, t1) in window["t1"].items():
        t0 = window["t0"].get(tid, (name, 0.0))[1]
        if tid == main_tid:
            by["loop"] += t1 - t0
        elif name.startswith("rdk:"):
            by["rdk"] += t1 - t0
        else:
            by["pump"] += t1 - t0  # the pump (the only other Python thread here)
    pct = 100.0 / wall
    return Result(
        scenario=scenario,
        receivers=n,
        rate_hz=rate,
        mb_in_per_s=(window["b1"] - window["b0"]) / wall / 1e6,
        chunks_per_s=(window["c1"] - window["c0"]) / wall,
        cpu_pct=cpu * pct,
        loop_pct=by["loop"] * pct,
        pump_pct=by["pump"] * pct,
        rdkafka_pct=by["rdk"] * pct,
        server_pct=server_cpu_s / (warmup_s + window_s + 1.0) * 100.0,
        dropped=sum(a.buffer.dropped for a in adapters),
        errors=sum(a.errors for a in adapters),
        delivered=pump.stats.chunks,
        undelivered=undelivered,
    )


def run(ctx: Context) -> None:
    warmup, window = (3.0, 6.0) if ctx.quick else (5.0, 20.0)
    scenarios = [
        ("ci16 @ 12 kS/s (KiwiSDR-like)", "ci16", 50, KIWI_RATE),
        ("rtl_tcp @ 1.152 MS/s → 12 kHz", "rtltcp", 2 if ctx.quick else 4, 1_152_000),
        ("rtl_tcp @ 288 kS/s → 12 kHz", "rtltcp", 50, 288_000),
    ]
    t = table(
        "adapters — one process, one loop, one producer; CPU as % of one core",
        ["scenario", "receivers", "MB/s in", "chunks/s", "CPU %", "per rx %", "loop %",
         "pump %", "librdkafka %", "dropped", "errors", "server proc %"],
        f"getrusage(SELF) over {window:.0f} s after {warmup:.0f} s of warm-up, Kafka producing "
        "(zstd, embedded Tansu) included; loop = event-loop thread (sockets, DSP, chunking), "
        "pump = Avro encoding + produce, librdkafka = its threads (batching, compression, "
        "network); the servers run in another process (their CPU: last column, approx.); "
        "chunks are 2400 samples (0.2 s) of ci16 at 12 kHz; target < 20 % for 50 receivers",
    )  # fmt: skip
    results = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "t.log") as b,
        ctx.progress() as progress,
    ):
        task = progress.add_task("adapters", total=len(scenarios))
        for name, kind, n, rate in scenarios:
            results.append(measure(name, kind, n, rate, b.bootstrap_servers, warmup, window))
            progress.advance(task)
    for r in results:
        t.add_row(
            r.scenario, str(r.receivers), fmt(r.mb_in_per_s, 2), fmt(r.chunks_per_s, 1),
            fmt(r.cpu_pct, 1), fmt(r.cpu_pct / r.receivers, 2), fmt(r.loop_pct, 1),
            fmt(r.pump_pct, 1), fmt(r.rdkafka_pct, 1), f"{r.dropped:,}", f"{r.errors:,}",
            fmt(r.server_pct, 0),
        )  # fmt: skip
    ctx.show(t)


def main() -> None:
    from rich.console import Console

    parser = argparse.ArgumentParser(prog="python -m bench.bench_adapters")
    parser.add_argument("--quick", action="store_true", help="short windows")
    args = parser.parse_args()
    console = Console(width=160)
    console.print(machine_line())
    run(Context(console=console, quick=args.quick))


if __name__ == "__main__":
    main()
