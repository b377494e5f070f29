"""The OpenWebRX adapter against a local server speaking ``owrx/connection.py``'s protocol.

The server (:mod:`.openwebrx_server`) reproduces OpenWebRX / OpenWebRX+
(github.com/jketterl/openwebrx, github.com/luarvique/openwebrx: ``owrx/connection.py``,
``owrx/dsp.py``, ``owrx/fft.py``, ``csdr/chain/fft.py``) and csdr's FFT and ADPCM
(github.com/luarvique/csdr ``src/lib/``) on the wire: the ``SERVER DE CLIENT`` /
``CLIENT DE SERVER`` handshake, the JSON messages, binary FFT rows (type 1), audio (type 2).
"""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
import pytest

from heimdall.core.errors import ConfigError
from heimdall.producers.adapters.adpcm import SyncAdpcmDecoder, decode_fft_row, encode_fft_row
from heimdall.producers.adapters.base import AdapterOptions
from heimdall.producers.adapters.openwebrx import (
    OpenWebRxAdapter,
    OpenWebRxConfig,
    bin_powers,
    channel_power,
    client_handshake,
    parse_server_handshake,
)
from heimdall.producers.adapters.options import build_config
from heimdall.schemas.models import (
    AudioChunk,
    ClockSource,
    Measurement,
    ReceiverState,
    ReceiverStatus,
    WaterfallRow,
)

from ._harness import (
    FAST,
    STALL_FAST,
    assert_stall_reported,
    free_port,
    receiver_info,
    run_until,
)
from .openwebrx_server import OpenWebRxTestServer, Tone

CENTER = 145_000_000.0
F_CH = 145_010_000.0
INFO = receiver_info("owrx-1", "openwebrx")


def adapter_for(
    server: OpenWebRxTestServer, options: AdapterOptions = FAST, **cfg: object
) -> OpenWebRxAdapter:
    # Waterfall rows and audio chunks off unless a test asks: the buffer holds measurements.
    conf = {"url": server.url, "freq_hz": F_CH, "integration_s": 0.3,
            "publish_waterfall": False, "publish_audio": False, **cfg}  # fmt: skip
    return OpenWebRxAdapter(INFO, OpenWebRxConfig(**conf), options)  # type: ignore[arg-type]


def drain(adapter: OpenWebRxAdapter) -> list[Measurement]:
    out = list(iter(adapter.buffer.get, None))
    assert all(isinstance(m, Measurement) for m in out)
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------- wire format


def test_handshake_strings() -> None:
    assert client_handshake() == "SERVER DE CLIENT client=heimdall type=receiver"
    assert parse_server_handshake("CLIENT DE SERVER server=openwebrx version=v1.2.80") == {
        "server": "openwebrx",
        "version": "v1.2.80",
    }
    with pytest.raises(ValueError):
        parse_server_handshake("HTTP/1.1 200 OK")
    cfg = OpenWebRxConfig(url="http://sdr.example:8073", freq_hz=F_CH)
    assert cfg.ws_url == "ws://sdr.example:8073/ws/"
    assert OpenWebRxConfig(url="ws://h:1/ws/", freq_hz=1.0).ws_url == "ws://h:1/ws/"


def test_client_messages_are_exactly_what_the_web_client_sends() -> None:
    async def main() -> None:
        async with OpenWebRxTestServer(tones=[Tone(F_CH, 0.01)]) as srv:
            a = adapter_for(srv, profile="rtl|2m", magic_key="k")
            await run_until(a, lambda: a.stats.chunks >= 1)
        log = srv.received[0]
        assert log[:5] == [
            "SERVER DE CLIENT client=heimdall type=receiver",
            '{"type":"connectionproperties","params":{"output_rate":12000,"hd_output_rate":48000}}',
            '{"type":"selectprofile","params":{"profile":"rtl|2m","key":"k"}}',
            '{"type":"dspcontrol","params":{"low_cut":-6000.0,"high_cut":6000.0,'
            '"offset_freq":10000,"mod":"nfm","squelch_level":-150.0}}',
            '{"type":"dspcontrol","action":"start"}',
        ]
        assert a.server.handshake == {"server": "openwebrx", "version": "v1.2.80"}
        assert a.server.details["receiver_name"] == "test"

    asyncio.run(main())


