"""The KiwiSDR adapter against a local server speaking ``rx/rx_sound.cpp``'s SND protocol.

The server (:mod:`.kiwisdr_server`) reproduces the KiwiSDR firmware
(github.com/jks-prv/Beagle_SDR_GPS: ``rx/rx_sound.cpp``, ``rx/rx_sound.h``,
``rx/rx_sound_cmd.cpp``) on the wire; the commands checked are those of
github.com/jks-prv/kiwiclient ``kiwi/client.py`` and ``kiwirecorder.py``.
"""

from __future__ import annotations

import asyncio
import struct
import time

import numpy as np
import pytest

from heimdall.core.errors import ConfigError
from heimdall.producers.adapters.base import AdapterOptions
from heimdall.producers.adapters.kiwisdr import (
    KiwiSdrAdapter,
    KiwiSdrConfig,
    gps_stamp_to_utc_ns,
    parse_msg,
    parse_snd,
    rx_commands,
)
from heimdall.producers.adapters.options import build_config
from heimdall.producers.recordings.gpstime import utc_ns_to_gps_ns
from heimdall.schemas.models import (
    ClockSource,
    IqChunk,
    Measurement,
    ReceiverState,
    ReceiverStatus,
)

from ._harness import (
    FAST,
    STALL_FAST,
    assert_stall_reported,
    free_port,
    receiver_info,
    run_until,
)
from .kiwisdr_server import KiwiTestServer, Tone

F_CH = 10_000_000.0
FS = 12_001.135
INFO = receiver_info("kiwi-1", "kiwisdr")


def adapter_for(
    server: KiwiTestServer, options: AdapterOptions = FAST, **cfg: object
) -> KiwiSdrAdapter:
    conf = {"host": "127.0.0.1", "port": server.port, "freq_hz": F_CH, **cfg}
    return KiwiSdrAdapter(INFO, KiwiSdrConfig(**conf), options)  # type: ignore[arg-type]


def drain(adapter: KiwiSdrAdapter) -> tuple[list[IqChunk], list[Measurement]]:
    items = list(iter(adapter.buffer.get, None))
    return ([c for c in items if isinstance(c, IqChunk)],
            [m for m in items if isinstance(m, Measurement)])  # type: ignore[misc]  # fmt: skip


# ---------------------------------------------------------------- wire format


def test_snd_frame_bytes() -> None:
    """``snd_pkt_iq_t``: tag, flags, seq LE, S-meter BE, GPS fields LE, BE int16 I/Q."""
    data = (b"SND" + bytes([0x08]) + struct.pack("<I", 7) + struct.pack(">H", 470)
            + bytes([3, 0]) + struct.pack("<II", 466823, 886417795)
            + struct.pack(">hhhh", 16384, -16384, 0, 32767))  # fmt: skip
    f = parse_snd(data)
    assert (f.flags, f.seq, f.last_gps_solution, f.gpssec, f.gpsnsec) == (8, 7, 3, 466823,
                                                                         886417795)  # fmt: skip
    assert f.rssi_dbm == pytest.approx(-80.0)  # 0.1 · 470 − 127
    assert f.iq.tolist() == [complex(0.5, -0.5), complex(0.0, 32767 / 32768)]
    le = bytearray(data)
    le[3] = 0x88
    le[20:] = struct.pack("<hhhh", 16384, -16384, 0, 32767)
    assert parse_snd(bytes(le)).iq.tolist() == f.iq.tolist()
    for bad in (data[:15], data[:-1], b"SND\x10" + data[4:]):
        with pytest.raises(ValueError):
            parse_snd(bad)
    assert parse_msg(b"MSG audio_init=0 audio_rate=12000 down") == {
        "audio_init": "0", "audio_rate": "12000", "down": None}  # fmt: skip


