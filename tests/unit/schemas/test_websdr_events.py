"""WaterfallRow and AudioChunk: wire layout, both framings, bad lengths, what the numbers mean."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heimdall.core.errors import InvalidEventError
from heimdall.schemas import catalog
from heimdall.schemas.models import AudioChunk, WaterfallRow
from heimdall.schemas.serde import Serde

from .examples import audio_chunk, waterfall_row


def test_topic_roles_of_the_web_receiver_events() -> None:
    assert catalog.schema_for_role("waterfall").name == WaterfallRow.SCHEMA
    assert catalog.schema_for_role("audio").name == AudioChunk.SCHEMA


@pytest.mark.parametrize("name", [WaterfallRow.SCHEMA, AudioChunk.SCHEMA])
def test_every_field_says_what_it_means(name: str) -> None:
    entry = catalog.current()[name]
    undocumented = [f["name"] for f in entry.expanded["fields"]
                    if f["name"] != "receiver_id" and not f.get("doc")]  # fmt: skip
    assert undocumented == []


def test_waterfall_values_are_float32_little_endian() -> None:
    row = waterfall_row(n_bins=4)
    row = replace(row, values=np.array([-1.5, 0, 2.25, -100.0], dtype=np.float32))
    d = row.to_dict()
    assert d["values"] == np.array([-1.5, 0.0, 2.25, -100.0], dtype="<f4").tobytes()
    assert WaterfallRow.from_dict(d) == row


def test_audio_samples_are_int16_little_endian() -> None:
    a = audio_chunk(n=3)
    a = replace(a, samples=np.array([1, -2, 32767], dtype=np.int16))
    d = a.to_dict()
    assert d["samples"] == b"\x01\x00\xfe\xff\xff\x7f"
    assert AudioChunk.from_dict(d) == a
    assert a.duration_s == pytest.approx(3 / 12_000)


@pytest.mark.parametrize("obj", [waterfall_row(), audio_chunk()], ids=lambda o: type(o).__name__)
def test_both_framings(obj: WaterfallRow | AudioChunk) -> None:
    plain = Serde()
    data = plain.encode(obj)
    assert data[:2] == b"\xc3\x01"
    assert plain.decode(data, expect=type(obj)) == obj


def test_bad_lengths_are_invalid_events() -> None:
    serde = Serde()
    d = waterfall_row().to_dict()
    d["values"] = d["values"][:-2]
    with pytest.raises(InvalidEventError, match=r"^values: 4094 bytes is not a whole number"):
        serde.decode(serde.encode_dict(WaterfallRow.SCHEMA, d))
    d["values"] = d["values"][:-2]
    with pytest.raises(InvalidEventError, match=r"^values: 1023 values, expected 1024"):
        serde.decode(serde.encode_dict(WaterfallRow.SCHEMA, d))
    a = audio_chunk().to_dict()
    a["samples"] = a["samples"][:-1]
    with pytest.raises(InvalidEventError, match=r"^samples: 5999 bytes is not a whole number"):
        serde.decode(serde.encode_dict(AudioChunk.SCHEMA, a))
    with pytest.raises(InvalidEventError, match=r"^values: 3 values, n_bins is 1024"):
        replace(waterfall_row(), values=np.zeros(3, "f4")).to_dict()


def test_waterfall_bin_powers_undo_csdr_scaling() -> None:
    """White noise of power σ² through csdr's FFT: P_k add up to σ² (Parseval)."""
    n, k, sigma2 = 1024, 8, 1e-3
    rng = np.random.default_rng(1)
    w = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(n) / (n - 1))
    acc = np.zeros(n)
    for _ in range(k):
        x = np.sqrt(sigma2 / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
        acc += np.abs(np.fft.fft(x * w)) ** 2
    v = np.fft.fftshift(10 * np.log10(acc / k) - 70.0).astype(np.float32)
    row = replace(waterfall_row(n_bins=n), values=v)
    assert row.bin_powers().sum() == pytest.approx(sigma2, rel=0.03)
    f = row.freqs_hz()
    assert f[n // 2] == row.center_freq_hz and f[1] - f[0] == pytest.approx(row.bin_hz)