def test_setfrequency_moves_the_centre_and_the_offset_follows() -> None:
    async def main() -> None:
        async with OpenWebRxTestServer(tones=[Tone(F_CH, 0.01)]) as srv:
            a = adapter_for(srv, center_freq_hz=145_050_000.0)
            await run_until(a, lambda: a.stats.chunks >= 1)
        msgs = [json.loads(m) for m in srv.received[0][1:]]
        assert {"type": "setfrequency", "params": {"frequency": 145_050_000}} in msgs
        dsp = [m["params"] for m in msgs if m["type"] == "dspcontrol" and "params" in m]
        offsets = [p["offset_freq"] for p in dsp if "offset_freq" in p]
        assert offsets[-1] == -40_000  # 145.010 MHz − 145.050 MHz

    asyncio.run(main())


# ------------------------------------------------------------------ numbers


def test_channel_power_of_a_known_tone_on_uncompressed_rows() -> None:
    srv = OpenWebRxTestServer(tones=[Tone(F_CH + 1000, 0.1)], noise_rms=0.01,
                              fft_compression="none")  # fmt: skip
    rows = [srv.fft_row_db() for _ in range(4)]
    p = np.mean([bin_powers(r) for r in rows], axis=0)
    assert p.sum() == pytest.approx(0.1**2 + 0.01**2, rel=0.02)  # Parseval
    cp = channel_power(p, sample_rate_hz=240e3, center_freq_hz=CENTER, channel_freq_hz=F_CH,
                       low_cut_hz=-6000, high_cut_hz=6000, dof=2 * srv.averages * 4)  # fmt: skip
    assert 10 * math.log10(cp.signal) == pytest.approx(-20.0, abs=0.1)
    assert 10 * math.log10(cp.noise_density) == pytest.approx(
        10 * math.log10(0.01**2 / 240e3), abs=0.15
    )
    assert cp.freq_offset_hz == pytest.approx(1000.0, abs=240e3 / 1024 / 4)
    assert cp.n_bins == 51 and cp.bin_hz == 240e3 / 1024


def test_measurements_from_the_waterfall_and_the_s_meter() -> None:
    """Float rows, measure=fft: the tone's power (−20 dBFS) − 1.5 dB calibration; ADPCM rows
    with the S-meter (measure=combined): −30 dBFS from the S-meter minus the FFT noise."""

    async def main() -> None:
        async with OpenWebRxTestServer(tones=[Tone(F_CH + 1000, 0.1)],
                                       fft_compression="none") as srv:  # fmt: skip
            a = adapter_for(srv, measure="fft")
            await run_until(a, lambda: a.stats.chunks >= 3)
        ms = drain(a)
        m = ms[-1]
        assert m.power_dbm == pytest.approx(-20.0 - 1.5, abs=0.3)
        assert m.noise_floor_dbm_hz == pytest.approx(10 * math.log10(1e-4 / 240e3) - 1.5, abs=0.3)
        assert m.snr_db == pytest.approx(-20.0 - (-93.8 + 10 * math.log10(12_000)), abs=0.5)
        assert m.detected
        assert m.freq_offset_hz == pytest.approx(1000.0, abs=100)
        assert m.channel_id == "145.0100MHz" and m.channel_bw_hz == 12_000.0
        assert m.clock is ClockSource.NTP and m.receiver_id == "owrx-1"
        assert len(m.psd_dbm_hz) == 51 and m.psd_bin_hz == pytest.approx(234.375)
        assert 0.2 <= m.duration_s <= 0.6 and m.t_ns < m.published_ns

        async with OpenWebRxTestServer(tones=[Tone(F_CH + 1000, 0.0316)]) as srv:
            a = adapter_for(srv)
            await run_until(a, lambda: a.stats.chunks >= 4 and a.smeter_readings >= 4)
        m = drain(a)[-1]
        assert m.power_dbm == pytest.approx(-30.0 - 1.5, abs=0.3)
        assert a.server.config["fft_compression"] == "adpcm"

    asyncio.run(main())


