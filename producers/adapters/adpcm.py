"""IMA ADPCM as OpenWebRX and KiwiSDR use it: the codec, FFT rows, and the SYNC-framed stream.

The codec (IMA/DVI ADPCM, "Recommended Practices for Enhancing Digital Audio Compatibility
in Multimedia Systems", IMA, 1992) codes each 16-bit sample as a 4-bit difference code
against a predictor, with an adaptive step taken from an 89-entry step table (7 … 32767) and
moved by the index table ``[-1, -1, -1, -1, 2, 4, 6, 8]`` (the sign bit 8 does not change the
move). Decoding a code ``c`` with step ``s = STEP[index]``::

    d = s >> 3;  if c & 1: d += s >> 2;  if c & 2: d += s >> 1;  if c & 4: d += s
    if c & 8: d = -d
    predictor = clamp(predictor + d, -32768, 32767);  index = clamp(index + INDEX[c], 0, 88)

Encoding chooses the bits of ``c`` greedily from ``|x - predictor|`` against ``s``, ``s/2``,
``s/4`` and then decodes its own code so that both ends keep the same state. Two codes share a
byte, the **first sample in the low nibble** (``byte = c0 | c1 << 4``).

What is here follows the servers' sources (read, not copied):

* ``src/lib/adpcm.cpp`` / ``include/adpcm.hpp`` of csdr (github.com/jketterl/csdr and
  github.com/luarvique/csdr, used by OpenWebRX and OpenWebRX+): ``AdpcmCodec``,
  ``FftAdpcmEncoder`` and ``AdpcmEncoder(sync=True)``;
* the browser decoders ``ImaAdpcmCodec`` in ``htdocs/lib/AudioEngine.js`` and the FFT branch of
  ``on_ws_recv`` in ``htdocs/openwebrx.js`` of OpenWebRX(+);
* KiwiSDR's ``kiwi/client.py`` ``ImaAdpcmDecoder`` (github.com/jks-prv/kiwiclient), which is
  the same codec without the SYNC framing.

FFT rows (OpenWebRX ``fft_compression = "adpcm"``)
    Each waterfall row is coded on its own, from a reset codec (index 0, predictor 0). The
    float bin values (dB) are coded as ``(short)(value · 100)`` (C truncation toward zero, so
    the resolution is 0.01 dB). The row is preceded by ``COMPRESS_FFT_PAD_N = 10`` codes of
    the first bin's value (5 bytes) that let the adaptive step settle; the decoder drops those
    10 samples and divides the rest by 100. A row of N bins is ``(10 + N) / 2`` bytes.

SYNC-framed audio (OpenWebRX ``audio_compression = "adpcm"``)
    The encoder keeps one codec for the whole stream and, before the first byte and then every
    1001 bytes (its counter is set to 1000 and tested with ``counter-- <= 0`` before each
    byte), writes ``b"SYNC"``, the codec's step index and predictor as two int16 in the host's
    byte order (little-endian on every platform OpenWebRX runs on), 8 bytes in all. A decoder
    can therefore join the stream anywhere: it searches ``SYNC``, loads index and predictor
    and decodes the next 1001 bytes. Websocket messages cut this stream anywhere, so the
    decoder keeps its state across messages (:class:`SyncAdpcmDecoder`).

One deliberate difference from the browser: ``ImaAdpcmCodec.decodeNibble`` in the JS uses the
step of the *previous* call and restarts it at 0 on ``reset()`` (and does not reload it on a
SYNC), so its first code after a reset decodes with step 0 instead of 7. The decoder here is
the exact inverse of the C encoder (step from the current index), which is what the encoder
assumed; the JS's small constant offset (at most 11/100 dB on an FFT row) is not reproduced.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

__all__ = [
    "COMPRESS_FFT_PAD_N",
    "INDEX_TABLE",
    "STEP_TABLE",
    "SYNC_INTERVAL_BYTES",
    "SYNC_WORD",
    "AdpcmCodec",
    "SyncAdpcmDecoder",
    "SyncAdpcmEncoder",
    "decode_fft_row",
    "encode_fft_row",
]

#: The 89 IMA step sizes.
STEP_TABLE: tuple[int, ...] = (
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60,
    66, 73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230, 253, 279, 307, 337, 371,
    408, 449, 494, 544, 598, 658, 724, 796, 876, 963, 1060, 1166, 1282, 1411, 1552, 1707, 1878,
    2066, 2272, 2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845,
    8630, 9493, 10442, 11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086,
    29794, 32767,
)  # fmt: skip
#: Step-index move per 4-bit code (the sign bit 8 does not matter).
INDEX_TABLE: tuple[int, ...] = (-1, -1, -1, -1, 2, 4, 6, 8, -1, -1, -1, -1, 2, 4, 6, 8)
#: Codes of the first bin's value before each FFT row (csdr's ``COMPRESS_FFT_PAD_N``).
COMPRESS_FFT_PAD_N = 10
#: The marker of a SYNC frame in OpenWebRX's compressed audio.
SYNC_WORD = b"SYNC"
#: Coded bytes between two SYNC frames (the encoder's counter runs 1000 … 0 inclusive).
SYNC_INTERVAL_BYTES = 1001
_SYNC_STATE = struct.Struct("<hh")


def _build_tables() -> tuple[list[int], list[int]]:
    """(difference, next index) for every (index, code): ``t[index * 16 + code]``."""
    diffs: list[int] = []
    nexts: list[int] = []
    for index in range(89):
        step = STEP_TABLE[index]
        for code in range(16):
            d = step >> 3
            if code & 1:
                d += step >> 2
            if code & 2:
                d += step >> 1
            if code & 4:
                d += step
            diffs.append(-d if code & 8 else d)
            nexts.append(min(max(index + INDEX_TABLE[code], 0), 88))
    return diffs, nexts


_DIFF, _NEXT = _build_tables()


class AdpcmCodec:
    """One IMA ADPCM codec state (csdr's ``AdpcmCodec``): step index and predictor.

    The same object encodes (:meth:`encode_sample`) or decodes (:meth:`decode_sample`);
    the byte-level helpers pack two codes per byte, low nibble first.
    """

    __slots__ = ("index", "predictor")

    def __init__(self, index: int = 0, predictor: int = 0) -> None:
        self.index = index
        self.predictor = predictor

    def reset(self) -> None:
        """Index 0, predictor 0 (csdr ``AdpcmCodec::reset``)."""
        self.index = 0
        self.predictor = 0

    def decode_sample(self, code: int) -> int:
        """Decode one 4-bit code; returns the new predictor (the sample)."""
        k = self.index * 16 + (code & 15)
        p = self.predictor + _DIFF[k]
        self.predictor = -32768 if p < -32768 else (32767 if p > 32767 else p)
        self.index = _NEXT[k]
        return self.predictor

    def encode_sample(self, sample: int) -> int:
        """Code one int16 sample (csdr ``AdpcmCodec::encodeSample(short)``); returns the code."""
        diff = int(sample) - self.predictor
        step = STEP_TABLE[self.index]
        code = 0
        if diff < 0:
            code = 8
            diff = -diff
        if diff >= step:
            code |= 4
            diff -= step
        step >>= 1
        if diff >= step:
            code |= 2
            diff -= step
        step >>= 1
        if diff >= step:
            code |= 1
        self.decode_sample(code)
        return code

    def decode_bytes(self, data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
        """Decode packed codes (low nibble first): two int16 samples per byte."""
        out = [0] * (2 * len(data))
        diff_t, next_t = _DIFF, _NEXT
        index, pred = self.index, self.predictor
        j = 0
        for byte in bytes(data):
            for code in (byte & 15, byte >> 4):
                k = index * 16 + code
                pred += diff_t[k]
                if pred > 32767:
                    pred = 32767
                elif pred < -32768:
                    pred = -32768
                index = next_t[k]
                out[j] = pred
                j += 1
        self.index, self.predictor = index, pred
        return np.asarray(out, dtype=np.int16)

    def encode_samples(self, samples: npt.ArrayLike) -> bytes:
        """Code an even number of int16 samples into bytes (low nibble first)."""
        s = np.asarray(samples).astype(np.int64).reshape(-1)
        if s.size % 2:
            raise ValueError(f"ADPCM packs two samples per byte; got {s.size} samples")
        enc = self.encode_sample
        return bytes(enc(int(s[i])) | enc(int(s[i + 1])) << 4 for i in range(0, s.size, 2))


def _fft_short(value: float) -> int:
    """csdr's ``(short)(input * 100)``: truncation toward zero (clamped to int16 here)."""
    v = int(value * 100.0)
    return -32768 if v < -32768 else (32767 if v > 32767 else v)


def encode_fft_row(row_db: npt.ArrayLike) -> bytes:
    """Code one FFT row as csdr's ``FftAdpcmEncoder``: reset, 10 pad codes, then the bins.

    Parameters
    ----------
    row_db : array_like of float
        The N bin values, dB (N even).

    Returns
    -------
    bytes
        ``(10 + N) / 2`` bytes (without OpenWebRX's message type byte).
    """
    row = np.asarray(row_db, dtype=np.float32).reshape(-1)
    if row.size == 0 or row.size % 2:
        raise ValueError(f"an FFT row needs an even, non-zero number of bins, got {row.size}")
    codec = AdpcmCodec()
    first = _fft_short(float(row[0]))
    values = [first] * COMPRESS_FFT_PAD_N + [_fft_short(float(v)) for v in row]
    return codec.encode_samples(values)


def decode_fft_row(payload: bytes | bytearray | memoryview) -> npt.NDArray[np.float32]:
    """Decode one ADPCM FFT row (without the type byte) into N bin values, dB.

    The codec starts from reset, the first :data:`COMPRESS_FFT_PAD_N` samples are dropped and
    the rest divided by 100 (``htdocs/openwebrx.js``, ``on_ws_recv``, binary type 1).

    Raises
    ------
    ValueError
        When the payload is too short to hold the padding and one pair of bins.
    """
    if len(payload) <= COMPRESS_FFT_PAD_N // 2:
        raise ValueError(f"an ADPCM FFT row needs more than 5 bytes, got {len(payload)}")
    samples = AdpcmCodec().decode_bytes(payload)
    return samples[COMPRESS_FFT_PAD_N:].astype(np.float32) / np.float32(100.0)


class SyncAdpcmEncoder:
    """csdr's ``AdpcmEncoder(sync=True)``: one codec, a SYNC frame every 1001 coded bytes."""

    def __init__(self) -> None:
        self.codec = AdpcmCodec()
        self._counter = 0

    def encode(self, samples: npt.ArrayLike) -> bytes:
        """Code an even number of int16 samples; SYNC frames are inserted where due."""
        s = np.asarray(samples).astype(np.int64).reshape(-1)
        if s.size % 2:
            raise ValueError(f"ADPCM packs two samples per byte; got {s.size} samples")
        out = bytearray()
        enc = self.codec.encode_sample
        for i in range(0, s.size, 2):
            self._counter -= 1
            if self._counter + 1 <= 0:
                out += SYNC_WORD + _SYNC_STATE.pack(self.codec.index, self.codec.predictor)
                self._counter = 1000
            out.append(enc(int(s[i])) | enc(int(s[i + 1])) << 4)
        return bytes(out)


class SyncAdpcmDecoder:
    """Decoder of the SYNC-framed audio stream, fed with messages cut anywhere.

    Phases as in ``ImaAdpcmCodec.decodeWithSync`` (``htdocs/lib/AudioEngine.js``): 0 looks for
    ``SYNC`` (bytes before the first one are skipped and counted in :attr:`skipped`), 1 reads
    the 4 bytes of index and predictor, 2 decodes 1001 bytes, then back to 0. The nibble
    decoding is the C codec's (see the module docstring).
    """

    def __init__(self) -> None:
        self.codec = AdpcmCodec()
        self.skipped = 0
        self.syncs = 0
        self._phase = 0
        self._matched = 0
        self._state = bytearray()
        self._left = 0

    def decode(self, data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
        """Decode the next piece of the stream; returns the int16 samples it completes."""
        buf = memoryview(bytes(data))
        pieces: list[npt.NDArray[np.int16]] = []
        pos, n = 0, len(buf)
        while pos < n:
            if self._phase == 0:
                b = buf[pos]
                pos += 1
                if b == SYNC_WORD[self._matched]:
                    self._matched += 1
                    if self._matched == 4:
                        self._phase, self._matched = 1, 0
                        self._state.clear()
                else:
                    self.skipped += self._matched + (0 if b == SYNC_WORD[0] else 1)
                    self._matched = 1 if b == SYNC_WORD[0] else 0
            elif self._phase == 1:
                take = min(4 - len(self._state), n - pos)
                self._state += buf[pos : pos + take]
                pos += take
                if len(self._state) == 4:
                    index, pred = _SYNC_STATE.unpack(self._state)
                    self.codec.index = min(max(index, 0), 88)
                    self.codec.predictor = pred
                    self._left = SYNC_INTERVAL_BYTES
                    self._phase = 2
                    self.syncs += 1
            else:
                take = min(self._left, n - pos)
                pieces.append(self.codec.decode_bytes(buf[pos : pos + take]))
                pos += take
                self._left -= take
                if self._left == 0:
                    self._phase = 0
        if not pieces:
            return np.zeros(0, dtype=np.int16)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
