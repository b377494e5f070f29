"""The options model every adapter's configuration derives from: one declaration, three uses.

An adapter's options (``RtlTcpConfig``, ``OpenWebRxConfig``, ``KiwiSdrConfig``) are a frozen
pydantic model declared once, in the adapter's module, with units in the field names, the
default written once and a docstring under each field. That one model is

- what the adapter takes (``RtlTcpAdapter(info, RtlTcpConfig(...))``);
- the ``options`` of a receiver of that kind in the network file
  (:mod:`heimdall.producers.network`): every field but the connection fields
  (:attr:`AdapterConfig.connection_fields`), which come from the receiver's ``address``;
- the options of ``heimdall receiver KIND`` (:mod:`heimdall.infra.cli_options` turns each
  field into a typer option, its docstring the help text, :attr:`AdapterConfig.cli_flags`
  the flag names where they differ from ``--field-name``).

A value that cannot be valid on its own (a negative width) is a field constraint, checked
when the model is built; what needs several fields together (an rtl_tcp offset that puts
the DC spike in the channel) stays in each model's ``check()``, which the adapter calls. A
mistake is one :class:`~heimdall.core.errors.ConfigError` line naming the field
(:func:`build_config`, :func:`one_line`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from heimdall.core.errors import ConfigError

__all__ = ["AdapterConfig", "build_config", "one_line", "split_host_port"]

C = TypeVar("C", bound="AdapterConfig")


class AdapterConfig(BaseModel):
    """Base of the adapters' options models (frozen, unknown keys refused).

    Class attributes (not options):

    ``connection_fields``
        Fields that say where the receiver is (``host``/``port``, ``url``): in a network
        file they come from the receiver's ``address`` (:meth:`from_address`), not from
        its ``options``.
    ``cli_flags``
        field → flag of ``heimdall receiver KIND`` where it is not ``--field-name``
        (``freq_hz`` → ``--freq``): the flags that existed before this model did.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    connection_fields: ClassVar[tuple[str, ...]] = ()
    cli_flags: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def from_address(cls, address: str) -> dict[str, Any]:
        """The connection fields given by a network file's ``address`` of this kind."""
        raise NotImplementedError

    @classmethod
    def option_fields(cls) -> tuple[str, ...]:
        """The fields a network file's ``options`` may set (all but the connection ones)."""
        return tuple(f for f in cls.model_fields if f not in cls.connection_fields)


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def one_line(exc: ValidationError, prefix: Sequence[int | str] = ()) -> str:
    """The first error of ``exc`` as ``path.to.field: message (got value)``.

    ``prefix`` is prepended to the error's location (``receivers[1].options``); when there
    are more errors, ``[and N more errors]`` says so.
    """
    err = exc.errors()[0]
    loc = [*prefix, *err["loc"]]
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    shown = ""
    if err["type"] not in ("missing", "extra_forbidden") and not isinstance(got, dict | list):
        shown = f" (got {got!r})"
    where = _path(loc) or "(top level)"
    more = len(exc.errors()) - 1
    tail = f" [and {more} more error{'s' if more > 1 else ''}]" if more else ""
    return f"{where}: {msg}{shown}{tail}"


def build_config(cls: type[C], values: Mapping[str, Any], where: str = "") -> C:
    """``cls`` validated from ``values``; a mistake is one ConfigError line.

    Raises
    ------
    ConfigError
        ``[where: ]field: message (got value)``.
    """
    try:
        return cls.model_validate(dict(values))
    except ValidationError as exc:
        line = one_line(exc)
        raise ConfigError(f"{where}: {line}" if where else line) from None


def split_host_port(address: str, default_port: int) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, ``host`` or ``scheme://host:port`` → (host, port)."""
    a = address.split("://", 1)[-1].rstrip("/")
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:]+)(?::(\d+))?", a)
    if not m:
        raise ValueError(f"{address!r} is not host:port")
    host = m.group(1) or m.group(3)
    port = m.group(2) or m.group(4)
    return host, int(port) if port else default_port