def test_audio_is_decoded_when_asked() -> None:
    async def main() -> None:
        async with OpenWebRxTestServer() as srv:
            a = adapter_for(srv)
            pcm: list[np.ndarray] = []
            a.on_audio = lambda s, rate: pcm.append(s) if rate == 12_000 else None
            await run_until(a, lambda: sum(p.size for p in pcm) >= 12_000)
        x = np.concatenate(pcm).astype(float)[-8192:]
        f = np.fft.rfftfreq(x.size, 1 / 12_000)[np.argmax(np.abs(np.fft.rfft(x)))]
        assert abs(f - 1000.0) < 2.0  # the server's 1 kHz test tone
        assert a.audio_bytes > 0

    asyncio.run(main())


# ------------------------------------------------------ waterfall and audio events


def events(adapter: OpenWebRxAdapter) -> list[object]:
    return list(iter(adapter.buffer.get, None))


@pytest.mark.parametrize("compression", ["adpcm", "none"])
def test_waterfall_rows_are_published_as_the_server_computed_them(compression: str) -> None:
    async def main() -> tuple[OpenWebRxTestServer, OpenWebRxAdapter]:
        async with OpenWebRxTestServer(tones=[Tone(F_CH + 1000, 0.01)],
                                       fft_compression=compression) as srv:  # fmt: skip
            a = adapter_for(srv, publish_waterfall=True, fft_fps=srv.fft_fps)
            await run_until(a, lambda: a.waterfall_rows >= 6)
        return srv, a

    srv, a = asyncio.run(main())
    rows = [e for e in events(a) if isinstance(e, WaterfallRow)]
    assert [r.seq for r in rows] == list(range(len(rows))) and len(rows) >= 6
    assert len(rows) <= len(srv.rows_db_sent)
    for r, sent in zip(rows, srv.rows_db_sent, strict=False):
        assert r.n_bins == 1024 and r.values.dtype == np.float32
        if compression == "none":
            np.testing.assert_array_equal(r.values, sent)  # float32 rows: exactly
        else:
            # exactly what the codec gives back, and within ADPCM error of the server's floats
            np.testing.assert_array_equal(r.values, decode_fft_row(encode_fft_row(sent)))
            err = np.abs(r.values - sent)
            # typical error: a noisy row (±1 dB bin to bin) exceeds the coder's slew at places
            assert np.median(err) < 0.15 and np.mean(err) < 0.5
    r = rows[-1]
    assert r.compression == compression and r.source == "openwebrx" and r.row_stride == 1
    assert r.center_freq_hz == CENTER and r.sample_rate_hz == 240e3
    assert r.bin_hz == pytest.approx(234.375) and r.averages == srv.averages
    assert r.row_period_s == pytest.approx(0.1) and r.full_scale_dbm == -1.5
    assert r.clock is ClockSource.NTP and r.receiver_id == "owrx-1" and r.position == INFO.position
    assert r.t_ns < r.published_ns
    # the tone (−40 dBFS): the bin powers around it add up to it on float rows (ADPCM rows
    # decode such a narrow peak several dB low: the coder's slew limit, module docstring)
    k = int(np.argmin(np.abs(r.freqs_hz() - (F_CH + 1000))))
    p = np.mean([x.bin_powers() for x in rows], axis=0)
    tone_db = 10 * math.log10(p[k - 3 : k + 4].sum())
    if compression == "none":
        assert tone_db == pytest.approx(-40.0, abs=0.3)
    else:
        assert tone_db < -40.0


