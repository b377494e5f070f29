"""The history source against a real chDB directory: observations labelled by the truth of
their channel nearest in time, read with FINAL, and combined with simulated data.

Uses the session's chDB directory fixture of the ClickHouse sink tests (chDB hosts one data
directory per process at a time) with a database of its own.
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

from heimdall.consumers.clickhouse_sink import TABLE_COLUMNS, map_event
from heimdall.core.geodesy import LocalFrame
from heimdall.core.settings import ClickHouseSettings, HeimdallSettings, load_settings
from heimdall.core.store import open_clickhouse
from heimdall.infra.cli_train import Source, build_dataset
from heimdall.infra.clickhouse import apply_schema
from heimdall.ml.datasets import load_history
from heimdall.producers.sim.scenario import SEED_RECEIVERS
from heimdall.schemas.models import (
    ClockSource,
    Observation,
    ObservationMember,
    Position,
    Truth,
)
from tests.integration.consumers.conftest import chdb_root  # noqa: F401 (session chDB dir)

pytestmark = pytest.mark.integration

S = 1_000_000_000
T0 = 1_763_000_000 * S
RX = SEED_RECEIVERS[:5]


@pytest.fixture
def hist(chdb_root: Path) -> Iterator[tuple[HeimdallSettings, Any]]:  # noqa: F811
    settings = load_settings(
        data_dir=chdb_root,
        clickhouse=ClickHouseSettings(
            url=None, password=None, database=f"ml_{uuid.uuid4().hex[:10]}"
        ),
    )
    client = open_clickhouse(settings)
    try:
        apply_schema(client, settings.clickhouse.database)
        yield settings, client
    finally:
        client.close()


def _insert(client: Any, role: str, events: list[Any]) -> None:
    rows = [map_event(role, e.SCHEMA, e.to_dict())[1] for e in events]
    client.insert(role, rows, column_names=list(TABLE_COLUMNS[role]))


def _obs(channel: str, k: int, n_rx: int = 5, event_id: str | None = None) -> Observation:
    members = tuple(
        ObservationMember(
            receiver_id=rid,
            position=Position(lat_deg=lat, lon_deg=lon, alt_m=alt),
            clock=ClockSource.GPS,
            t_ns=T0 + k * S,
            power_dbm=-70.0 - j,
            power_std_db=0.2,
            snr_db=40.0 - j,
            noise_floor_dbm_hz=-168.0,
            freq_offset_hz=0.0,
            n_measurements=5,
            measurement_ids=(),
        )
        for j, (rid, lat, lon, alt) in enumerate(RX[:n_rx])
    )
    obs = Observation(
        channel_id=channel, channel_freq_hz=145.5e6, window_start_ns=T0 + k * S,
        window_end_ns=T0 + (k + 1) * S, members=members,
    )  # fmt: skip
    return obs if event_id is None else dataclasses.replace(obs, event_id=event_id)


def _truth(source: str, channel: str, t_ns: int, lat: float, on: bool = True) -> Truth:
    return Truth(
        source_id=source, t_ns=t_ns, position=Position(lat_deg=lat, lon_deg=8.0, alt_m=0.0),
        freq_hz=145.5e6, channel_id=channel, transmitting=on,
    )  # fmt: skip


def test_observations_are_labelled_by_the_nearest_truth(
    hist: tuple[HeimdallSettings, Any],
) -> None:
    _, client = hist
    # ch-a: a source moving north, a truth every 0.2 s; windows k = 0..3 (middles k + 0.5 s)
    truths = [_truth("tx-a", "ch-a", T0 + j * S // 5, 45.0 + 1e-3 * j) for j in range(21)]
    truths.append(_truth("tx-off", "ch-a", T0 + S // 2, 40.0, on=False))  # keyed off: ignored
    # ch-far: its only truth 3 s from the window; ch-b: two sources within the tolerance
    truths.append(_truth("tx-far", "ch-far", T0 + 3 * S + S // 2, 44.0))
    truths += [_truth("tx-b1", "ch-b", T0 + S // 2, 44.5), _truth("tx-b2", "ch-b", T0 + S, 44.6)]
    _insert(client, "truth", truths)
    twice = str(uuid.uuid4())
    obs = [_obs("ch-a", k) for k in range(3)]
    obs += [_obs("ch-a", 3, event_id=twice), _obs("ch-a", 3, event_id=twice)]  # a replay
    obs += [_obs("ch-a", 4, n_rx=3), _obs("ch-far", 0), _obs("ch-b", 0)]
    _insert(client, "observations", obs)

    data = load_history(client)
    ds = data.dataset
    assert data.n_observations == 7  # FINAL: the replayed event once
    assert (len(ds), data.n_unmatched, data.n_ambiguous, data.n_too_few) == (4, 1, 1, 1)
    # labels: the truth nearest each window's middle, (k + 0.5) s → truth index 5k + 2 (ties:
    # the earlier one), i.e. lat 45 + 1e-3 (5k + 2)
    frame = ds.local_frame
    want_lat = [45.0 + 1e-3 * (5 * k + 2) for k in range(4)]
    e, n, _ = frame.to_enu(np.array(want_lat), np.full(4, 8.0), np.zeros(4))
    np.testing.assert_allclose(ds.y_enu_m, np.column_stack([e, n]), atol=1e-6)
    # the set: members' positions (zero height), power and SNR; names sorted → identities
    assert ds.rx_names == {r: i for i, r in enumerate(sorted(r[0] for r in RX))}
    assert ds.mask.all() and ds.snr_db is not None
    np.testing.assert_allclose(ds.rss_dbm[0], [-70.0, -71.0, -72.0, -73.0, -74.0])
    np.testing.assert_allclose(ds.snr_db[0], [40.0, 39.0, 38.0, 37.0, 36.0])
    assert [ds.rx_id[0, j] for j in range(5)] == [ds.rx_names[r[0]] for r in RX]
    e0, n0, _ = frame.to_enu(RX[0][1], RX[0][2], 0.0)
    np.testing.assert_allclose(ds.enu_m[0, 0], [e0, n0], atol=1e-6)
    # the frame is the centroid of the receivers heard
    assert ds.frame["lat0_deg"] == pytest.approx(np.mean([r[1] for r in RX]))
    # a tighter tolerance leaves nothing of ch-a (truths are 0.1 s from the middles)
    assert len(load_history(client, tolerance_s=0.05, channel_id="ch-a").dataset) == 0
    only = load_history(client, channel_id="ch-a", since_ns=T0 + S, until_ns=T0 + 3 * S)
    assert len(only.dataset) == 2 and only.n_observations == 2
    given = load_history(client, frame=LocalFrame(45.0, 8.0, 0.0), rx_names={RX[1][0]: 3})
    assert given.dataset.frame["lat0_deg"] == 45.0
    assert sorted(set(given.dataset.rx_id[0].tolist())) == [-1, 3]


def test_history_and_simulation_combine_in_one_frame(
    hist: tuple[HeimdallSettings, Any],
) -> None:
    settings, client = hist
    _insert(client, "truth", [_truth("tx-a", "ch-a", T0 + k * S + S // 2, 45.0) for k in range(3)])
    _insert(client, "observations", [_obs("ch-a", k) for k in range(3)])
    ds, info = build_dataset(settings, Source.both, "seed-network", 100, seed=0)
    assert info["history"]["labelled"] == 3 and info["sim"]["labelled"] == 100
    assert len(ds) == 103
    assert ds.rx_names == {r: i for i, r in enumerate(sorted(r[0] for r in SEED_RECEIVERS))}
    # the frame: the centroid of all seven receivers; a receiver sits at one place in both
    lat0 = np.mean([r[1] for r in SEED_RECEIVERS])
    assert ds.frame["lat0_deg"] == pytest.approx(lat0, abs=1e-6)
    idx = ds.rx_names[RX[2][0]]
    pos = ds.enu_m[ds.mask & (ds.rx_id == idx)]
    np.testing.assert_allclose(pos, np.broadcast_to(pos[0], pos.shape), atol=1e-3)
    # the history's labels are where the truth is
    e, n, _ = ds.local_frame.to_enu(45.0, 8.0, 0.0)
    np.testing.assert_allclose(ds.y_enu_m[-3:], [[e, n]] * 3, atol=1e-3)
    hist_only, _ = build_dataset(settings, Source.history, "seed-network", 0, seed=0)
    assert len(hist_only) == 3