def test_gps_week_is_the_one_nearest_the_host_clock() -> None:
    now = time.time_ns()
    gps = utc_ns_to_gps_ns(now) % (604_800 * 10**9)
    sec, nsec = divmod(gps, 10**9)
    assert gps_stamp_to_utc_ns(sec, nsec, now + 2 * 10**9) == now
    assert gps_stamp_to_utc_ns(sec, nsec, now - 3 * 86400 * 10**9) == now  # far but same week


def test_commands_are_exactly_kiwirecorders() -> None:
    async def main() -> None:
        async with KiwiTestServer(password="pw") as srv:
            a = adapter_for(srv, password="pw", agc=False, man_gain_db=40)
            await run_until(a, lambda: a.stats.chunks >= 1)
        log = srv.received[0]
        assert log[:9] == [
            "SET auth t=kiwi p=pw",
            "SET AR OK in=12000 out=44100",
            "SET squelch=0 max=0",
            "SET genattn=0",
            "SET gen=0 mix=-1",
            "SET ident_user=heimdall",
            "SET mod=iq low_cut=-5000 high_cut=5000 freq=10000.000",
            "SET agc=0 hang=0 thresh=-100 slope=6 decay=1000 manGain=40",
            "SET keepalive",
        ]
        assert "SET keepalive" in log[9:] or a.frames < 30
        assert rx_commands(KiwiSdrConfig(host="h", freq_hz=7_074_000), 0.0)[4] == (
            "SET mod=iq low_cut=-5000 high_cut=5000 freq=7074.000"
        )

    asyncio.run(main())


# ------------------------------------------------------------------ samples


def test_iq_gps_time_and_s_meter_reference() -> None:
    async def main() -> None:
        tone = Tone(F_CH + 1000, 0.25)
        async with KiwiTestServer(tones=[tone], full_scale_dbm=-10.0) as srv:
            a = adapter_for(srv, rssi_measurements=True)
            await run_until(a, lambda: a.stats.chunks >= 8)
        chunks, ms = drain(a)
        c = chunks[-1]
        assert c.clock is ClockSource.GPS and c.sample_rate_hz == pytest.approx(FS)
        assert c.center_freq_hz == F_CH and c.n_samples == 2400 and c.source == "kiwisdr"
        # the first frame (stale stamp) was dropped: chunk k starts at frame 1 + 2400 k samples
        for k, ch in enumerate(chunks):
            want = srv.frame_times_ns[1] + round(2400 * k * 1e9 / FS)
            assert abs(ch.t_ns - want) <= 2, (k, ch.t_ns - want)
        x = np.concatenate([k.iq for k in chunks[-3:]])
        spec = np.abs(np.fft.fft(x * np.hanning(x.size)))
        assert abs(np.fft.fftfreq(x.size, 1 / FS)[np.argmax(spec)] - 1000) <= FS / x.size
        # S-meter referencing: a full-scale signal is −10 dBm at the server, −1.5 dB calibration
        assert c.full_scale_dbm == pytest.approx(-10.0 - 1.5, abs=0.2)
        m = ms[-1]
        assert m.chunk_id == c.event_id and m.clock is ClockSource.GPS
        p_true = 10 * np.log10(0.25**2 + 0.01**2) - 10.0
        assert m.power_dbm == pytest.approx(p_true - 1.5, abs=0.2)
        assert m.noise_floor_dbm_hz == pytest.approx(10 * np.log10(1e-4 / FS) - 10 - 1.5, abs=1.0)
        assert m.detected and m.channel_id == "10.0000MHz"

    asyncio.run(main())


def test_without_a_recent_gps_solution_the_clock_is_ntp() -> None:
    async def main() -> None:
        async with KiwiTestServer(last_gps_solution=255) as srv:
            a = adapter_for(srv, full_scale_dbm=-20.0)
            await run_until(a, lambda: a.stats.chunks >= 3)
            now = time.time_ns()
        chunks, _ = drain(a)
        assert all(c.clock is ClockSource.NTP for c in chunks)
        assert chunks[-1].full_scale_dbm == -21.5
        end_s = (chunks[-1].t_ns + 2400 / FS * 1e9 - now) / 1e9
        assert -0.5 < end_s <= 0.01
        assert a.gps_frames == 0

    asyncio.run(main())