def test_waterfall_stride_and_switches() -> None:
    async def main() -> tuple[OpenWebRxTestServer, OpenWebRxAdapter]:
        async with OpenWebRxTestServer(fft_compression="none") as srv:
            a = adapter_for(srv, publish_waterfall=True, waterfall_stride=3)
            await run_until(a, lambda: a.waterfall_rows >= 3)
        return srv, a

    srv, a = asyncio.run(main())
    rows = [e for e in events(a) if isinstance(e, WaterfallRow)]
    assert [r.seq for r in rows] == list(range(len(rows))) and rows[0].row_stride == 3
    for i, r in enumerate(rows):
        np.testing.assert_array_equal(r.values, srv.rows_db_sent[3 * i])
    assert all(isinstance(e, Measurement) for e in events(a))  # audio off: nothing else


@pytest.mark.parametrize("compression", ["adpcm", "none"])
def test_audio_is_published_in_chunks(compression: str) -> None:
    async def main() -> tuple[OpenWebRxTestServer, OpenWebRxAdapter]:
        async with OpenWebRxTestServer(audio_compression=compression) as srv:
            a = adapter_for(srv, publish_audio=True, audio_chunk_s=0.25)
            await run_until(a, lambda: a.audio_chunks >= 5)
        return srv, a

    srv, a = asyncio.run(main())
    chunks = [e for e in events(a) if isinstance(e, AudioChunk)]
    assert [c.seq for c in chunks] == list(range(len(chunks))) and len(chunks) >= 5
    assert all(c.n_samples == 3000 and c.samples.dtype == np.int16 for c in chunks)
    c = chunks[-1]
    assert c.sample_rate_hz == 12_000.0 and c.mode == "nfm" and c.compression == compression
    assert c.freq_hz == F_CH and c.center_freq_hz == CENTER and c.offset_freq_hz == 10_000.0
    assert (c.low_cut_hz, c.high_cut_hz) == (-6000.0, 6000.0) and c.source == "openwebrx"
    got = np.concatenate([c.samples for c in chunks])
    pcm = np.concatenate(srv.audio_pcm_sent)[: got.size]
    if compression == "none":
        np.testing.assert_array_equal(got, pcm)
    else:
        wire = SyncAdpcmDecoder().decode(b"".join(srv.audio_data_sent))[: got.size]
        np.testing.assert_array_equal(got, wire)  # what the codec gives, no sample lost
        snr = 10 * math.log10(np.mean(pcm.astype(float) ** 2)
                              / np.mean((got.astype(float) - pcm) ** 2))  # fmt: skip
        assert snr > 20.0
    # t_ns: the chunks follow each other 0.25 s apart on the host clock (network jitter aside)
    gaps = np.diff([c.t_ns for c in chunks]) / 1e9
    assert np.all(np.abs(gaps - 0.25) < 0.1), gaps


def test_defaults_publish_everything() -> None:
    cfg = OpenWebRxConfig(url="ws://h:1/ws/", freq_hz=F_CH)
    assert cfg.publish_waterfall and cfg.publish_audio and cfg.waterfall_stride == 1
    assert cfg.audio_chunk_s == 0.25


# ----------------------------------------------------------------- failures


def test_malformed_messages_are_counted_and_skipped() -> None:
    async def main() -> None:
        async with OpenWebRxTestServer(tones=[Tone(F_CH, 0.01)], malformed_every=2) as srv:
            a = adapter_for(srv)
            await run_until(a, lambda: a.stats.chunks >= 3 and a.stats.malformed >= 6)
        reasons = a.stats.malformed_reasons
        assert reasons["text message is not JSON"] >= 2
        assert reasons["unknown binary message type"] >= 2
        assert reasons["FFT row of the wrong length"] >= 2
        assert a.stats.sessions == 1  # skipped, not fatal

    asyncio.run(main())


def test_reconnects_after_a_drop_in_the_middle_of_a_frame() -> None:
    async def main() -> None:
        async with OpenWebRxTestServer(tones=[Tone(F_CH, 0.01)], cut_after_rows=4) as srv:
            a = adapter_for(srv, integration_s=0.1)
            seen = await run_until(a, lambda: srv.connections >= 2 and a.stats.chunks >= 6)
        assert a.stats.sessions >= 2 and a.stats.errors >= 1
        want = f"OpenWebRX at {srv.url} dropped the connection without a close frame"
        assert any(s.state is ReceiverState.ERROR and s.message == want for s in seen)
        assert a.rows >= 6

    asyncio.run(main())


