"""Recordings through the real embedded broker: KiwiSDR WAV and SigMF replay into the IQ
topic, and the IQ topic recorded back as SigMF."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.shared_data import shared_data_dir
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.producers.recordings.kiwi_wav import read_kiwi_wav
from heimdall.producers.recordings.replay import kiwi_chunks, kiwi_position, replay_kiwi_wav
from heimdall.producers.recordings.sigmf_io import (
    read_sigmf,
    record_sigmf,
    replay_sigmf,
    write_sigmf,
)
from heimdall.schemas.models import ClockSource, IqChunk, Position, SampleFormat
from heimdall.schemas.serde import Serde

pytestmark = pytest.mark.integration

DATA = shared_data_dir("kiwi-dcf77")
WAV = DATA / "20171127T104156Z_77500_DF0KL_iq.wav"
#: The shared recordings sit beside the clone (``../shared/data``); elsewhere these tests skip.
needs_recording = pytest.mark.skipif(
    not WAV.is_file(), reason="the shared KiwiSDR DCF77 recordings are not beside this clone"
)
RATE = 250_000.0
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
POS = Position(lat_deg=44.4, lon_deg=8.95, alt_m=30.0)


def consume_iq(
    settings: HeimdallSettings, group: str, n: int, timeout_s: float = 60
) -> list[IqChunk]:
    serde = Serde()
    c = kafka.consumer(settings, group)
    c.subscribe([settings.topics.iq])
    out: list[IqChunk] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            chunk = serde.decode(m.value() or b"", IqChunk)
            assert m.key() == chunk.receiver_id.encode()
            out.append(chunk)
    finally:
        c.close()
    return out


def sigmf_file(tmp_path: Path) -> Path:
    """Ten 0.1 s chunks of cf32 with a seq gap after the fifth: two capture segments."""
    rng = np.random.default_rng(42)
    chunks = []
    for k in range(10):
        iq = (rng.standard_normal(25_000) + 1j * rng.standard_normal(25_000)).astype(np.complex64)
        chunks.append(
            IqChunk(
                receiver_id="usrp-genova",
                seq=k if k < 5 else k + 3,
                t_ns=T0 + k * 100_000_000 + (50_000_000 if k >= 5 else 0),
                clock=ClockSource.NTP,
                center_freq_hz=162.025e6,
                sample_rate_hz=RATE,
                sample_format=SampleFormat.CF32,
                iq=0.1 * iq,
                full_scale_dbm=-20.0,
                position=POS,
                source="sigmf",
            )
        )
    return write_sigmf(chunks, tmp_path / "in" / "usrp-genova")


@pytest.fixture
def topics_ready(settings: HeimdallSettings) -> HeimdallSettings:
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    return settings


@needs_recording
def test_kiwi_and_sigmf_replay_then_record(
    topics_ready: HeimdallSettings, group_id: str, tmp_path: Path
) -> None:
    settings = topics_ready
    rec = read_kiwi_wav(WAV)
    expected_kiwi = list(kiwi_chunks(rec, position=kiwi_position(rec)))
    sig = sigmf_file(tmp_path)
    sig_rec = read_sigmf(sig)

    s1 = replay_kiwi_wav(settings, [WAV], realtime=False)
    s2 = replay_sigmf(settings, [sig], realtime=False, chunk_samples=12_500)
    assert s1.undelivered == 0 and s2.undelivered == 0
    assert s1.chunks == {"kiwi-df0kl": 138}
    assert s2.chunks == {"usrp-genova": 20}

    got = consume_iq(settings, group_id, 138 + 20)
    kiwi = sorted((c for c in got if c.receiver_id == "kiwi-df0kl"), key=lambda c: c.seq)
    usrp = sorted((c for c in got if c.receiver_id == "usrp-genova"), key=lambda c: c.seq)
    assert len(kiwi) == 138 and len(usrp) == 20

    # KiwiSDR: GPS clock, fitted rate, GPS-derived times, ci16 samples exactly as in the file
    assert all(c.clock is ClockSource.GPS and c.source == "kiwi-wav" for c in kiwi)
    assert {c.sample_rate_hz for c in kiwi} == {rec.fitted_rate_hz}
    assert [c.t_ns for c in kiwi] == [c.t_ns for c in expected_kiwi]
    assert sum(c.n_samples for c in kiwi) == rec.n_samples == 687 * 512
    assert np.array_equal(np.concatenate([c.iq for c in kiwi]), rec.samples)
    assert kiwi[0].position == Position(lat_deg=53.665337, lon_deg=7.282766, alt_m=0.0)
    assert kiwi[0].center_freq_hz == 77_500.0 and kiwi[0].published_ns > 0

    # SigMF: its clock, rate, capture times, cf32 samples
    assert all(c.clock is ClockSource.NTP and c.sample_format is SampleFormat.CF32 for c in usrp)
    assert {c.sample_rate_hz for c in usrp} == {RATE}
    assert [c.t_ns for c in usrp[::2]] == [
        T0 + k * 100_000_000 + (50_000_000 if k >= 5 else 0) for k in range(10)
    ]
    assert np.array_equal(np.concatenate([c.iq for c in usrp]), sig_rec.read_samples())
    assert usrp[0].position == POS and usrp[0].center_freq_hz == 162.025e6

    # the topic back to SigMF: the whole receiver ...
    res = record_sigmf(settings, "kiwi-df0kl", tmp_path / "out" / "df0kl", idle_timeout_s=20)
    assert res.meta_path is not None and res.chunks == 138 and res.captures == 1
    back = read_sigmf(res.meta_path)
    assert back.sample_rate_hz == rec.fitted_rate_hz and back.receiver_id == "kiwi-df0kl"
    assert back.captures[0].t_ns == expected_kiwi[0].t_ns
    assert back.captures[0].clock is ClockSource.GPS and back.position == kiwi[0].position
    assert np.array_equal(back.read_samples(), rec.samples)

    # ... a time range of it (whole chunks whose start lies in [from, to)) ...
    lo, hi = expected_kiwi[10].t_ns, expected_kiwi[20].t_ns
    part = record_sigmf(
        settings, "kiwi-df0kl", tmp_path / "out" / "part", from_ns=lo, to_ns=hi, idle_timeout_s=20
    )
    assert part.chunks == 10 and part.t_range_ns == (lo, expected_kiwi[19].t_ns)
    assert np.array_equal(
        read_sigmf(tmp_path / "out" / "part").read_samples(), rec.samples[10 * 2560 : 20 * 2560]
    )

    # ... and the SigMF replay recorded again: same samples, same capture segments
    res2 = record_sigmf(settings, "usrp-genova", tmp_path / "out" / "usrp", idle_timeout_s=20)
    again = read_sigmf(res2.meta_path or tmp_path / "missing")
    assert [(c.sample_start, c.t_ns, c.center_freq_hz, c.clock) for c in again.captures] == [
        (c.sample_start, c.t_ns, c.center_freq_hz, c.clock) for c in sig_rec.captures
    ]
    assert np.array_equal(again.read_samples(), sig_rec.read_samples())

    # nothing of an unknown receiver: no files
    none = record_sigmf(settings, "nobody", tmp_path / "out" / "nobody", idle_timeout_s=20)
    assert none.meta_path is None and not (tmp_path / "out" / "nobody.sigmf-data").exists()


def flat(text: str) -> str:
    """Output without rich's line wrapping."""
    return " ".join(text.split())


