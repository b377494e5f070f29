"""The dashboard of a running embedded pipeline (``heimdall up`` on the seed network, real
time) in headless Chromium: the seven seed receivers appear, a fix with its ellipses appears
within 30 s of the start, the pipeline panel's counts grow, and ``/api/state`` lists the
seven receivers and a fix with its covariance. A screenshot is written as an artefact
(``$HEIMDALL_TEST_ARTIFACTS``, default the test's temporary directory), and one zoomed on a
fix (``#view=lat,lon,zoom``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from heimdall.core.settings import load_settings
from heimdall.infra.runtime import Runtime, UpOptions
from tests.browser import chromium, wait_for

pytestmark = pytest.mark.e2e

SEED_RECEIVERS = 7
FIRST_FIX_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dashboard_of_the_seed_network(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    artifacts = Path(os.environ.get("HEIMDALL_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    settings = load_settings(data_dir=tmp_path / "heimdall", partitions=2)
    opts = UpOptions(duration_s=120.0, live=False, workers=1, dashboard_port=port)
    runtime = Runtime(settings, opts, Console(file=open(tmp_path / "out.txt", "w")))  # noqa: SIM115
    errors: list[BaseException] = []

    def run() -> None:
        try:
            runtime.run()
        except BaseException as exc:
            errors.append(exc)

    with chromium() as browser:
        t0 = time.monotonic()
        thread = threading.Thread(target=run, name="heimdall-up", daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{port}/"

            def loaded(d: Any) -> bool:
                if errors:
                    raise AssertionError(f"heimdall up failed: {errors[0]!r}")
                try:
                    httpx.get(url + "api/config", timeout=1)
                except httpx.TransportError:
                    return False
                d.get(url)
                return True

            wait_for(browser, "the dashboard to listen", loaded, 60)

            def receivers(d: Any) -> int:
                return len(d.find_elements(By.CSS_SELECTOR, "#receivers g.receiver"))

            wait_for(browser, "the seven seed receivers", lambda d: receivers(d) == 7, 60)
            left = FIRST_FIX_S - (time.monotonic() - t0)
            wait_for(
                browser,
                "a fix with its ellipse within 30 s of the start",
                lambda d: d.find_elements(By.CSS_SELECTOR, "#fixes g.fix path.ellipse-1"),
                max(left, 0.1),
            )

            def iq_count(d: Any) -> int:
                tds = d.find_elements(
                    By.CSS_SELECTOR, f"#pipeline-rates tr[data-topic='{settings.topics.iq}'] td"
                )
                return int(tds[2].text.replace(",", "")) if len(tds) == 3 else 0

            first = wait_for(browser, "the pipeline panel", iq_count, 30)
            wait_for(browser, "the pipeline panel to update", lambda d: iq_count(d) > first, 30)

            # a receiver selected: its power, SNR and PSD from the live measurements
            def select_torino(d: Any) -> bool:
                d.find_element(
                    By.CSS_SELECTOR, "#receivers g.receiver[data-id='torino'] circle"
                ).click()
                return bool(d.find_elements(By.CSS_SELECTOR, "#rx-psd path"))

            wait_for(browser, "torino's measurements", select_torino, 30)
            time.sleep(3.0)  # a few seconds of power and SNR
            browser.save_screenshot(str(artifacts / "dashboard-seed-network.png"))

            state = httpx.get(url + "api/state", timeout=10).json()
            assert len(state["receivers"]) == SEED_RECEIVERS
            assert all(r["state"] == "online" for r in state["receivers"])
            fix = state["fixes"][0]
            assert fix["cov_ee_m2"] > 0 and fix["cov_nn_m2"] > 0
            assert {"features", "associate", "localize", "sink"} <= set(state["lag"])

            # zoomed on a fix (#view=lat,lon,zoom): its ellipses at their size
            browser.get("about:blank")
            browser.get(f"{url}#view={fix['lat']:.5f},{fix['lon']:.5f},16")
            wait_for(
                browser,
                "the fix's ellipses, zoomed",
                lambda d: d.find_elements(By.CSS_SELECTOR, "#fixes g.fix path.ellipse-2"),
                30,
            )
            time.sleep(2.0)  # a few more fixes for the trail
            browser.save_screenshot(str(artifacts / "dashboard-seed-zoom.png"))
        finally:
            runtime.stop_event.set()
            thread.join(120)
    assert not thread.is_alive(), "heimdall up did not stop"
    assert not errors, errors
