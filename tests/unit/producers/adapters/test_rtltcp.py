"""The rtl_tcp adapter against a local server speaking ``src/rtl_tcp.c``'s protocol.

The server (:mod:`.rtltcp_server`) reproduces osmocom ``rtl-sdr``'s ``src/rtl_tcp.c``
(github.com/osmocom/rtl-sdr) on the wire: the 12-byte ``RTL0`` greeting, unframed u8 I/Q,
5-byte big-endian commands.
"""

from __future__ import annotations

import asyncio
import struct
import time

import numpy as np
import pytest

from heimdall.core.errors import ConfigError
from heimdall.producers.adapters.base import AdapterOptions, ProtocolError
from heimdall.producers.adapters.options import build_config
from heimdall.producers.adapters.rtltcp import (
    DRIFT_PPM,
    NOMINAL_FULL_SCALE_DBM,
    RtlTcpAdapter,
    RtlTcpCommand,
    RtlTcpConfig,
    encode_command,
    parse_header,
)
from heimdall.schemas.models import ClockSource, IqChunk, ReceiverState, ReceiverStatus

from ._harness import (
    FAST,
    STALL_FAST,
    assert_stall_reported,
    free_port,
    receiver_info,
    run_until,
)
from .rtltcp_server import RtlTcpTestServer, Tone

F_CH = 145_500_000.0
FS = 1_152_000
OFFSET = FS // 4  # default tune offset
SETTLE_BYTES = 2 * round(0.1 * FS)
CHUNK_BYTES = 2 * 96 * 2400  # input bytes per 2400-sample output chunk
INFO = receiver_info("rtl-1", "rtltcp")


def adapter_for(
    server: RtlTcpTestServer, options: AdapterOptions = FAST, **cfg: object
) -> RtlTcpAdapter:
    conf = {"host": "127.0.0.1", "port": server.port, "freq_hz": F_CH, **cfg}
    return RtlTcpAdapter(INFO, RtlTcpConfig(**conf), options)  # type: ignore[arg-type]


def drain(adapter: RtlTcpAdapter) -> list[IqChunk]:
    return list(iter(adapter.buffer.get, None))


