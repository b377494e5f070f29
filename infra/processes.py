"""Child processes of the embedded runtime: started with the parent's settings, never orphaned."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from heimdall.infra.broker import die_with_parent

log = logging.getLogger(__name__)


class Child:
    """A ``heimdall`` sub-command (or ``module``'s ``__main__``) running as a child process,
    its output in a log file.

    The child receives SIGTERM if this process dies (``PR_SET_PDEATHSIG``), and :meth:`stop`
    sends SIGTERM, waits, then SIGKILLs: no stage outlives ``heimdall up``.
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        module: str = "heimdall.infra.cli",
    ) -> None:
        self.name = name
        self.args = args
        self.module = module
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,  # a terminal's Ctrl-C is for the parent, who stops us
                preexec_fn=die_with_parent,
            )
        log.info("started %s pid %s", self.name, self.proc.pid)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout_s: float) -> bool:
        """Wait for the child to exit by itself; True if it did."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        if not self.wait(timeout_s):
            log.warning("%s did not stop in %.0f s: killing it", self.name, timeout_s)
            self.proc.kill()
            self.proc.wait()

    def tail(self, n_lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n_lines:])
        except OSError:
            return ""


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a child process: ours, ``extra``, unbuffered output, and one BLAS
    thread unless set otherwise — the children (stream workers, sink, receivers) are several
    processes on a few cores, and OpenBLAS threads spinning on small products doubled the CPU
    time of the TDOA lags for the same wall time (bench tdoa)."""
    env = dict(os.environ)
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env
