"""In-stream TDOA on real recordings: the three shared KiwiSDR DCF77 recordings are replayed
into ``rf.iq.v1`` and a real Faust worker on the embedded broker turns them into an
observation with ``tdoa_pairs`` and a ``tdoa`` fix.

The check of issue 11: the stream's fix lies within 0.2 km of what ``heimdall eval tdoa``
(:func:`heimdall.ml.tdoa.evaluate.evaluate_tdoa`) gives on the same files with the same method,
and the transmitter's true position (DCF77, Mainflingen, 50.0152 N 9.0112 E) is inside the
fix's 2-sigma ellipse (Mahalanobis distance² ≤ 4).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod

from heimdall.core import kafka
from heimdall.core.geodesy import LocalFrame
from heimdall.core.settings import HeimdallSettings
from heimdall.core.shared_data import shared_data_dir
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.cli_tdoa import load_kiwi_recordings
from heimdall.infra.processes import Child, child_env
from heimdall.ml.estimators.ellipse import mahalanobis2
from heimdall.ml.tdoa.evaluate import evaluate_tdoa
from heimdall.producers.recordings.replay import replay_kiwi_wav
from heimdall.schemas.models import Localization, Observation
from heimdall.schemas.serde import Serde

pytestmark = pytest.mark.integration

DATA = shared_data_dir("kiwi-dcf77")
WAVS = sorted(DATA.glob("*_iq.wav"))
TRUTH = (50.0152, 9.0112)
_GEOD = Geod(ellps="WGS84")


def _offline(method: str) -> tuple[float, float]:
    """``heimdall eval tdoa``'s fix on the same files, read as the CLI reads them."""
    recs, problems = load_kiwi_recordings(WAVS)
    assert not problems, problems
    rep = evaluate_tdoa(recs, TRUTH, method=method)  # type: ignore[arg-type]
    assert rep.lat_deg is not None and rep.lon_deg is not None, rep.problems
    return rep.lat_deg, rep.lon_deg


def _read_until(settings: HeimdallSettings, topic: str, done, timeout_s: float) -> list:
    c = kafka.consumer(settings, f"reader-{topic}")
    c.subscribe([topic])
    out: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(out):
            out += [m for m in c.consume(100, timeout=0.5) if not m.error()]
    finally:
        c.close()
    return out


@pytest.mark.skipif(len(WAVS) != 3, reason="the shared KiwiSDR DCF77 recordings are not present")
def test_dcf77_recordings_give_a_live_tdoa_fix_as_eval_tdoa_does(
    settings: HeimdallSettings, tmp_path: Path
) -> None:
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    serde = Serde()
    worker = Child("streams", ["worker"], child_env(settings.to_env()), tmp_path / "w.log")
    worker.start()
    try:
        stats = replay_kiwi_wav(settings, WAVS, realtime=False)
        assert sum(stats.chunks.values()) == 138 + 136 + 139

        def has_tdoa(msgs: list) -> bool:
            return any(serde.decode(m.value(), expect=Localization).method == "tdoa" for m in msgs)

        locs = _read_until(settings, settings.topics.localizations, has_tdoa, timeout_s=120)
        obs = _read_until(
            settings,
            settings.topics.observations,
            lambda msgs: any(serde.decode(m.value(), expect=Observation).tdoa_pairs for m in msgs),
            timeout_s=10,
        )
    finally:
        worker.stop()
    fixes = [
        loc
        for loc in (serde.decode(m.value(), expect=Localization) for m in locs)
        if loc.method == "tdoa"
    ]
    assert len(fixes) == 1, worker.tail()
    fix = fixes[0]
    decoded = [serde.decode(m.value(), expect=Observation) for m in obs]
    (block,) = [o for o in decoded if o.tdoa_pairs]
    assert {m.receiver_id for m in block.members} == {"kiwi-df0kl", "kiwi-f1jek", "kiwi-hb9ryz"}
    assert len(block.tdoa_pairs) == 3
    for p in block.tdoa_pairs:
        assert p.sigma_s >= p.sigma_sys_s >= 0.0 and 0.0 < p.quality <= 1.0
        assert p.method == settings.tdoa_method
    # the whole recordings are one block: the same data as the offline evaluation
    assert block.window_end_ns - block.window_start_ns == pytest.approx(29.5e9, abs=0.3e9)

    lat, lon = _offline(settings.tdoa_method)
    _, _, apart_m = _GEOD.inv(lon, lat, fix.position.lon_deg, fix.position.lat_deg)
    assert apart_m < 200.0, f"stream fix {apart_m:.0f} m from eval tdoa's"

    frame = LocalFrame(fix.position.lat_deg, fix.position.lon_deg)
    e, n, _ = frame.to_enu(*TRUTH, 0.0)
    cov = np.array([[fix.cov_ee_m2, fix.cov_en_m2], [fix.cov_en_m2, fix.cov_nn_m2]])
    assert mahalanobis2([e, n], cov) <= 4.0, "the truth is outside the fix's 2-sigma ellipse"
