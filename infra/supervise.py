"""Supervision of ``heimdall up``'s child processes: restart with backoff, give up on a crash loop.

A child that dies (any exit, including 0: a stage is meant to run until it is stopped) is
restarted after a delay that doubles with every restart of that child in the last
``window_s`` seconds,

.. math:: d_k = \\min(b \\, 2^k, \\; b_{max}), \\qquad k = \\#\\{\\text{restarts in } (t - W, t]\\},

the classic exponential backoff of process supervisors (Erlang/OTP's restart intensity,
systemd's ``StartLimitBurst``/``StartLimitIntervalSec``). A child that already restarted
``max_restarts`` times within the window and dies again is in a crash loop: the supervisor
gives up with one line naming the child and its last exit code, and the run ends.

:class:`Supervisor` is generic over anything with a ``name``, ``running``, ``returncode`` and
``start()`` (:class:`heimdall.infra.processes.Child`), and takes the time as an argument, so
the policy is tested without processes (``tests/unit/infra/test_supervise.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

__all__ = ["RestartPolicy", "Supervised", "Supervisor"]


class Supervised(Protocol):
    """What the supervisor needs of a child process."""

    name: str

    @property
    def running(self) -> bool: ...

    @property
    def returncode(self) -> int | None: ...

    def start(self) -> Any: ...


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a dead child, and when to give up.

    Parameters
    ----------
    max_restarts
        Restarts of one child allowed within ``window_s``; its next death is a crash loop.
    window_s
        Length of the sliding window, s.
    backoff_s
        Delay before the first restart, s; doubled for every restart in the window.
    backoff_max_s
        Longest delay, s.
    """

    max_restarts: int = 5
    window_s: float = 60.0
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any) -> RestartPolicy:
        """The policy of the ``HEIMDALL_RESTART_*`` settings (``HeimdallSettings``)."""
        return cls(
            max_restarts=settings.restart_max,
            window_s=settings.restart_window_s,
            backoff_s=settings.restart_backoff_s,
            backoff_max_s=settings.restart_backoff_max_s,
        )

    def delay_s(self, restarts_at: Iterable[float], now: float) -> float | None:
        """Delay before restarting a child that restarted at ``restarts_at`` and died at ``now``.

        None for a crash loop: ``max_restarts`` restarts already within the last ``window_s``.
        """
        k = sum(1 for t in restarts_at if now - t < self.window_s)
        if k >= self.max_restarts:
            return None
        return float(min(self.backoff_s * 2.0**k, self.backoff_max_s))


@dataclass
class _Pending:
    due: float
    returncode: int | None


@dataclass
class Supervisor:
    """Watches children, restarts the dead ones when their backoff has passed.

    Call :meth:`check` periodically with the children and the current (monotonic) time.
    """

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    restarts: dict[str, int] = field(default_factory=dict)
    """Restarts per child name so far (the summary's ``restarts``)."""
    gave_up: str | None = None
    """The one-line reason once a child is in a crash loop (then nothing more is restarted)."""
    gave_up_on: str | None = None
    """The name of that child."""
    _history: dict[str, list[float]] = field(default_factory=dict)
    _pending: dict[str, _Pending] = field(default_factory=dict)

    def check(self, children: Iterable[Supervised], now: float) -> list[str]:
        """Notice the children that died and restart those whose delay has passed.

        Returns one line per thing that happened (a death, a restart, giving up), for the
        console. After giving up, returns nothing more: the caller ends the run.
        """
        if self.gave_up is not None:
            return []
        lines: list[str] = []
        for child in children:
            self.restarts.setdefault(child.name, 0)
            if child.running:
                continue
            pending = self._pending.get(child.name)
            if pending is None:
                code = child.returncode
                delay = self.policy.delay_s(self._history.get(child.name, []), now)
                if delay is None:
                    self.gave_up_on = child.name
                    self.gave_up = (
                        f"{child.name} is in a crash loop: it exited with {code} after "
                        f"{self.policy.max_restarts} restarts within "
                        f"{self.policy.window_s:g} s; giving up"
                        if self.policy.max_restarts > 0
                        else f"{child.name} exited with {code} (restarts are off)"
                    )
                    log.error("%s", self.gave_up)
                    return [*lines, self.gave_up]
                self._pending[child.name] = pending = _Pending(now + delay, code)
                line = f"{child.name} exited with {code}: restarting in {delay:g} s"
                log.warning("%s", line)
                lines.append(line)
            if now >= pending.due:
                del self._pending[child.name]
                try:
                    child.start()
                except OSError as exc:
                    self.gave_up_on = child.name
                    self.gave_up = f"{child.name} cannot be restarted: {exc}"
                    log.error("%s", self.gave_up)
                    return [*lines, self.gave_up]
                self._history.setdefault(child.name, []).append(now)
                self.restarts[child.name] = self.restarts.get(child.name, 0) + 1
                line = f"{child.name} restarted (restart {self.restarts[child.name]})"
                log.warning("%s", line)
                lines.append(line)
        return lines

    def status(self, name: str, now: float) -> str:
        """``running``, or ``restarting in N s (exit C)`` while a restart is pending."""
        pending = self._pending.get(name)
        if pending is None:
            return "running"
        return f"restarting in {max(pending.due - now, 0.0):.0f} s (exit {pending.returncode})"
