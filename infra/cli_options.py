"""Typer options made from an adapter's options model (one declaration, no copies).

:func:`model_options` turns every field of an
:class:`~heimdall.producers.adapters.options.AdapterConfig` into a keyword parameter
annotated with its :class:`typer.Option`: the flag is ``--field-name`` unless the model's
``cli_flags`` names another (the flags that existed before the model: ``--freq``), a bool
is ``--flag/--no-flag``, a ``Literal`` or an enum is a choice (typer's own), the help is
the field's docstring (reST quotes dropped) and the default is the field's (a field without
one is a required option).
:func:`typer_command` gives a function whose signature typer reads (``__signature__`` and
``__annotations__``: typer reads both), so that ``heimdall receiver KIND --help`` lists the
model's fields and nothing is declared twice.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Sequence
from typing import Annotated, Any

import typer

from heimdall.producers.adapters.options import AdapterConfig

__all__ = ["flag_of", "model_options", "typer_command"]


def flag_of(config: type[AdapterConfig], name: str) -> str:
    """The command-line flag of field ``name`` (``--freq`` for ``freq_hz`` when so named)."""
    return config.cli_flags.get(name, "--" + name.replace("_", "-"))


def _help(text: str | None) -> str:
    return " ".join((text or "").replace("``", "").split())


def model_options(
    config: type[AdapterConfig], *, optional: Collection[str] = ()
) -> list[inspect.Parameter]:
    """One keyword parameter per field of ``config``, annotated with its typer option.

    Parameters
    ----------
    config : type[AdapterConfig]
        The adapter's options model.
    optional : collection of str
        Required fields that the command lets the user leave out (default None), because
        another option can give them (``--url`` instead of ``--host``).
    """
    params = []
    for name, field in config.model_fields.items():
        flag = flag_of(config, name)
        ann: Any = field.annotation
        decls = [f"{flag}/--no-{flag.removeprefix('--')}"] if ann is bool else [flag]
        if field.is_required() and name not in optional:
            default: Any = inspect.Parameter.empty
        elif field.is_required():
            default, ann = None, ann | None
        else:
            default = field.default
        option = typer.Option(*decls, help=_help(field.description))
        kind = inspect.Parameter.KEYWORD_ONLY
        ann = Annotated[ann, option]
        params.append(inspect.Parameter(name, kind, default=default, annotation=ann))
    return params


def typer_command(
    body: Callable[..., None], params: Sequence[inspect.Parameter], name: str, doc: str
) -> Callable[..., None]:
    """``body(**options)`` as a function typer registers with ``params`` as its options."""

    def command(**kwargs: Any) -> None:
        body(**kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__annotations__["return"] = None
    command.__name__ = command.__qualname__ = name
    command.__doc__ = doc
    return command
