"""IMA ADPCM as OpenWebRX/KiwiSDR code it (csdr ``src/lib/adpcm.cpp``, github.com/luarvique/csdr;
``htdocs/lib/AudioEngine.js`` and ``htdocs/openwebrx.js`` of github.com/luarvique/openwebrx).

The encoder here is written from the IMA step/index tables and checked against vectors
computed by hand from the algorithm; the decoder must invert it exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.producers.adapters.adpcm import (
    COMPRESS_FFT_PAD_N,
    STEP_TABLE,
    SYNC_WORD,
    AdpcmCodec,
    SyncAdpcmDecoder,
    SyncAdpcmEncoder,
    decode_fft_row,
    encode_fft_row,
)


def test_tables_are_the_ima_tables() -> None:
    assert len(STEP_TABLE) == 89 and STEP_TABLE[0] == 7 and STEP_TABLE[-1] == 32767
    assert STEP_TABLE[8] == 16 and STEP_TABLE[16] == 34 and STEP_TABLE[24] == 73


def test_hand_computed_vector() -> None:
    """From reset: 100 → code 7 (d = 0+1+3+7 = 11, index 8); 100 → code 7 (d = 2+4+8+16 = 30,
    predictor 41, index 16); −50 → code 15 (d = −(4+8+17+34) = −63, predictor −22, index 24);
    0 → code 1 (d = 9+18 = 27, predictor 5, index 23). Low nibble first: 0x77, 0x1f."""
    enc = AdpcmCodec()
    assert enc.encode_samples([100, 100, -50, 0]) == b"\x77\x1f"
    assert (enc.index, enc.predictor) == (23, 5)
    dec = AdpcmCodec()
    assert dec.decode_bytes(b"\x77\x1f").tolist() == [11, 41, -22, 5]
    assert (dec.index, dec.predictor) == (23, 5)


def test_decoder_inverts_the_encoder_exactly() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(4000)
    x = np.clip(9000 * np.sin(2 * np.pi * 440 * t / 12_000) + 300 * rng.standard_normal(t.size),
                -32768, 32767).astype(np.int16)  # fmt: skip
    enc = AdpcmCodec()
    expected = []
    for v in x:  # the encoder's own predictor after each code is what a decoder must output
        enc.encode_sample(int(v))
        expected.append(enc.predictor)
    data = AdpcmCodec().encode_samples(x)
    assert len(data) == x.size // 2
    y = AdpcmCodec().decode_bytes(data)
    assert y.tolist() == expected
    assert np.sqrt(np.mean((y.astype(float) - x) ** 2)) < 0.05 * 9000  # it tracks the signal


def test_fft_row_layout_and_round_trip() -> None:
    rng = np.random.default_rng(1)
    row = (-95.0 + 2.0 * rng.standard_normal(1024)).astype(np.float32)
    data = encode_fft_row(row)
    assert len(data) == (COMPRESS_FFT_PAD_N + 1024) // 2
    # the first 5 bytes code the first bin's value ten times from a reset codec
    pad = AdpcmCodec()
    first = int(row[0] * 100)
    assert data[:5] == pad.encode_samples([first] * 10)
    back = decode_fft_row(data)
    assert back.shape == (1024,)
    err = back - row
    assert abs(float(np.median(err))) < 0.05 and float(np.abs(err[8:]).max()) < 5.0
    with pytest.raises(ValueError):
        decode_fft_row(b"\x00" * 5)
    with pytest.raises(ValueError):
        encode_fft_row(np.zeros(3))


def test_sync_stream_frames_and_split_decoding() -> None:
    x = (8000 * np.sin(2 * np.pi * np.arange(6000) * 1000 / 12_000)).astype(np.int16)
    enc = SyncAdpcmEncoder()
    data = enc.encode(x[:2000]) + enc.encode(x[2000:])
    # SYNC before byte 0 and then every 1001 coded bytes: 3000 bytes → 3 frames
    assert data[:4] == SYNC_WORD and data.count(SYNC_WORD) == 3
    assert len(data) == 3000 + 3 * 8
    assert data[8 + 1001 : 8 + 1001 + 4] == SYNC_WORD
    ref = AdpcmCodec().decode_bytes(data[8 : 8 + 1001])
    dec = SyncAdpcmDecoder()
    pieces = [data[i : i + 333] for i in range(0, len(data), 333)]  # cut anywhere
    y = np.concatenate([dec.decode(p) for p in pieces])
    assert y.size == 6000 and dec.syncs == 3
    assert y[:2002].tolist() == ref.tolist()
    np.testing.assert_allclose(y[20:], x[20:], atol=600)  # after the initial slew


def test_sync_decoder_joins_a_stream_in_the_middle() -> None:
    x = (5000 * np.sin(2 * np.pi * np.arange(8000) / 37)).astype(np.int16)
    data = SyncAdpcmEncoder().encode(x)
    dec = SyncAdpcmDecoder()
    y = dec.decode(data[500:])  # joins inside the first frame: skipped until the next SYNC
    assert dec.skipped == 1009 - 500
    np.testing.assert_allclose(y, x[2002:], atol=400)
