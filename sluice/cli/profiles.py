"""Where the CLI finds its server and key: flags, a profile, the environment, `sluice dev`.

A profile file (TOML; `$SLUICE_CONFIG`, else `~/.config/sluice/profiles.toml`) holds
named profiles:

    [default]
    url = "http://127.0.0.1:8420"
    api_key = "sk_..."

    [prod]
    url = "https://sluice.example.com"
    api_key = "sk_..."
    admin_key = "..."

Each value is taken from the first of: the command's flag; the profile named by
`--profile` or `SLUICE_PROFILE`; the environment (`SLUICE_URL`, `SLUICE_API_KEY`,
`SLUICE_ADMIN_KEY`); the `default` profile; the `.sluice/dev.json` that `sluice dev`
writes; the local default URL. A profile named explicitly beats the environment, so
`--profile prod` never talks to a server some shell variable points at.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..client.http import DEFAULT_URL, DEV_FILE
from ..errors import SluiceError

PROFILE_FIELDS = ("url", "api_key", "admin_key")
ENV_NAMES = {"url": "SLUICE_URL", "api_key": "SLUICE_API_KEY", "admin_key": "SLUICE_ADMIN_KEY"}


class ProfileError(SluiceError):
    """The profile file is unreadable, or names no such profile: a usage error."""


@dataclass(frozen=True)
class Connection:
    url: str
    key: str | None


def config_path(env: Mapping[str, str]) -> Path:
    if env.get("SLUICE_CONFIG"):
        return Path(env["SLUICE_CONFIG"])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "sluice" / "profiles.toml"


def _profiles(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"cannot read the profile file {path}: {exc}") from exc
    for name, profile in data.items():
        if not isinstance(profile, dict):
            raise ProfileError(f"{path}: [{name}] must be a table of {', '.join(PROFILE_FIELDS)}")
        unknown = sorted(set(profile) - set(PROFILE_FIELDS))
        if unknown:
            raise ProfileError(f"{path}: profile {name!r} has unknown field(s) {unknown}")
    return data


def _dev_file() -> dict[str, Any]:
    try:
        return dict(json.loads(DEV_FILE.read_text())) if DEV_FILE.exists() else {}
    except (OSError, ValueError):
        return {}


def resolve(
    env: Mapping[str, str],
    *,
    url: str | None = None,
    key: str | None = None,
    profile: str | None = None,
    admin: bool = False,
) -> Connection:
    """The server URL and the key (the tenant key, or with `admin` the admin key)."""
    key_field = "admin_key" if admin else "api_key"
    path = config_path(env)
    profiles = _profiles(path)
    named = profile or env.get("SLUICE_PROFILE") or None
    if named is not None and named not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ProfileError(f"no profile {named!r} in {path} (profiles: {known})")
    layers: list[Mapping[str, Any]] = [
        {"url": url, key_field: key},
        profiles[named] if named is not None else {},
        {field: env.get(name) for field, name in ENV_NAMES.items()},
        profiles.get("default", {}),
        _dev_file(),
    ]

    def pick(field: str) -> str | None:
        for layer in layers:
            value = layer.get(field)
            if value:
                return str(value)
        return None

    return Connection(pick("url") or DEFAULT_URL, pick(key_field))
