"""Hostile events for every topic the stream worker consumes, from a seeded generator.

Kinds (each event's key is ``fuzz:<role>:<kind>:<i>``, so its dead letter can be matched):

``random``      random bytes of random length (1..2,000)
``truncated``   a valid event of the topic's type cut short
``absurd``      valid Avro of the topic's type whose values make no sense (NaN, inf, negative
                or 1e30 rates and frequencies, empty or odd-length samples, far-future or
                negative times, latitudes of 1000°, empty or inconsistent members and pairs, ...)
``empty``       an empty value (b"")
``header``      a wrong single-object fingerprint, a wrong magic byte, a Confluent frame
                without a registry, a wrong single-object marker
``wrong-type``  a valid event of another type (e.g. a Truth on rf.iq.v1)
``huge``        5 MB values (a valid header followed by garbage, and plain random bytes)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from heimdall.schemas.models import (
    ClockSource,
    IqChunk,
    Measurement,
    ModelPointer,
    Observation,
    ObservationMember,
    Position,
    SampleFormat,
    TdoaPair,
    Truth,
)
from heimdall.schemas.serde import Serde

T0 = 1_780_000_000_000_000_000
HUGE_BYTES = 5 * 1024 * 1024
KINDS = ("random", "truncated", "absurd", "empty", "header", "wrong-type")
NAN, INF = math.nan, math.inf


@dataclass(frozen=True)
class FuzzEvent:
    role: str
    kind: str
    key: bytes
    value: bytes


def iq_chunk(rng: np.random.Generator, n: int = 2400) -> IqChunk:
    iq = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.01
    return IqChunk(
        receiver_id=f"rx-fuzz-{rng.integers(10)}",
        seq=int(rng.integers(1000)),
        t_ns=T0 + int(rng.integers(10**9)),
        clock=ClockSource.GPS,
        center_freq_hz=145.5e6,
        sample_rate_hz=12e3,
        sample_format=SampleFormat.CF32,
        iq=iq.astype(np.complex64),
        full_scale_dbm=0.0,
        position=Position(lat_deg=45.0, lon_deg=7.5),
        source="fuzz",
    )


def measurement(rng: np.random.Generator) -> Measurement:
    return Measurement(
        chunk_id="fuzz",
        receiver_id=f"rx-fuzz-{rng.integers(10)}",
        t_ns=T0 + int(rng.integers(10**9)),
        duration_s=0.2,
        clock=ClockSource.NTP,
        position=Position(lat_deg=45.0, lon_deg=7.5),
        channel_id=str(rng.choice(["145.5000MHz", "145.6000MHz", "fuzz-channel"])),
        channel_freq_hz=145.5e6,
        channel_bw_hz=12.5e3,
        power_dbm=-80.0,
        noise_floor_dbm_hz=-170.0,
        snr_db=20.0,
        freq_offset_hz=0.0,
        occupied_bw_hz=9e3,
        detected=True,
    )


def member(i: int) -> ObservationMember:
    return ObservationMember(
        receiver_id=f"rx-{i}",
        position=Position(lat_deg=45.0 + i / 100, lon_deg=7.5 - i / 100),
        clock=ClockSource.NTP,
        t_ns=T0,
        power_dbm=-90.0 - i,
        power_std_db=0.5,
        snr_db=20.0,
        noise_floor_dbm_hz=-170.0,
        freq_offset_hz=0.0,
        n_measurements=3,
        measurement_ids=("m",),
    )


def observation(rng: np.random.Generator) -> Observation:
    return Observation(
        channel_id="fuzz-channel",
        channel_freq_hz=145.5e6,
        window_start_ns=T0,
        window_end_ns=T0 + 1_000_000_000,
        members=tuple(member(i) for i in range(4 + int(rng.integers(3)))),
    )


def model_pointer(model_name: str) -> ModelPointer:
    return ModelPointer(
        model_name=model_name,
        version="fuzz",
        url="file:///nonexistent/fuzz.onnx",
        sha256="ab" * 32,
        input_spec='{"inputs": []}',
        created_ns=T0,
    )


def truth() -> Truth:
    return Truth(
        source_id="fuzz",
        t_ns=T0,
        position=Position(lat_deg=45.0, lon_deg=7.5),
        freq_hz=145.5e6,
        channel_id="fuzz-channel",
        tx_power_dbm=30.0,
        waveform="fm",
    )


Mutation = Callable[[dict[str, Any], np.random.Generator], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets a (dotted, with integer list indices) field of the wire dict."""

    def mutate(d: dict[str, Any], rng: np.random.Generator) -> None:
        *parents, last = path.split(".")
        target: Any = d
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _samples(data: bytes) -> Mutation:
    return _set("samples", data)


