"""The validation of decoded events before the stream uses them: one line naming the field."""

from __future__ import annotations

import dataclasses
import math

import pytest

from heimdall.core.errors import InvalidEventError
from heimdall.schemas.models import MAX_T_NS, Measurement, Observation, TdoaPair
from tests.unit.schemas.examples import examples, iq_chunk


def example(cls: type) -> object:
    return next(e for e in examples() if isinstance(e, cls))


def test_the_examples_are_valid() -> None:
    iq_chunk().validate(max_samples=1 << 20)
    example(Measurement).validate()  # type: ignore[attr-defined]
    example(Observation).validate()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"t_ns": -1}, "t_ns: -1 is not in [0, 2**62)"),
        ({"t_ns": MAX_T_NS}, "t_ns: 4611686018427387904 is not in [0, 2**62)"),
        ({"published_ns": -5}, "published_ns: -5 is not in"),
        ({"receiver_id": ""}, "receiver_id: empty"),
        ({"full_scale_dbm": math.nan}, "full_scale_dbm: nan is not in [-1000, 1000] dB"),
        ({"gain_db": math.inf}, "gain_db: inf is not in [-1000, 1000] dB"),
    ],
)
def test_iq_chunk_refuses(change: dict[str, object], says: str) -> None:
    bad = dataclasses.replace(iq_chunk(), **change)  # type: ignore[arg-type]
    with pytest.raises(InvalidEventError, match=f"^{_re(says)}"):
        bad.validate(max_samples=1 << 20)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"power_dbm": math.nan}, "power_dbm: nan is not in [-1000, 1000] dB"),
        ({"power_dbm": 1e300}, "power_dbm: 1e+300 is not in [-1000, 1000] dB"),
        ({"snr_db": -math.inf}, "snr_db: -inf is not in"),
        ({"noise_floor_dbm_hz": 5000.0}, "noise_floor_dbm_hz: 5000.0 is not in"),
        ({"duration_s": math.nan}, "duration_s: nan is not in (0, 3600]"),
        ({"duration_s": 0.0}, "duration_s: 0.0 is not in (0, 3600]"),
        ({"t_ns": 2**63 - 1}, "t_ns: 9223372036854775807 is not in [0, 2**62)"),
        ({"chunk_published_ns": -(2**63)}, "chunk_published_ns: -9223372036854775808 is not"),
        ({"channel_freq_hz": math.nan}, "channel_freq_hz: nan is not finite"),
        ({"channel_id": ""}, "channel_id: empty"),
        ({"receiver_id": ""}, "receiver_id: empty"),
    ],
)
def test_measurement_refuses(change: dict[str, object], says: str) -> None:
    bad = dataclasses.replace(example(Measurement), **change)  # type: ignore[type-var]
    with pytest.raises(InvalidEventError, match=f"^{_re(says)}"):
        bad.validate()


def test_measurement_refuses_a_bad_position() -> None:
    m = example(Measurement)
    pos = dataclasses.replace(m.position, lat_deg=1000.0)  # type: ignore[attr-defined]
    with pytest.raises(InvalidEventError, match=r"^position\.lat_deg: 1000\.0 is not in"):
        dataclasses.replace(m, position=pos).validate()  # type: ignore[type-var]


def _member(obs: Observation, i: int, **change: object) -> Observation:
    members = list(obs.members)
    members[i] = dataclasses.replace(members[i], **change)  # type: ignore[arg-type]
    return dataclasses.replace(obs, members=tuple(members))


def _pair(obs: Observation, **change: object) -> Observation:
    pair = TdoaPair(receiver_a="rx-0", receiver_b="rx-1", tdoa_s=1e-6, sigma_s=5e-8)
    return dataclasses.replace(obs, tdoa_pairs=(dataclasses.replace(pair, **change),))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda o: _member(o, 1, power_dbm=math.nan), "members[1].power_dbm: nan is not in"),
        (lambda o: _member(o, 0, snr_db=math.inf), "members[0].snr_db: inf is not in"),
        (lambda o: _member(o, 2, t_ns=-3), "members[2].t_ns: -3 is not in"),
        (lambda o: _member(o, 0, power_std_db=-1.0), "members[0].power_std_db: -1.0 is not in"),
        (lambda o: _member(o, 0, n_measurements=-5), "members[0].n_measurements: -5 is negative"),
        (
            lambda o: _member(o, 1, receiver_id="rx-0"),
            "members[1].receiver_id: 'rx-0' appears twice",
        ),
        (
            lambda o: _member(
                o, 3, position=dataclasses.replace(o.members[3].position, lon_deg=math.nan)
            ),
            "members[3].position.lon_deg: nan is not in [-180, 180]",
        ),
        (lambda o: dataclasses.replace(o, window_end_ns=o.window_start_ns - 1), "window_end_ns:"),
        (lambda o: dataclasses.replace(o, channel_freq_hz=math.inf), "channel_freq_hz: inf is not"),
        (lambda o: _pair(o, tdoa_s=math.nan), "tdoa_pairs[0].tdoa_s: nan is not in [-1, 1] s"),
        (lambda o: _pair(o, tdoa_s=1e30), "tdoa_pairs[0].tdoa_s: 1e+30 is not in [-1, 1] s"),
        (lambda o: _pair(o, sigma_s=0.0), "tdoa_pairs[0].sigma_s: 0.0 is not positive"),
        (lambda o: _pair(o, sigma_sys_s=-1.0), "tdoa_pairs[0].sigma_sys_s: -1.0 is not in"),
        (lambda o: _pair(o, receiver_a="rx-9"), "tdoa_pairs[0].receiver_a: 'rx-9' is not a member"),
        (
            lambda o: _pair(o, receiver_b="rx-0"),
            "tdoa_pairs[0].receiver_b: 'rx-0' paired with itself",
        ),
    ],
)
def test_observation_refuses(make: object, says: str) -> None:
    bad = make(example(Observation))  # type: ignore[operator]
    with pytest.raises(InvalidEventError, match=f"^{_re(says)}"):
        bad.validate()


def _re(text: str) -> str:
    import re

    return re.escape(text)
