"""The simulator source and ``heimdall train`` end to end on a tiny configuration.

Seed-network samples → SetDataset (frame at the receivers' centroid) → training (1 member,
2 epochs) → evaluation → ONNX + spec → registry; the stream's :class:`OnnxLocalizer` loads
the registered model and gives the torch ensemble's answers on the held-out samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")
import torch
from typer.testing import CliRunner

from heimdall.core.geodesy import LocalFrame
from heimdall.core.settings import load_settings
from heimdall.infra.cli_train import Source, run_training, simulated_dataset
from heimdall.ml.datasets import combine_datasets, reproject, suggest_pos_scale
from heimdall.ml.inference import OnnxLocalizer
from heimdall.ml.models.featurize import featurize
from heimdall.ml.registry import ModelRegistry
from heimdall.ml.training import SetDataset, pack_inputs, predict_set_model
from heimdall.producers.sim.scenario import SEED_RECEIVERS
from heimdall.schemas.models import ClockSource, Observation, ObservationMember, Position


def test_sim_source_is_a_set_dataset_in_the_centroid_frame() -> None:
    ds = simulated_dataset("seed-network", 300, seed=1)
    assert isinstance(ds, SetDataset) and 0 < len(ds) <= 300
    lat = np.mean([r[1] for r in SEED_RECEIVERS])
    lon = np.mean([r[2] for r in SEED_RECEIVERS])
    assert ds.frame == pytest.approx({"lat0_deg": lat, "lon0_deg": lon, "alt0_m": 0.0})
    assert ds.rx_names == {r[0]: i for i, r in enumerate(SEED_RECEIVERS)}
    # every kept set has ≥ 4 detected receivers with finite readings, identities in range
    assert (ds.mask.sum(axis=1) >= 4).all()
    assert np.isfinite(ds.rss_dbm[ds.mask]).all() and ds.snr_db is not None
    assert np.isfinite(ds.snr_db[ds.mask]).all()
    assert set(np.unique(ds.rx_id[ds.mask])) <= set(range(len(SEED_RECEIVERS)))
    # receivers are where the frame says (to_enu at zero height, as the stream computes)
    frame = ds.local_frame
    e, n, _ = frame.to_enu(SEED_RECEIVERS[2][1], SEED_RECEIVERS[2][2], 0.0)
    np.testing.assert_allclose(ds.enu_m[0, 2], [e, n], atol=1e-6)
    # transmitters are spread over the network's area (uniform over the bounding box)
    span = ds.y_enu_m.max(axis=0) - ds.y_enu_m.min(axis=0)
    assert (span > 100_000).all()
    assert suggest_pos_scale(ds) == 100_000.0  # receivers ~50-100 km from the centroid
    # same seed, same data
    assert simulated_dataset("seed-network", 300, seed=1).content_hash() == ds.content_hash()


def test_featurize_is_the_training_path() -> None:
    """Training inputs are featurize's output, packed (present receivers first)."""
    from heimdall.ml.training import fit_normalisation

    ds = simulated_dataset("seed-network", 50, seed=2)
    assert ds.snr_db is not None
    mask = ds.mask.copy()
    mask[0, [1, 3]] = False  # holes: the packed set is receivers 0, 2, 4, 5, 6
    norm = fit_normalisation(ds.rss_dbm, mask, ds.snr_db, 100_000.0)
    feats, ids, packed = pack_inputs(ds.enu_m, ds.rss_dbm, ds.rx_id, mask, norm, ds.snr_db)
    direct = featurize(ds.enu_m[:1], ds.rss_dbm[:1], mask[:1], norm, snr_db=ds.snr_db[:1])[0]
    keep = [0, 2, 4, 5, 6]
    np.testing.assert_array_equal(feats[0, :5], direct[keep])
    assert ids[0].tolist() == [*keep, -1, -1] and packed[0].tolist() == [True] * 5 + [False] * 2
    assert not feats[0, 5:].any()
    assert feats[0, :5, 4].all()  # has_snr


def test_combine_reprojects_into_one_frame() -> None:
    a = simulated_dataset("seed-network", 60, seed=3)
    moved = reproject(a, LocalFrame(45.0, 8.0, 0.0))
    assert moved.frame["lat0_deg"] == 45.0
    back = reproject(moved, a.local_frame)
    np.testing.assert_allclose(back.enu_m[back.mask], a.enu_m[a.mask], atol=1e-3)
    np.testing.assert_allclose(back.y_enu_m, a.y_enu_m, atol=1e-3)
    both = combine_datasets([a, moved])
    assert len(both) == 2 * len(a)
    assert both.rx_names == {n: i for i, n in enumerate(sorted(a.rx_names))}
    # the same receiver has the same identity and position in both parts
    name = SEED_RECEIVERS[4][0]
    idx = both.rx_names[name]
    pos = both.enu_m[both.mask & (both.rx_id == idx)]
    np.testing.assert_allclose(pos, pos[:1].repeat(len(pos), axis=0), atol=1e-3)


