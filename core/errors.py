"""Exception hierarchy shared by every Heimdall package."""

from __future__ import annotations


class HeimdallError(Exception):
    """Base class of every error Heimdall raises on purpose."""


class ConfigError(HeimdallError):
    """A setting is missing or wrong; the message names the variable."""


class SchemaError(HeimdallError):
    """An event cannot be encoded or decoded with the Avro schemas."""


class InvalidEventError(HeimdallError):
    """An event decoded but its content is not usable (NaN samples, absurd rates, ...).

    The message is one line that names the field and what is wrong with it; the stream
    sends the event to the dead-letter topic with that message as the reason.
    """


class EstimationError(HeimdallError):
    """An estimator could not produce a position (too few receivers, degenerate geometry)."""


class BrokerError(HeimdallError):
    """The embedded broker could not be started or reached."""


class StoreError(HeimdallError):
    """The ClickHouse store cannot be opened or used (directory in use, server unreachable)."""


class RecordingError(HeimdallError):
    """A recording (KiwiSDR WAV, SigMF) cannot be read or written; the message names the file
    and, for a malformed file, the byte offset where it goes wrong."""
