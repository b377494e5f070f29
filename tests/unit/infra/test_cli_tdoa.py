"""``heimdall eval tdoa``: its flags, on the shared KiwiSDR DCF77 files (skipped without them).

The default run (``xcorr`` with the sub-band systematic term) writes the JSON report with the
per-pair statistical and systematic sigmas and puts the truth inside its 2σ ellipse; the
flags that make no sense for ``xcorr`` are refused with a one-line reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heimdall.infra.cli import app

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "kiwi-dcf77"
WAVS = sorted(str(p) for p in DATA.glob("*.wav"))
pytestmark = pytest.mark.skipif(not WAVS, reason=f"shared DCF77 recordings not found at {DATA}")


def test_default_xcorr_report(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        app, ["eval", "tdoa", *WAVS, "--truth", "50.0152,9.0112", "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["method"] == "xcorr" and len(d["pairs"]) == 3
    assert all(p["sigma_sys_us"] > 0 and p["sigma_stat_us"] > 0 for p in d["pairs"])
    assert d["mahalanobis2"] <= 4.0
    assert "truth at" in res.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--systematic", "estimators"], "dcf77-pn only"),
        (["--subbands", "3"], "even number"),
        (["--method", "gcc"], "xcorr or dcf77-pn"),
    ],
)
def test_bad_flags(flags: list[str], message: str) -> None:
    res = CliRunner().invoke(app, ["eval", "tdoa", *WAVS, *flags])
    assert res.exit_code == 2
    assert message in res.output
