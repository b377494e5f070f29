"""Schema evolution: every current schema reads data of every released (and committed) version."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from heimdall.schemas import catalog
from heimdall.schemas.compat import check_backward

SCHEMAS_DIR = Path(catalog.__file__).resolve().parent
REPO = SCHEMAS_DIR.parent


def released_pairs() -> list[tuple[str, str]]:
    return [(v, e.name) for v, cat in catalog.released().items() for e in cat]


@pytest.mark.parametrize("version,name", released_pairs())
def test_current_reads_every_released_version(version: str, name: str) -> None:
    current = catalog.current()
    assert name in current, f"{name} of {version} was removed"
    assert check_backward(current[name], catalog.released()[version][name]) == []


def _committed_catalog(tmp_path: Path) -> catalog.Catalog:
    if shutil.which("git") is None:
        pytest.skip("git is not available")
    found = 0
    for path in sorted((SCHEMAS_DIR / "avsc").glob("*.avsc")):
        rel = f"{SCHEMAS_DIR.name}/avsc/{path.name}"
        shown = subprocess.run(
            ["git", "-C", str(REPO), "show", f"HEAD:{rel}"], capture_output=True, check=False
        )
        if shown.returncode == 0:
            (tmp_path / path.name).write_bytes(shown.stdout)
            found += 1
    if not found:
        pytest.skip("no schema file is committed at HEAD")
    return catalog.load_catalog(tmp_path, "HEAD")


def test_current_reads_the_committed_version(tmp_path: Path) -> None:
    committed = _committed_catalog(tmp_path)
    current = catalog.current()
    problems = {e.name: check_backward(current[e.name], e) for e in committed if e.name in current}
    assert {k: v for k, v in problems.items() if v} == {}
    assert set(committed.names()) <= set(current.names())


# ----------------------------------------------------- the checker catches breaks


def _iq() -> dict[str, Any]:
    return copy.deepcopy(catalog.current()["heimdall.v1.IqChunk"].expanded)


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


OLD = catalog.current()["heimdall.v1.IqChunk"]


def test_new_field_without_default() -> None:
    new = _iq()
    new["fields"].append({"name": "antenna_gain_dbi", "type": "double"})
    assert check_backward(new, OLD) == ["IqChunk.antenna_gain_dbi: new field without a default"]
    new["fields"][-1]["default"] = 0.0
    assert check_backward(new, OLD) == []


def test_new_nested_field_without_default() -> None:
    new = _iq()
    _field(new, "position")["type"]["fields"].append({"name": "h_acc_m", "type": "float"})
    assert check_backward(new, OLD) == ["IqChunk.position.h_acc_m: new field without a default"]


def test_changed_type() -> None:
    new = _iq()
    _field(new, "seq")["type"] = "string"
    assert check_backward(new, OLD) == ["IqChunk.seq: type changed from long to string"]


def test_promotion_is_allowed_and_narrowing_is_not() -> None:
    wider = copy.deepcopy(catalog.current()["heimdall.v1.Localization"].expanded)
    _field(wider, "n_receivers")["type"] = "long"
    loc = catalog.current()["heimdall.v1.Localization"]
    assert check_backward(wider, loc) == []
    assert check_backward(loc, wider) == ["Localization.n_receivers: type changed from long to int"]


def test_removed_enum_symbol() -> None:
    new = _iq()
    _field(new, "sample_format")["type"]["symbols"] = ["ci16"]
    problems = check_backward(new, OLD, samples=0)
    assert problems == [
        "IqChunk.sample_format: enum heimdall.v1.SampleFormat lost symbol(s) cf32 "
        "and has no default"
    ]
    assert check_backward(new, OLD)  # and the data check agrees


def test_removed_enum_symbol_with_a_default_resolves_to_it() -> None:
    # Avro resolution maps an unknown symbol to the reader enum's default.
    new = _iq()
    _field(new, "clock")["type"]["symbols"] = ["gps", "free"]
    assert check_backward(new, OLD) == []


def test_union_changes() -> None:
    truth = catalog.current()["heimdall.v1.Truth"]
    new = copy.deepcopy(truth.expanded)
    _field(new, "channel_id")["type"] = "string"  # null no longer readable
    del _field(new, "channel_id")["default"]
    assert check_backward(new, truth) == ["Truth.channel_id: type changed from null to string"]
    widened = copy.deepcopy(truth.expanded)
    _field(widened, "freq_hz")["type"] = ["null", "double"]
    assert check_backward(widened, truth) == []


def test_renamed_record() -> None:
    new = _iq()
    new["name"] = "heimdall.v1.IqBlock"
    assert check_backward(new, OLD) == [
        "IqBlock: named type changed from heimdall.v1.IqChunk to heimdall.v1.IqBlock"
    ]
    new["aliases"] = ["heimdall.v1.IqChunk"]
    assert check_backward(new, OLD) == []


def test_removed_field_is_compatible() -> None:
    new = _iq()
    new["fields"] = [f for f in new["fields"] if f["name"] != "source"]
    assert check_backward(new, OLD) == []


def test_invalid_new_schema() -> None:
    new = _iq()
    _field(new, "clock")["type"]["symbols"] = ["gps"]  # default "free" no longer a symbol
    problems = check_backward(new, OLD)
    assert len(problems) == 1 and problems[0].startswith("new schema is not valid Avro:")
