"""The dashboard's own settings and the rule for where it may listen.

``HEIMDALL_DASHBOARD_TOKEN`` (secret) and ``HEIMDALL_MAP_TILES_URL`` are read like every other
setting (pydantic-settings, ``HEIMDALL_`` prefix). A dashboard bound to anything but a
loopback address needs the token, and checks it on every request.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from heimdall.core.errors import ConfigError

#: Port of ``heimdall dashboard`` and of the dashboard ``heimdall up`` starts.
DEFAULT_PORT = 8765


class DashboardSettings(BaseSettings):
    """``HEIMDALL_DASHBOARD_TOKEN``, ``HEIMDALL_MAP_TILES_URL``, ``HEIMDALL_DASHBOARD_HISTORY_S``.

    The token is a secret: never printed or logged.
    """

    model_config = SettingsConfigDict(env_prefix="HEIMDALL_", frozen=True, extra="ignore")

    dashboard_token: SecretStr | None = Field(
        None, description="required to bind beyond loopback; checked on every request"
    )
    map_tiles_url: str | None = Field(
        None, description="XYZ tile template, e.g. https://tiles.example/{z}/{x}/{y}.png"
    )
    dashboard_history_s: float = Field(
        600.0, gt=0, description="how far back the dashboard reads the topics when it starts"
    )


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: SecretStr | None) -> None:
    """Refuse to listen beyond loopback without a token (one-line :class:`ConfigError`)."""
    if not is_loopback(host) and not (token and token.get_secret_value()):
        raise ConfigError(
            f"dashboard --host {host}: binding beyond loopback needs HEIMDALL_DASHBOARD_TOKEN "
            "(every request must then carry it)"
        )