_CF32_NAN = np.full(8, np.nan, dtype=np.complex64).tobytes()
_CF32_INF = np.full(8, np.inf, dtype=np.complex64).tobytes()

ABSURD_IQ: list[Mutation] = [
    _samples(b""),
    _samples(b"\x01" * 7),  # not a whole number of pairs
    _samples(_CF32_NAN),
    _samples(_CF32_INF),
    _set("sample_rate_hz", -12e3),
    _set("sample_rate_hz", 0.0),
    _set("sample_rate_hz", NAN),
    _set("sample_rate_hz", 1e30),
    _set("center_freq_hz", 1e30),
    _set("center_freq_hz", -145e6),
    _set("center_freq_hz", NAN),
    _set("full_scale_dbm", NAN),
    _set("full_scale_dbm", INF),
    _set("gain_db", NAN),
    _set("t_ns", -(2**62)),
    _set("t_ns", 2**63 - 1),
    _set("published_ns", -1),
    _set("position.lat_deg", 1000.0),
    _set("position.lat_deg", NAN),
    _set("position.lon_deg", -INF),
    _set("position.alt_m", NAN),
    _set("receiver_id", ""),
]

ABSURD_MEASUREMENT: list[Mutation] = [
    _set("power_dbm", NAN),
    _set("power_dbm", INF),
    _set("power_dbm", 1e300),  # 10**(P/10) overflows
    _set("snr_db", NAN),
    _set("noise_floor_dbm_hz", -INF),
    _set("freq_offset_hz", NAN),
    _set("duration_s", NAN),
    _set("duration_s", -1.0),
    _set("duration_s", 1e30),
    _set("t_ns", 2**63 - 1),
    _set("t_ns", -(2**63)),
    _set("channel_freq_hz", NAN),
    _set("channel_id", ""),
    _set("receiver_id", ""),
    _set("position.lat_deg", 1000.0),
    _set("position.lon_deg", NAN),
    _set("position.alt_m", INF),
    _set("chunk_published_ns", -(2**63)),
]


def _members(n: int) -> Mutation:
    def mutate(d: dict[str, Any], rng: np.random.Generator) -> None:
        d["members"] = d["members"][:n]

    return mutate


def _duplicate_members(d: dict[str, Any], rng: np.random.Generator) -> None:
    d["members"] = [copy.deepcopy(d["members"][0]) for _ in d["members"]]


def _pairs(**fields: Any) -> Mutation:
    def mutate(d: dict[str, Any], rng: np.random.Generator) -> None:
        pair = TdoaPair(receiver_a="rx-0", receiver_b="rx-1", tdoa_s=1e-6, sigma_s=5e-8).to_dict()
        pair.update(fields)
        d["tdoa_pairs"] = [pair]

    return mutate


ABSURD_OBSERVATION: list[Mutation] = [
    _members(0),
    _members(1),
    _duplicate_members,
    _set("members.0.power_dbm", NAN),
    _set("members.1.power_dbm", INF),
    _set("members.0.power_dbm", 1e300),
    _set("members.2.snr_db", NAN),
    _set("members.0.power_std_db", -INF),
    _set("members.0.position.lat_deg", 1000.0),
    _set("members.1.position.lon_deg", NAN),
    _set("members.0.position.alt_m", INF),
    _set("members.0.t_ns", 2**63 - 1),
    _set("members.0.n_measurements", -5),
    _set("channel_freq_hz", NAN),
    _set("window_end_ns", -(2**63)),
    _set("window_start_ns", 2**63 - 1),
    _set("upstream_latency_s", NAN),
    _pairs(tdoa_s=NAN),
    _pairs(tdoa_s=1e30),
    _pairs(sigma_s=0.0),
    _pairs(sigma_s=-1.0),
    _pairs(sigma_s=NAN),
    _pairs(receiver_a="rx-unknown"),
    _pairs(receiver_b="rx-0"),  # a receiver paired with itself
]

