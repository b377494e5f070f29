"""The dashboard page in a real headless Chromium (Selenium + the distribution's chromedriver)
against the real embedded broker: the receivers appear with their state, a fix with its
ellipses, the pipeline panel fills, the time slider shows an earlier fix, and without the
token the page is refused. Screenshots go to ``$HEIMDALL_TEST_ARTIFACTS`` (default: the
test's temporary directory).

Chromium is installed by ``.ci/run`` (``apt-get install chromium chromium-driver``); where it
is absent these tests skip and say so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from heimdall.consumers.dashboard.config import DashboardSettings
from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.dashboard import Dashboard, start_dashboard
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import (
    ClockSource,
    Localization,
    Measurement,
    Position,
    ReceiverState,
    ReceiverStatus,
    Truth,
    WaterfallRow,
)
from tests.browser import chromium, wait_for

pytestmark = pytest.mark.integration

TIMEOUT_S = 30.0
CHANNEL = "145.5000MHz"
#: the seed network's seven receivers (producers/sim/library.py)
SEED = {
    "torino": (45.07, 7.69),
    "milano-baggio": (45.46, 9.11),
    "genova": (44.41, 8.93),
    "montanaro": (45.23, 7.85),
    "coazze": (45.05, 7.30),
    "aquila-di-giaveno": (45.04, 7.31),
    "passo-del-giovi": (44.56, 8.94),
}


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ.get("HEIMDALL_TEST_ARTIFACTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _wait(driver: Any, what: str, cond: Any) -> Any:
    return wait_for(driver, what, cond, TIMEOUT_S)


def _publish_scene(settings: HeimdallSettings, t_early_ns: int, t_late_ns: int) -> None:
    pub = Publisher(settings)
    for i, (rx, (lat, lon)) in enumerate(SEED.items()):
        s = ReceiverStatus(
            receiver_id=rx,
            kind="sim",
            position=Position(lat_deg=lat, lon_deg=lon),
            state=ReceiverState.STALLED if i == 0 else ReceiverState.ONLINE,
            updated_ns=t_late_ns,
        )
        pub.publish(settings.topics.receivers, rx, s)
    truth = Truth(
        source_id="rpt-145500",
        t_ns=t_early_ns,
        position=Position(lat_deg=45.0, lon_deg=8.2),
        freq_hz=145.5e6,
        channel_id=CHANNEL,
    )
    pub.publish(settings.topics.truth, truth.source_id, truth)
    for k in range(5):
        m = Measurement(
            chunk_id=f"c{k}",
            receiver_id="torino",
            t_ns=t_late_ns + k * 200_000_000,
            duration_s=0.2,
            clock=ClockSource.NTP,
            position=Position(lat_deg=SEED["torino"][0], lon_deg=SEED["torino"][1]),
            channel_id=CHANNEL,
            channel_freq_hz=145.5e6,
            channel_bw_hz=12.5e3,
            power_dbm=-80.0 - k,
            noise_floor_dbm_hz=-170.0,
            snr_db=30.0 - k,
            freq_offset_hz=0.0,
            occupied_bw_hz=1e4,
            detected=True,
            psd_dbm_hz=tuple(-170.0 + 40.0 * (abs(i - 32) < 4) for i in range(64)),
            psd_bin_hz=187.5,
        )
        pub.publish(settings.topics.features, CHANNEL, m)
    for k in range(3):  # a web receiver's waterfall rows
        w = WaterfallRow(
            receiver_id="torino",
            seq=k,
            t_ns=t_late_ns + k * 100_000_000,
            clock=ClockSource.NTP,
            position=Position(lat_deg=SEED["torino"][0], lon_deg=SEED["torino"][1]),
            center_freq_hz=145.5e6,
            sample_rate_hz=2.4e6,
            bin_hz=2343.75,
            n_bins=1024,
            values=np.linspace(-110.0, -40.0, 1024, dtype=np.float32),
            row_period_s=0.1,
        )
        pub.publish(settings.topics.waterfall, "torino", w)
    assert pub.flush() == 0
    for t_ns, lon in ((t_early_ns, 8.3), (t_late_ns, 8.21)):
        loc = Localization(
            observation_id=f"obs-{t_ns}",
            channel_id=CHANNEL,
            t_ns=t_ns,
            position=Position(lat_deg=45.01, lon_deg=lon),
            cov_ee_m2=4e6,
            cov_en_m2=1e6,
            cov_nn_m2=9e6,
            method="rss-ml",
            n_receivers=7,
            processing_latency_s=0.2,
            published_ns=time.time_ns(),
        )
        pub.publish(settings.topics.localizations, CHANNEL, loc)
    assert pub.flush() == 0


def _attrs(driver: Any, selector: str, *names: str) -> list[list[str | None]]:
    """Attributes of every element matching ``selector``, read in one script.

    The page redraws its SVG on every push, so element handles go stale between two WebDriver
    calls; one ``execute_script`` reads a consistent snapshot.
    """
    script = (
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(e => arguments[1].map(n => e.getAttribute(n)))"
    )
    return list(driver.execute_script(script, selector, list(names)))


def _drawn_fix_times(driver: Any) -> list[int]:
    script = (
        "return [...document.querySelectorAll('#fixes g.fix')]"
        ".filter(g => g.querySelector('path.ellipse-1')).map(g => g.getAttribute('data-t'))"
    )
    return [int(t) for t in driver.execute_script(script)]


@pytest.fixture
def dashboard(settings: HeimdallSettings) -> Iterator[Dashboard]:
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    dash = start_dashboard(settings, port=0, dashboard=DashboardSettings(), interval_s=0.5)
    try:
        yield dash
    finally:
        dash.stop()


def test_page_draws_receivers_fixes_pipeline_and_replays(
    settings: HeimdallSettings, dashboard: Dashboard, browser: Any, artifacts: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(dashboard.url)
    _wait(browser, "the WebSocket", lambda d: d.find_element(By.ID, "status").text == "live")
    t_late = (time.time_ns() // 1_000_000) * 1_000_000
    t_early = t_late - 60_000_000_000
    _publish_scene(settings, t_early, t_late)

    def receivers(d: Any) -> dict[str | None, str | None]:
        return dict(_attrs(d, "#receivers g.receiver", "data-id", "data-state"))

    _wait(browser, "the seven receivers", lambda d: len(receivers(d)) == 7)
    assert set(receivers(browser)) == set(SEED)
    assert receivers(browser)["torino"] == "stalled"
    _wait(browser, "a fix with its ellipse", lambda d: _drawn_fix_times(d) == [t_late])
    assert browser.find_elements(By.CSS_SELECTOR, "#fixes g.fix path.ellipse-2")
    assert browser.find_elements(By.CSS_SELECTOR, "#truth g.truth[data-source='rpt-145500']")
    _wait(
        browser,
        "the error line to the truth",
        lambda d: d.find_elements(By.CSS_SELECTOR, "#fixes g.fix line.errline"),
    )
    topic = settings.topics.receivers

    def counted(d: Any) -> bool:
        cells = d.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(td => td.textContent)",
            f"#pipeline-rates tr[data-topic='{topic}'] td",
        )
        return len(cells) == 3 and cells[2].strip().replace(",", "") == "7"

    _wait(browser, "the pipeline panel to count the receivers topic", counted)

    # selecting a receiver shows its measurements: power, SNR and the PSD summary
    def click_torino(d: Any) -> bool:
        d.find_element(By.CSS_SELECTOR, "#receivers g.receiver[data-id='torino'] circle").click()
        return not d.find_element(By.ID, "receiver-panel").get_attribute("hidden")

    _wait(browser, "the receiver panel", click_torino)

    def charted(d: Any) -> bool:
        return all(_attrs(d, f"#{c} path", "d") for c in ("rx-power", "rx-snr", "rx-psd"))

    _wait(browser, "torino's power, SNR and PSD charts", charted)
    _wait(
        browser,
        "torino's waterfall",
        lambda d: d.find_element(By.ID, "rx-waterfall").get_attribute("data-rows") == "3",
    )
    browser.save_screenshot(str(artifacts / "dashboard-live.png"))
    latencies = browser.execute_script("return window.heimdallDrawLatencyMs")
    assert latencies, "the pushed fix was drawn but no latency was recorded"

    # the slider back to the earlier fix: only it is drawn
    browser.execute_script(
        "const s = document.getElementById('slider'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('input'));",
        str(t_early // 1_000_000),
    )
    _wait(browser, "the earlier fix", lambda d: _drawn_fix_times(d) == [t_early])
    assert not browser.find_element(By.ID, "live").is_selected()
    browser.save_screenshot(str(artifacts / "dashboard-replay.png"))


def test_page_without_the_token_is_refused(
    settings: HeimdallSettings, browser: Any, artifacts: Path
) -> None:
    from selenium.webdriver.common.by import By

    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    ds = DashboardSettings(dashboard_token=SecretStr("browser-token"))
    dash = start_dashboard(settings, port=0, dashboard=ds, interval_s=0.5)
    try:
        browser.get(dash.url)
        assert "needs its token" in browser.find_element(By.TAG_NAME, "body").text
        assert not browser.find_elements(By.ID, "map")
        browser.get(dash.url + "?token=browser-token")  # sets the cookie the WebSocket carries
        _wait(browser, "the WebSocket", lambda d: d.find_element(By.ID, "status").text == "live")
        assert "token" not in browser.current_url
        browser.save_screenshot(str(artifacts / "dashboard-token.png"))
    finally:
        dash.stop()


def test_map_tiles_come_from_the_template(
    settings: HeimdallSettings, browser: Any, artifacts: Path
) -> None:
    """With ``HEIMDALL_MAP_TILES_URL`` the map asks for the XYZ tiles covering the view."""
    from selenium.webdriver.common.by import By

    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    template = "http://tiles.invalid/{z}/{x}/{y}.png"
    dash = start_dashboard(
        settings, port=0, dashboard=DashboardSettings(map_tiles_url=template), interval_s=0.5
    )
    try:
        # zoom 10 at 45° N, 8° E: tile x = floor((8 + 180) / 360 * 2^10) = 534,
        # y = floor((1 - ln(tan 45° + sec 45°) / π) / 2 * 2^10) = 368
        browser.get(dash.url + "#view=45.0,8.0,10")
        _wait(browser, "the WebSocket", lambda d: d.find_element(By.ID, "status").text == "live")
        _publish_scene(settings, time.time_ns() - 10**9, time.time_ns())

        def hrefs(d: Any) -> set[str]:  # read at once: the SVG is redrawn on every push
            script = (
                "return [...document.querySelectorAll('.tiles image')]"
                ".map(i => i.getAttribute('href'))"
            )
            return set(d.execute_script(script))

        _wait(browser, "the tiles", lambda d: "http://tiles.invalid/10/534/368.png" in hrefs(d))
        assert all(h.startswith("http://tiles.invalid/10/") for h in hrefs(browser))
    finally:
        dash.stop()
