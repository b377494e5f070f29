"""A known source's truth, published by a network run of the 2017 DCF77 recordings, gives a
2017 fix of its channel an error: through the real broker, the sink and chDB (the tables are
partitioned by day of event time; the match is by channel and nearest time)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyproj import Geod

from heimdall.consumers.queries import count_rows, localization_error_details
from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.producers.network import load_network, run_network
from heimdall.producers.network_recordings import ReplaySpec
from heimdall.schemas.serde import Serde
from tests.integration.consumers.conftest import SinkThread
from tests.unit.consumers import wire_samples as ws

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / ".." / "shared" / "data" / "kiwi-dcf77"
DCF77 = (50.0152, 9.0112)


@pytest.mark.skipif(not DATA.is_dir(), reason=f"the shared DCF77 recordings are not in {DATA}")
def test_a_2017_fix_of_the_dcf77_channel_gets_an_error(
    ch_settings: HeimdallSettings, store: Any, run_sink: Callable[..., SinkThread]
) -> None:
    net = load_network(REPO / "examples" / "dcf77-network.yaml")
    result = run_network(ch_settings, net.model_copy(update={"replay": ReplaySpec(pace="fast")}))
    n_truth = result.truths["dcf77"]
    assert result.replay is not None
    first_ns = result.replay.first_t_ns
    assert first_ns is not None

    # a fix of the channel 10.4 s into the recordings, 0.1° north of Mainflingen
    t_fix = first_ns + 10_400_000_000
    fix = ws.localization(
        t_ns=t_fix, channel_id="0.0775MHz", position=ws.position(DCF77[0] + 0.1, DCF77[1], 0.0)
    )
    serde = Serde()
    p = kafka.producer(ch_settings)
    p.produce(
        ch_settings.topics.localizations,
        key=b"0.0775MHz",
        value=serde.encode_dict("heimdall.v1.Localization", fix),
    )
    assert p.flush(30.0) == 0

    st = run_sink(serde)
    st.wait_for(
        "the truth and the fix",
        lambda: (
            st.sink.stats.rows.get("truth", 0) == n_truth
            and st.sink.stats.rows.get("localizations", 0) == 1
        ),
    )
    st.finish()
    assert count_rows(store, "truth") == n_truth

    errs = localization_error_details(store)
    assert len(errs) == 1
    e = errs[0]
    assert e.event_id == fix["event_id"] and e.source_id == "dcf77"
    assert e.channel_id == "0.0775MHz" and e.t_ns == t_fix
    # truths are at every whole second: the nearest is at most half a second away
    assert abs(e.dt_s) <= 0.5
    assert e.truth_t_ns % 1_000_000_000 == 0
    _, _, want_m = Geod(ellps="WGS84").inv(DCF77[1], DCF77[0], DCF77[1], DCF77[0] + 0.1)
    assert e.error_m == pytest.approx(want_m, rel=5e-3)  # ClickHouse's geoDistance