@needs_recording
def test_cli_commands(topics_ready: HeimdallSettings, group_id: str, tmp_path: Path) -> None:
    """The command functions as `heimdall receiver kiwi-wav|sigmf` and `heimdall record sigmf`
    will register them."""
    import typer
    from typer.testing import CliRunner

    from heimdall.infra.cli_recordings import receiver_kiwi_wav, receiver_sigmf, record_sigmf

    app = typer.Typer()
    app.command("kiwi-wav")(receiver_kiwi_wav)
    app.command("sigmf")(receiver_sigmf)
    app.command("record-sigmf")(record_sigmf)
    env = topics_ready.to_env()
    runner = CliRunner()

    r = runner.invoke(
        app,
        ["kiwi-wav", str(WAV), "--fast", "--position-file", str(DATA / "DF0KL.gnss_pos.txt")],
        env=env,
    )
    assert r.exit_code == 0, r.output
    assert "published 138 chunks (kiwi-df0kl: 138)" in flat(r.output)
    assert "DF0KL" in flat(r.output)  # the table of recordings

    r = runner.invoke(app, ["record-sigmf", "kiwi-df0kl", str(tmp_path / "rec")], env=env)
    assert r.exit_code == 0, r.output
    assert "138 chunks, 351744 samples, 1 capture segment(s)" in flat(r.output)
    assert (tmp_path / "rec" / "kiwi-df0kl.sigmf-meta").exists()

    r = runner.invoke(
        app,
        [
            "sigmf",
            str(tmp_path / "rec" / "kiwi-df0kl.sigmf-meta"),
            "--speed",
            "100",
            "--receiver-id",
            "copy-df0kl",
            "--clock",
            "ntp",
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    assert "copy-df0kl: 147" in flat(r.output)  # 351744 samples in chunks of round(0.2 * 12001.14)
    copies = [
        c for c in consume_iq(topics_ready, group_id, 138 + 147) if c.receiver_id == "copy-df0kl"
    ]
    assert len(copies) == 147 and all(c.clock is ClockSource.NTP for c in copies)

    r = runner.invoke(app, ["record-sigmf", "nobody", str(tmp_path / "rec")], env=env)
    assert r.exit_code == 1 and "no IQ chunks of 'nobody'" in flat(r.output)