ABSURD_MODEL: list[Mutation] = [
    _set("url", ""),
    _set("url", "nonsense://x/y"),
    _set("url", "file:///nonexistent/model.onnx"),
    _set("url", "file:///dev/null"),
    _set("sha256", "not-hex"),
    _set("input_spec", "{not json"),
    _set("input_spec", "[]"),
    _set("input_spec", '{"inputs": 5}'),
    _set("metrics", {"rmse_m": NAN}),
]


class Fuzzer:
    """Seeded hostile events for one topic role: ``iq``, ``snippets``, ``features``,
    ``observations`` or ``models``."""

    def __init__(self, serde: Serde, seed: int, model_name: str = "setnet") -> None:
        self.serde = serde
        self.rng = np.random.default_rng(seed)
        self.model_name = model_name

    def valid(self, role: str) -> Any:
        if role in ("iq", "snippets"):
            return iq_chunk(self.rng)
        if role == "features":
            return measurement(self.rng)
        if role == "observations":
            return observation(self.rng)
        if role == "models":
            return model_pointer(self.model_name)
        raise ValueError(f"unknown role {role!r}")

    def absurd_mutations(self, role: str) -> list[Mutation]:
        return {
            "iq": ABSURD_IQ,
            "snippets": ABSURD_IQ,
            "features": ABSURD_MEASUREMENT,
            "observations": ABSURD_OBSERVATION,
            "models": ABSURD_MODEL,
        }[role]

    def one(self, role: str, kind: str) -> bytes:
        rng = self.rng
        if kind == "random":
            return rng.bytes(int(rng.integers(1, 2000)))
        if kind == "empty":
            return b""
        if kind == "wrong-type":
            other = truth() if role != "iq" else measurement(rng)
            return self.serde.encode(other)
        good = self.serde.encode(self.valid(role))
        if kind == "truncated":
            return good[: int(rng.integers(1, len(good)))]
        if kind == "header":
            variant = int(rng.integers(4))
            if variant == 0:  # unknown fingerprint
                return good[:2] + rng.bytes(8) + good[10:]
            if variant == 1:  # unknown magic byte
                magic = int(rng.choice([b for b in range(256) if b not in (0x00, 0xC3)]))
                return bytes([magic]) + good[1:]
            if variant == 2:  # Confluent framing, no registry
                return b"\x00" + rng.bytes(4) + good[10:]
            return b"\xc3\x02" + good[2:]  # wrong single-object marker
        if kind == "absurd":
            obj = self.valid(role)
            d = obj.to_dict()
            if role in ("iq", "snippets"):
                d = dict(d)
            mutations = self.absurd_mutations(role)
            mutations[int(rng.integers(len(mutations)))](d, rng)
            return self.serde.encode_dict(obj.SCHEMA, d)
        if kind == "huge":
            if rng.integers(2):
                return rng.bytes(HUGE_BYTES)
            return good[:10] + rng.bytes(HUGE_BYTES)
        raise ValueError(f"unknown kind {kind!r}")

    def events(self, role: str, per_kind: int, huge: int = 2) -> Iterator[FuzzEvent]:
        """``per_kind`` events of each kind (and ``huge`` 5 MB ones), kinds interleaved."""
        plan = [k for k in KINDS for _ in range(per_kind)] + ["huge"] * huge
        order = self.rng.permutation(len(plan))
        for i, j in enumerate(order):
            kind = plan[j]
            key = f"fuzz:{role}:{kind}:{i}".encode()
            yield FuzzEvent(role, kind, key, self.one(role, kind))