def spectrum_db(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed power spectrum, dB re full scale, with its frequencies (Hz)."""
    w = np.hanning(x.size)
    s = np.abs(np.fft.fft(x.astype(np.complex128) * w)) ** 2 / np.sum(w) ** 2
    return np.fft.fftfreq(x.size, 1 / fs), 10 * np.log10(s + 1e-30)


# ---------------------------------------------------------------- wire format


def test_header_and_commands_on_the_wire() -> None:
    head = b"RTL0\x00\x00\x00\x05\x00\x00\x00\x1d"
    info = parse_header(head)
    assert (info.tuner_type, info.gain_count, info.tuner_name) == (5, 29, "R820T")
    with pytest.raises(ProtocolError, match="RTL0"):
        parse_header(b"HTTP/1.1 400")
    assert encode_command(RtlTcpCommand.SET_FREQUENCY, 145_788_000) == b"\x01\x08\xb0\x8c\x60"
    assert encode_command(RtlTcpCommand.SET_FREQ_CORRECTION, -2) == b"\x05\xff\xff\xff\xfe"
    assert encode_command(RtlTcpCommand.SET_GAIN, 297) == b"\x04\x00\x00\x01\x29"


def test_tuning_commands_arrive_with_the_right_bytes() -> None:
    async def main() -> None:
        async with RtlTcpTestServer(tones=[Tone(F_CH, 0.1)], realtime=True) as srv:
            a = adapter_for(srv, gain_db=29.7, ppm=-2)
            await run_until(a, lambda: len(srv.commands) >= 6)
            expected = (
                b"\x02" + struct.pack(">I", FS)  # sample rate
                + b"\x05\xff\xff\xff\xfe"  # ppm −2, two's complement
                + b"\x01" + struct.pack(">I", int(F_CH) + OFFSET)  # f_LO = f_channel + fs/4
                + b"\x03\x00\x00\x00\x01"  # manual gain mode
                + b"\x04" + struct.pack(">I", 297)  # 29.7 dB in tenths
                + b"\x08\x00\x00\x00\x00"  # RTL AGC off
            )  # fmt: skip
            assert bytes(srv.raw_commands) == expected
            assert srv.center_freq_hz == F_CH + OFFSET and srv.sample_rate_hz == FS

        async with RtlTcpTestServer(realtime=True) as srv:
            a = adapter_for(srv, tune_offset_hz=-200_000, sample_rate_hz=2_400_000)
            await run_until(a, lambda: len(srv.commands) >= 4)
            assert srv.commands == [(0x02, 2_400_000), (0x01, int(F_CH) - 200_000),
                                    (0x03, 0), (0x08, 0)]  # fmt: skip

    asyncio.run(main())


# ------------------------------------------------------------------- spectrum


def test_decimated_spectrum_has_the_tone_at_its_offset_and_aliases_rejected() -> None:
    """Tone 1.5 kHz above the channel; a tone of the same level 13 kHz above it would fold
    onto +1 kHz in the last stage; the dongle's DC spike sits 288 kHz above the channel."""

    async def main() -> None:
        tones = [Tone(F_CH + 1500, 0.3), Tone(F_CH + 13_000, 0.3)]
        async with RtlTcpTestServer(tones=tones, dc=0.2 + 0.1j, realtime=False) as srv:
            a = adapter_for(srv, gain_db=30.0, options=AdapterOptions(buffer_chunks=256))
            await run_until(a, lambda: a.stats.chunks >= 5)
        chunks = drain(a)
        c = chunks[-1]
        assert c.center_freq_hz == F_CH and c.sample_rate_hz == 12_000.0
        assert c.clock is ClockSource.NTP and c.source == "rtltcp" and c.gain_db == 30.0
        assert c.full_scale_dbm == NOMINAL_FULL_SCALE_DBM - 30.0 - 1.5
        x = np.concatenate([c.iq for c in chunks[1:]])[-8192:]
        f, p = spectrum_db(x, 12_000.0)
        k = int(np.argmax(p))
        assert abs(f[k] - 1500.0) <= 12_000 / 8192  # within one FFT bin
        assert p[k] == pytest.approx(20 * np.log10(0.3), abs=0.5)  # level kept (±u8 steps)
        alias = p[np.argmin(np.abs(f - 1000.0))]
        assert p[k] - alias >= 60.0 - 1.0  # the designed 60 dB (1 dB for Hann leakage, noise)
        dc = p[np.argmin(np.abs(f - 0.0))]
        assert p[k] - dc >= 59.0 - 20 * np.log10(0.3 / abs(0.2 + 0.1j))

    asyncio.run(main())


# ----------------------------------------------------------------- failures


def test_reconnects_after_a_disconnect_in_the_middle_of_an_iq_pair() -> None:
    async def main() -> None:
        cut = SETTLE_BYTES + 3 * CHUNK_BYTES + 1  # odd: the last I has no Q
        srv = RtlTcpTestServer(tones=[Tone(F_CH + 1500, 0.3)], realtime=False, cut_after_bytes=cut)
        async with srv:
            a = adapter_for(srv, options=AdapterOptions(
                buffer_chunks=256, backoff_base_s=0.02, backoff_cap_s=0.05, seed=4))  # fmt: skip
            seen = await run_until(a, lambda: srv.connections >= 2 and a.stats.chunks >= 7)
        assert a.stats.sessions >= 2 and a.stats.errors >= 1
        assert any(s.state is ReceiverState.ERROR and s.message ==
                   f"rtl_tcp at 127.0.0.1:{srv.port} closed the connection"
                   for s in seen)  # fmt: skip
        chunks = drain(a)
        assert [c.seq for c in chunks] == list(range(len(chunks)))  # seq continues
        # after the reconnect the I/Q pairs are aligned again: the tone is at +1.5 kHz, not
        # at −1.5 kHz (what a stray byte would make of it by swapping I and Q)
        x = np.concatenate([c.iq for c in chunks[4:7]])
        f, p = spectrum_db(x, 12_000.0)
        assert abs(f[int(np.argmax(p))] - 1500.0) <= 12_000 / x.size

    asyncio.run(main())


def test_a_stalled_server_is_detected_within_the_timeout() -> None:
    async def main() -> None:
        srv = RtlTcpTestServer(realtime=True, stall_after_bytes=SETTLE_BYTES + CHUNK_BYTES)
        async with srv:
            a = adapter_for(srv, options=STALL_FAST)
            seen = await run_until(a, lambda: srv.connections >= 2, timeout_s=10)
        assert_stall_reported(seen, a)

    asyncio.run(main())


def test_refused_connection_gives_the_one_line_error(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    a = RtlTcpAdapter(INFO, RtlTcpConfig(host="127.0.0.1", port=port, freq_hz=F_CH), FAST)

    async def main() -> list[ReceiverStatus]:
        return await run_until(a, lambda: a.stats.errors >= 3)

    seen = asyncio.run(main())
    want = (
        f"rtl_tcp at 127.0.0.1:{port} refused the connection: is rtl_tcp running and "
        "listening on that port?"
    )
    errors = [s for s in seen if s.state is ReceiverState.ERROR]
    assert errors and all(s.message == want for s in errors)
    logged = [r.getMessage() for r in caplog.records if want in r.getMessage()]
    assert len(logged) == 1  # the same error again is not logged again


def test_a_server_that_is_not_rtl_tcp_is_named_as_such() -> None:
    async def main() -> None:
        async with RtlTcpTestServer(malformed_header=True) as srv:
            a = adapter_for(srv)
            seen = await run_until(a, lambda: a.stats.errors >= 2)
            msg = next(s.message for s in seen if s.state is ReceiverState.ERROR)
            assert msg is not None
            assert msg.startswith(f"rtl_tcp at 127.0.0.1:{srv.port} did not greet with the "
                                  "rtl_tcp header (got b'HTTP/1.1 400'")  # fmt: skip
            assert msg.endswith("is this port an rtl_tcp server?")
            assert a.stats.chunks == 0

    asyncio.run(main())


# ----------------------------------------------------------------- timestamps


def test_timestamps_follow_the_sample_clock_and_the_host_clock() -> None:
    async def main() -> None:
        async with RtlTcpTestServer(tones=[Tone(F_CH, 0.1)], realtime=True) as srv:
            a = adapter_for(srv)
            await run_until(a, lambda: a.stats.chunks >= 6)
            now = time.time_ns()
        chunks = drain(a)
        steps = np.diff([c.t_ns for c in chunks[1:]]) / 1e9
        # the epoch (running minimum of arrival − samples so far) creeps forward by DRIFT_PPM
        # of the wall time between reads, and steps back at once when a read arrives sooner
        # than any before (a loaded machine delays the first reads): with reads less than 1 s
        # apart no step is longer than 0.2 s + 100 µs, and between corrections it is 0.2 s
        assert np.all(steps <= 0.2 + DRIFT_PPM * 1e-6 * 1.0), steps
        assert abs(np.median(steps) - 0.2) <= 0.001, steps
        end_s = (chunks[-1].t_ns + 0.2e9 - now) / 1e9
        assert -0.3 < end_s <= 0.0  # the last sample was taken before we read it

    asyncio.run(main())


def test_paced_reads_wake_the_loop_once_per_block_and_change_no_sample() -> None:
    """Read pacing (``max_read_pause_s``): the data waits in the kernel between reads, so
    a 288 kS/s stream sent in 20 ms pieces is read ~10 times a second instead of ~50, with
    the same samples and timestamps within the same bounds."""
    fs = 288_000

    async def one(pause_s: float) -> tuple[list[IqChunk], int, int]:
        async with RtlTcpTestServer(
            tones=[Tone(F_CH + 1500, 0.3)], realtime=True, sample_rate_hz=fs,
            block_bytes=2 * fs // 50,
        ) as srv:  # fmt: skip
            a = adapter_for(srv, sample_rate_hz=fs, max_read_pause_s=pause_s)
            reads = [0]
            count = a.data_received

            def counted(nbytes: int) -> None:
                reads[0] += 1
                count(nbytes)

            a.data_received = counted  # type: ignore[method-assign]
            await run_until(a, lambda: a.stats.chunks >= 6)
            now = time.time_ns()
        chunks = drain(a)
        end_ns = chunks[-1].t_ns + 0.2e9 - now
        return chunks, reads[0], int(end_ns)

    async def main() -> None:
        paced, paced_reads, paced_end = await one(0.15)
        eager, eager_reads, _ = await one(0.0)
        n = min(len(paced), len(eager))
        assert n >= 6
        for p, e in zip(paced[:n], eager[:n], strict=True):
            np.testing.assert_array_equal(p.iq, e.iq)
        # ~1.3 s of streaming: ~65 reads unpaced, ~13 paced
        assert paced_reads * 2 < eager_reads
        steps = np.diff([c.t_ns for c in paced[1:]]) / 1e9
        np.testing.assert_allclose(steps, 0.2, atol=0.005)
        assert -0.35e9 < paced_end <= 0

    asyncio.run(main())


# ---------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"sample_rate_hz": 500_000}, "sample_rate_hz: 500000 is not a rate"),
        ({"sample_rate_hz": 1_024_000}, "not an integer multiple of channel_rate_hz"),
        ({"tune_offset_hz": 3000}, "tune_offset_hz: 3000 Hz puts the dongle's DC spike"),
        ({"tune_offset_hz": 500_000}, "at the edge of the dongle"),
        ({"port": 70000}, "port: 70000"),
    ],
)
def test_bad_configs_are_one_line_errors(cfg: dict[str, object], match: str) -> None:
    conf = {"host": "h", "freq_hz": F_CH, **cfg}
    with pytest.raises(ConfigError, match=match):
        build_config(RtlTcpConfig, conf).check()
