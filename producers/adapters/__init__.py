"""Receiver adapters: live network receivers streaming IQ to Kafka.

Public API::

    from heimdall.producers.adapters import (
        ReceiverAdapter, ReceiverInfo, AdapterOptions,   # subclass ReceiverAdapter
        RtlTcpAdapter, RtlTcpConfig,                     # rtl_tcp (RTL-SDR dongles)
        run_adapters,                                    # one loop, one producer
    )

Modules: :mod:`.base` (the life cycle: backoff, buffer, stall detector, malformed frames,
statuses), :mod:`.pump` (the Kafka thread), :mod:`.runtime` (running many adapters),
:mod:`.dsp` (the streaming channeliser), :mod:`.rtltcp` (the rtl_tcp protocol and adapter),
:mod:`.options` (the base of each adapter's options model: one model for the adapter, the
network file and ``heimdall receiver KIND``).
The network file is :mod:`heimdall.producers.network`.
"""

from .base import (
    AdapterError,
    AdapterOptions,
    Backoff,
    ChunkBuffer,
    ConnectError,
    ProtocolError,
    ReceiverAdapter,
    ReceiverInfo,
    StreamClosedError,
    describe_connect_error,
)
from .pump import KafkaPump
from .rtltcp import RtlTcpAdapter, RtlTcpConfig
from .runtime import RunSummary, run_adapters, serve_adapters

__all__ = [
    "AdapterError",
    "AdapterOptions",
    "Backoff",
    "ChunkBuffer",
    "ConnectError",
    "KafkaPump",
    "ProtocolError",
    "ReceiverAdapter",
    "ReceiverInfo",
    "RtlTcpAdapter",
    "RtlTcpConfig",
    "RunSummary",
    "StreamClosedError",
    "describe_connect_error",
    "run_adapters",
    "serve_adapters",
]
