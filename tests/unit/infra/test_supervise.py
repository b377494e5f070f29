"""The restart policy and the supervisor, with fake children and a given clock (no processes)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from heimdall.infra.supervise import RestartPolicy, Supervisor


@dataclass
class FakeChild:
    name: str
    running: bool = True
    returncode: int | None = None
    starts: int = 0

    def die(self, code: int) -> None:
        self.running, self.returncode = False, code

    def start(self) -> FakeChild:
        self.running, self.returncode = True, None
        self.starts += 1
        return self


def test_delay_doubles_per_restart_in_window_and_is_capped() -> None:
    p = RestartPolicy(max_restarts=10, window_s=60.0, backoff_s=0.5, backoff_max_s=3.0)
    assert p.delay_s([], now=100.0) == 0.5
    assert p.delay_s([99.0], now=100.0) == 1.0
    assert p.delay_s([98.0, 99.0], now=100.0) == 2.0
    assert p.delay_s([97.0, 98.0, 99.0], now=100.0) == 3.0  # 4.0 capped
    # restarts older than the window do not count
    assert p.delay_s([10.0, 20.0, 39.9], now=100.0) == 0.5
    assert p.delay_s([10.0, 40.5], now=100.0) == 1.0


def test_crash_loop_is_max_restarts_within_the_window() -> None:
    p = RestartPolicy(max_restarts=5, window_s=60.0)
    five = [50.0, 60.0, 70.0, 80.0, 90.0]
    assert p.delay_s(five, now=100.0) is None
    assert p.delay_s(five[1:], now=100.0) is not None
    assert p.delay_s(five, now=110.5) is not None  # the first one left the window
    assert RestartPolicy(max_restarts=0).delay_s([], now=0.0) is None  # never restart


def test_supervisor_restarts_after_backoff_and_counts() -> None:
    sup = Supervisor(RestartPolicy(max_restarts=5, window_s=60.0, backoff_s=1.0))
    w, d = FakeChild("streams"), FakeChild("dashboard")
    assert sup.check([w, d], now=0.0) == []
    assert sup.restarts == {"streams": 0, "dashboard": 0}
    w.die(-9)
    lines = sup.check([w, d], now=10.0)
    assert lines == ["streams exited with -9: restarting in 1 s"]
    assert sup.status("streams", now=10.2) == "restarting in 1 s (exit -9)"
    assert sup.check([w, d], now=10.5) == []  # not yet due
    assert w.starts == 0
    assert sup.check([w, d], now=11.0) == ["streams restarted (restart 1)"]
    assert w.starts == 1 and w.running
    assert sup.status("streams", now=11.0) == "running"
    assert sup.restarts == {"streams": 1, "dashboard": 0}
    w.die(1)  # second death within the window: twice the delay
    assert sup.check([w, d], now=20.0) == ["streams exited with 1: restarting in 2 s"]
    assert sup.check([w, d], now=21.9) == []
    sup.check([w, d], now=22.0)
    assert sup.restarts["streams"] == 2 and sup.gave_up is None


def test_supervisor_gives_up_on_a_crash_loop_naming_child_and_exit_code() -> None:
    sup = Supervisor(RestartPolicy(max_restarts=3, window_s=60.0, backoff_s=1.0))
    sim = FakeChild("simulator")
    t = 0.0
    for _ in range(3):
        sim.die(2)
        sup.check([sim], now=t)
        t += 10.0
        sup.check([sim], now=t)
        assert sim.running
    sim.die(2)
    lines = sup.check([sim], now=t)
    assert sup.gave_up is not None
    assert lines[-1] == sup.gave_up
    assert "simulator" in sup.gave_up and "exited with 2" in sup.gave_up
    assert "3 restarts within 60 s" in sup.gave_up
    assert sup.gave_up_on == "simulator"
    assert sup.restarts == {"simulator": 3}
    assert sup.check([sim], now=t + 100.0) == []  # given up: nothing more
    assert not sim.running


def test_a_child_that_cannot_start_gives_up() -> None:
    class Broken(FakeChild):
        def start(self) -> FakeChild:
            raise OSError("no such file")

    sup = Supervisor(RestartPolicy(backoff_s=0.0))
    b = Broken("archive")
    b.die(1)
    lines = sup.check([b], now=0.0)
    assert sup.gave_up == "archive cannot be restarted: no such file"
    assert lines[-1] == sup.gave_up


def test_restarts_off_gives_up_at_the_first_death() -> None:
    sup = Supervisor(RestartPolicy(max_restarts=0))
    c = FakeChild("dashboard")
    c.die(-15)
    assert sup.check([c], now=0.0) == ["dashboard exited with -15 (restarts are off)"]
    assert sup.restarts == {"dashboard": 0}


@pytest.mark.parametrize("backoff_s", [0.0, 2.0])
def test_zero_backoff_restarts_in_the_same_check(backoff_s: float) -> None:
    sup = Supervisor(RestartPolicy(backoff_s=backoff_s))
    c = FakeChild("network")
    c.die(0)
    sup.check([c], now=5.0)
    assert c.running is (backoff_s == 0.0)