# ----------------------------------------------------------------- failures


def test_malformed_frames_are_counted_and_skipped() -> None:
    async def main() -> None:
        async with KiwiTestServer(malformed_every=3) as srv:
            a = adapter_for(srv)
            await run_until(a, lambda: a.stats.chunks >= 3 and a.stats.malformed >= 6)
        r = a.stats.malformed_reasons
        assert r["bad SND frame"] >= 4 and r["unknown message tag"] >= 2
        assert a.stats.sessions == 1
        chunks, _ = drain(a)
        assert all(c.clock is ClockSource.GPS for c in chunks)

    asyncio.run(main())


def test_reconnects_after_a_drop_in_the_middle_of_a_frame() -> None:
    async def main() -> None:
        async with KiwiTestServer(cut_after_frames=12, realtime=False) as srv:
            a = adapter_for(srv, options=AdapterOptions(buffer_chunks=256, backoff_base_s=0.02,
                                                        backoff_cap_s=0.05, seed=2))  # fmt: skip
            seen = await run_until(a, lambda: srv.connections >= 2 and a.stats.chunks >= 6)
        want = f"KiwiSDR at 127.0.0.1:{srv.port} dropped the connection without a close frame"
        assert any(s.state is ReceiverState.ERROR and s.message == want for s in seen)
        chunks, _ = drain(a)
        assert [c.seq for c in chunks] == list(range(len(chunks)))

    asyncio.run(main())


def test_a_stalled_server_is_detected_within_the_timeout() -> None:
    async def main() -> None:
        async with KiwiTestServer(stall_after_frames=5) as srv:
            a = adapter_for(srv, options=STALL_FAST)
            seen = await run_until(a, lambda: srv.connections >= 2)
        assert_stall_reported(seen, a)

    asyncio.run(main())


def test_refused_connection_gives_the_one_line_error(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    a = KiwiSdrAdapter(INFO, KiwiSdrConfig(host="127.0.0.1", port=port, freq_hz=F_CH), FAST)

    async def main() -> list[ReceiverStatus]:
        return await run_until(a, lambda: a.stats.errors >= 3)

    seen = asyncio.run(main())
    want = (f"KiwiSDR at 127.0.0.1:{port} refused the connection: is the KiwiSDR up and is "
            "that its port (8073 by default)?")  # fmt: skip
    errors = [s for s in seen if s.state is ReceiverState.ERROR]
    assert errors and all(s.message == want for s in errors)
    assert len([r for r in caplog.records if want in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("server", "cfg", "want"),
    [
        ({"too_busy": True}, {}, "refused us: all client slots are taken"),
        ({"password": "secret"}, {"password": "wrong"}, "refused us: bad password"),
        ({"not_kiwi": True}, {}, "instead of a tagged message (MSG/SND): is this a KiwiSDR?"),
    ],
)
def test_refusals_and_servers_that_are_not_kiwis(
    server: dict[str, object], cfg: dict[str, object], want: str
) -> None:
    async def main() -> None:
        async with KiwiTestServer(**server) as srv:  # type: ignore[arg-type]
            a = adapter_for(srv, FAST, **cfg)
            seen = await run_until(a, lambda: a.stats.errors >= 2)
        msg = next(s.message for s in seen if s.state is ReceiverState.ERROR)
        assert msg is not None and msg.startswith(f"KiwiSDR at 127.0.0.1:{srv.port}")
        assert want in msg and a.stats.chunks == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    ("cfg", "match"),
    [({"port": 0}, "port: 0"), ({"freq_hz": 145e6}, "freq_hz"), ({"user": "a b"}, "user")],
)
def test_bad_configs_are_one_line_errors(cfg: dict[str, object], match: str) -> None:
    conf = {"host": "h", "freq_hz": F_CH, **cfg}
    with pytest.raises(ConfigError, match=match):
        build_config(KiwiSdrConfig, conf).check()