def _observations(ds: SetDataset) -> list[Observation]:
    """The held-out samples as the stream's observations (members: position, power, SNR)."""
    names = {v: k for k, v in ds.rx_names.items()}
    frame = ds.local_frame
    out = []
    for i in range(len(ds)):
        members = []
        for j in np.flatnonzero(ds.mask[i]):
            lat, lon, _ = frame.from_enu(ds.enu_m[i, j, 0], ds.enu_m[i, j, 1], 0.0)
            members.append(
                ObservationMember(
                    receiver_id=names[int(ds.rx_id[i, j])],
                    position=Position(lat_deg=float(lat), lon_deg=float(lon), alt_m=0.0),
                    clock=ClockSource.GPS,
                    t_ns=0,
                    power_dbm=float(ds.rss_dbm[i, j]),
                    power_std_db=0.1,
                    snr_db=float(ds.snr_db[i, j]) if ds.snr_db is not None else 0.0,
                    noise_floor_dbm_hz=-168.0,
                    freq_offset_hz=0.0,
                    n_measurements=1,
                    measurement_ids=(),
                )
            )
        out.append(
            Observation(
                channel_id="c",
                channel_freq_hz=145.5e6,
                window_start_ns=0,
                window_end_ns=10**9,
                members=tuple(members),
            )
        )
    return out


def test_train_exports_registers_and_the_stream_runs_it(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "heimdall")
    report, trained, test = run_training(
        settings,
        source=Source.sim,
        samples=300,
        epochs=2,
        members=1,
        promote=True,
        seed=0,
        rss_samples=10,
        progress=False,
    )
    assert report["n_train"] + report["n_test"] == report["data"]["n_samples"]
    for k in ("median_m", "p95_m", "coverage_1sigma", "coverage_2sigma"):
        assert np.isfinite(report["test"][k])
    assert report["rss"]["n_tried"] == 10 and np.isfinite(report["rss"]["median_m"])
    assert report["promoted"] and not report["announced"]  # embedded: no announcement

    reg = ModelRegistry(settings.object_store_url)
    record = reg.active("setnet")
    assert record is not None and record.version == report["registry"]["version"]
    assert record.training_data_hash == report["registry"]["training_data_hash"]
    assert record.metrics["median_m"] == pytest.approx(report["test"]["median_m"])
    assert record.input_spec["rx_ids"] == {r[0]: i for i, r in enumerate(SEED_RECEIVERS)}
    assert record.input_spec["normalisation"]["pos_scale_m"] == 100_000.0

    loc = OnnxLocalizer(reg.load_bytes(record), record.input_spec, f"setnet:{record.version}")
    obs = _observations(test)
    preds = loc.predict(obs)
    mu, cov = predict_set_model(trained.model, test, trained.norm)
    frame = test.local_frame
    for i, p in enumerate(preds):
        e, n, _ = frame.to_enu(p.lat_deg, p.lon_deg, 0.0)
        # 1e-3 of the 1 km scale: float32 at ~100 km and the WGS84 round trip stay far below
        np.testing.assert_allclose([e, n], mu[i], atol=1.0)
        np.testing.assert_allclose(p.cov_m2, cov[i], rtol=1e-3, atol=1e-3)
    with torch.no_grad():  # the localizer's own inputs through torch give the same answer
        inp = loc.inputs(obs[:3])
        mt, _ = trained.model(*(torch.from_numpy(inp[k]) for k in ("features", "rx_id", "mask")))
    np.testing.assert_allclose(mt.numpy(), mu[:3], atol=1.0)


def test_train_command(tmp_path: Path) -> None:
    import typer

    from heimdall.infra.cli_train import train

    app = typer.Typer()
    app.command()(train)
    out = tmp_path / "report.json"
    res = CliRunner().invoke(
        app,
        [
            *("--samples", "200", "--epochs", "1", "--members", "1", "--rss-samples", "5"),
            *("--quiet", "--no-promote"),
            "--json",
            str(out),
        ],
        env={"HEIMDALL_DATA_DIR": str(tmp_path / "h"), "KAFKA_BOOTSTRAP_SERVERS": None},
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["registry"]["name"] == "setnet" and not rep["promoted"]
    assert (tmp_path / "h" / "objects" / "models" / "setnet").is_dir()
