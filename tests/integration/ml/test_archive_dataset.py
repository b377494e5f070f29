"""``heimdall train --source archive``: the archive's observations of a time range labelled by
the archived truth, simulated and known sources alike, exactly as the history labels them.

The same events go to a real chDB directory (the history) and to real archive files on the
local object store (written by :meth:`ArchiveStore.put`, as the archiver does, with the Kafka
timestamps the stream gives them: window end for observations, ``t_ns`` for truths).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")

from heimdall.consumers.archive_files import ArchivedEvent
from heimdall.consumers.archive_store import ArchiveStore
from heimdall.consumers.clickhouse_sink import TABLE_COLUMNS, map_event
from heimdall.core.errors import HeimdallError
from heimdall.core.settings import (
    ClickHouseSettings,
    HeimdallSettings,
    ObjectStoreSettings,
    load_settings,
)
from heimdall.core.store import open_clickhouse
from heimdall.infra.cli_train import Source, build_dataset
from heimdall.infra.clickhouse import apply_schema
from heimdall.producers.known_sources import SourceSpec
from heimdall.producers.sim.scenario import SEED_RECEIVERS
from heimdall.schemas.models import ClockSource, Observation, ObservationMember, Position, Truth
from heimdall.schemas.serde import Serde
from tests.integration.consumers.conftest import chdb_root  # noqa: F401 (session chDB dir)

pytestmark = pytest.mark.integration

S = 1_000_000_000
T0 = 1_796_371_170 * S  # 2026-12-04T07:59:30Z: the events run over an hour boundary
RX = SEED_RECEIVERS[:5]
BEACON = SourceSpec(id="beacon-1", lat=45.2, lon=8.1, freq_hz=439.1e6, channel_id="ch-beacon")


@pytest.fixture
def both(chdb_root: Path, tmp_path: Path) -> Iterator[tuple[HeimdallSettings, Any]]:  # noqa: F811
    settings = load_settings(
        data_dir=chdb_root,
        clickhouse=ClickHouseSettings(
            url=None, password=None, database=f"ml_{uuid.uuid4().hex[:10]}"
        ),
        object_store=ObjectStoreSettings(url=(tmp_path / "objects").as_uri()),
    )
    client = open_clickhouse(settings)
    try:
        apply_schema(client, settings.clickhouse.database)
        yield settings, client
    finally:
        client.close()


def _obs(channel: str, k: int, n_rx: int = 5) -> Observation:
    members = tuple(
        ObservationMember(
            receiver_id=rid, position=Position(lat_deg=lat, lon_deg=lon, alt_m=alt),
            clock=ClockSource.GPS, t_ns=T0 + k * S, power_dbm=-70.0 - j - 0.1 * k,
            power_std_db=0.2, snr_db=40.0 - j, noise_floor_dbm_hz=-168.0, freq_offset_hz=0.0,
            n_measurements=5, measurement_ids=(),
        )
        for j, (rid, lat, lon, alt) in enumerate(RX[:n_rx])
    )  # fmt: skip
    return Observation(
        channel_id=channel, channel_freq_hz=145.5e6, window_start_ns=T0 + k * S,
        window_end_ns=T0 + (k + 1) * S, members=members,
    )  # fmt: skip


def _sim_truth(t_ns: int, lat: float, on: bool = True) -> Truth:
    return Truth(
        source_id="sim-tx", t_ns=t_ns, position=Position(lat_deg=lat, lon_deg=8.0, alt_m=0.0),
        freq_hz=145.5e6, channel_id="ch-sim", transmitting=on,
    )  # fmt: skip


def _archive(settings: HeimdallSettings, topic: str, events: list[Any], ts_ns: list[int]) -> None:
    """One partition of ``topic``, offsets 0.., split into files by UTC hour like the archiver."""
    serde = Serde(settings.schema_registry.url)
    store = ArchiveStore.from_settings(settings)
    recs = [
        ArchivedEvent(topic, 0, i, t // 1_000_000, b"k", serde.encode(e))
        for i, (e, t) in enumerate(sorted(zip(events, ts_ns, strict=True), key=lambda p: p[1]))
    ]
    hours: dict[int, list[ArchivedEvent]] = {}
    for r in recs:
        hours.setdefault(r.timestamp_ms // 3_600_000, []).append(r)
    for part in hours.values():
        store.put(topic, part)


def _insert(client: Any, role: str, events: list[Any]) -> None:
    rows = [map_event(role, e.SCHEMA, e.to_dict())[1] for e in events]
    client.insert(role, rows, column_names=list(TABLE_COLUMNS[role]))


def _store_everywhere(settings: HeimdallSettings, client: Any) -> list[Observation]:
    # ch-sim: a simulated source moving north, a truth every 0.5 s, off for the last second;
    # ch-beacon: a known source of a network file, its truth every whole second (TruthClock)
    truths = [_sim_truth(T0 + j * S // 2, 45.0 + 1e-3 * j, on=j < 80) for j in range(82)]
    truths += [BEACON.truth(T0 + j * S) for j in range(41)]
    obs = [_obs("ch-sim", k) for k in range(40)] + [_obs("ch-beacon", k) for k in range(40)]
    obs.append(_obs("ch-beacon", 40, n_rx=3))  # too few receivers
    obs.append(_obs("ch-unlabelled", 5))
    again = dataclasses.replace(obs[15])  # the same event archived twice (a replay)
    _insert(client, "truth", truths)
    _insert(client, "observations", [*obs, again])
    _archive(settings, settings.topics.truth, truths, [t.t_ns for t in truths])
    _archive(
        settings,
        settings.topics.observations,
        [*obs, again],
        [o.window_end_ns for o in [*obs, again]],
    )
    return obs


def test_archive_labels_like_the_history(both: tuple[HeimdallSettings, Any]) -> None:
    settings, client = both
    _store_everywhere(settings, client)
    lo, hi = T0 + 10 * S, T0 + 45 * S  # windows 10..39 of ch-sim and ch-beacon, 40, ch-unl.: no
    arch, info = build_dataset(settings, Source.archive, "", 0, 0, lo, hi)
    hist, hinfo = build_dataset(settings, Source.history, "", 0, 0, lo, hi)
    a = info["archive"]
    assert (a["observations"], a["labelled"], a["too_few_receivers"]) == (61, 60, 1)
    assert a["without_truth"] == 0 and a["problems"] == []
    assert {k: hinfo["history"][k] for k in ("observations", "labelled", "too_few_receivers")} == {
        "observations": 61, "labelled": 60, "too_few_receivers": 1,
    }  # fmt: skip
    np.testing.assert_array_equal(arch.y_enu_m, hist.y_enu_m)
    np.testing.assert_array_equal(arch.rss_dbm, hist.rss_dbm)
    np.testing.assert_array_equal(arch.enu_m, hist.enu_m)
    assert arch.rx_names == hist.rx_names and arch.frame == hist.frame
    # the beacon's rows are labelled at the beacon, the simulated ones at the moving source
    frame = arch.local_frame
    e, n, _ = frame.to_enu(BEACON.lat, BEACON.lon, 0.0)
    at_beacon = np.all(np.isclose(arch.y_enu_m, [e, n], atol=1e-6), axis=1)
    assert int(at_beacon.sum()) == 30
    # window k's middle (k + 0.5) s is truth j = 2k + 1 of ch-sim: lat 45 + 1e-3 (2k + 1)
    want = [45.0 + 1e-3 * (2 * k + 1) for k in range(10, 40)]
    es, ns, _ = frame.to_enu(np.array(want), np.full(30, 8.0), np.zeros(30))
    np.testing.assert_allclose(arch.y_enu_m[~at_beacon], np.column_stack([es, ns]), atol=1e-6)


def test_a_range_with_nothing_labelled_is_one_clear_error(
    both: tuple[HeimdallSettings, Any],
) -> None:
    settings, client = both
    _store_everywhere(settings, client)
    after = T0 + 3600 * S
    with pytest.raises(HeimdallError, match=r"no observation in the archive \[2026-12-04T08:59"):
        build_dataset(settings, Source.archive, "", 0, 0, after, after + 60 * S)
    with pytest.raises(HeimdallError, match="0 observations read"):
        build_dataset(settings, Source.history, "", 0, 0, after, after + 60 * S)
    with pytest.raises(HeimdallError, match="--to must follow --from"):
        build_dataset(settings, Source.archive, "", 0, 0, after, after)
    with pytest.raises(HeimdallError, match="needs --from and --to"):
        build_dataset(settings, Source.archive, "", 0, 0, after, None)