def test_a_stalled_server_is_detected_within_the_timeout() -> None:
    async def main() -> None:
        async with OpenWebRxTestServer(stall_after_rows=3) as srv:
            a = adapter_for(srv, options=STALL_FAST)
            seen = await run_until(a, lambda: srv.connections >= 2)
        assert_stall_reported(seen, a)

    asyncio.run(main())


def test_refused_connection_gives_the_one_line_error(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws/"
    a = OpenWebRxAdapter(INFO, OpenWebRxConfig(url=url, freq_hz=F_CH), FAST)

    async def main() -> list[ReceiverStatus]:
        return await run_until(a, lambda: a.stats.errors >= 3)

    seen = asyncio.run(main())
    want = (f"OpenWebRX at ws://127.0.0.1:{port}/ws/ refused the connection: is the URL right "
            "and the server running?")  # fmt: skip
    errors = [s for s in seen if s.state is ReceiverState.ERROR]
    assert errors and all(s.message == want for s in errors)
    assert len([r for r in caplog.records if want in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("server", "url_path", "want"),
    [
        ({"wrong_handshake": True}, "/ws/",
         "did not answer the handshake with 'CLIENT DE SERVER ...' (got 'HTTP/1.1 200 OK')"),
        ({"backoff": "Too many clients"}, "/ws/", "turned us away: Too many clients"),
        ({}, "/websocket", "answered HTTP 404 instead of a websocket upgrade"),
    ],
)  # fmt: skip
def test_servers_that_refuse_or_are_not_openwebrx(
    server: dict[str, object], url_path: str, want: str
) -> None:
    async def main() -> None:
        async with OpenWebRxTestServer(**server) as srv:  # type: ignore[arg-type]
            url = f"ws://127.0.0.1:{srv.port}{url_path}"
            a = OpenWebRxAdapter(INFO, OpenWebRxConfig(url=url, freq_hz=F_CH), FAST)
            seen = await run_until(a, lambda: a.stats.errors >= 2)
        msg = next(s.message for s in seen if s.state is ReceiverState.ERROR)
        assert msg is not None and msg.startswith(f"OpenWebRX at {url}") and want in msg
        assert a.stats.chunks == 0

    asyncio.run(main())


def test_a_channel_outside_the_band_is_not_measured() -> None:
    async def main() -> None:
        async with OpenWebRxTestServer() as srv:
            a = adapter_for(srv, freq_hz=146_000_000.0)
            await run_until(a, lambda: a.stats.malformed >= 3)
        assert a.stats.malformed_reasons["channel outside the band"] >= 3
        assert a.stats.chunks == 0
        assert not any("dspcontrol" in m for m in srv.received[0])
        # the waterfall of the band is still worth publishing
        async with OpenWebRxTestServer() as srv:
            a = adapter_for(srv, freq_hz=146_000_000.0, publish_waterfall=True)
            await run_until(a, lambda: a.waterfall_rows >= 2)
        assert all(isinstance(e, WaterfallRow) for e in events(a))

    asyncio.run(main())


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"url": "ftp://x/"}, "url: "),
        ({"low_cut_hz": 100.0, "high_cut_hz": -100.0}, "high_cut_hz"),
        ({"measure": "both"}, "measure: Input should be 'combined', 'fft' or 'smeter'"),
        ({"profile": "2m"}, "profile: '2m' must be 'sdr_id|profile_id'"),
        ({"waterfall_stride": 0}, r"waterfall_stride: .* greater than or equal to 1 \(got 0\)"),
        ({"audio_chunk_s": 0.0}, r"audio_chunk_s: Input should be greater than 0 \(got 0.0\)"),
    ],
)
def test_bad_configs_are_one_line_errors(cfg: dict[str, object], match: str) -> None:
    conf = {"url": "ws://h:8073/ws/", "freq_hz": F_CH, **cfg}
    with pytest.raises(ConfigError, match=match):
        build_config(OpenWebRxConfig, conf).check()
