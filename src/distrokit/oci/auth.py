"""Registry credentials and authentication challenges.

Credentials come from the Docker CLI's ``config.json`` (``$DOCKER_CONFIG`` or ``~/.docker``):
``auths`` entries with a base64 ``auth``, or ``credHelpers`` / ``credsStore`` programs
(``docker-credential-<name> get``, run through `Host`). No daemon is involved, as in LinuxKit.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distrokit.errors import CommandError, RegistryError, ToolMissingError
from distrokit.host import Host


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or identity token) for one registry."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: scheme plus parameters (realm, service, scope)."""

    scheme: str
    params: Mapping[str, str]


_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> Challenge:
    """Parse e.g. ``Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM_RE.finditer(rest)}
    return Challenge(scheme.lower(), params)


def docker_config_path() -> Path:
    """Where the Docker CLI keeps ``config.json``."""
    env = os.environ.get("DOCKER_CONFIG")
    return (Path(env) if env else Path.home() / ".docker") / "config.json"


def _auth_keys(registry: str) -> list[str]:
    return [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/"]


def _from_helper(host: Host, helper: str, server: str) -> Credentials | None:
    try:
        out = host.run([f"docker-credential-{helper}", "get"], input=server.encode(), capture=True)
    except ToolMissingError as err:
        raise RegistryError(
            f"credential helper docker-credential-{helper} named in the Docker config is missing",
            hint="install it or remove it from credHelpers/credsStore",
        ) from err
    except CommandError:
        return None  # the helper has nothing for this server
    try:
        data = json.loads(out.stdout)
        return Credentials(str(data["Username"]), str(data["Secret"]))
    except (ValueError, KeyError, TypeError) as err:
        raise RegistryError(f"docker-credential-{helper} returned malformed output") from err


def _decode_auth(entry: Mapping[str, Any]) -> Credentials | None:
    if entry.get("identitytoken"):
        return Credentials("<token>", str(entry["identitytoken"]))
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except ValueError as err:
            raise RegistryError("malformed 'auth' value in the Docker config") from err
        return Credentials(user, password)
    if entry.get("username"):
        return Credentials(str(entry["username"]), str(entry.get("password", "")))
    return None


def find_credentials(
    registry: str, *, config_path: Path | None = None, host: Host | None = None
) -> Credentials | None:
    """Credentials for `registry` from the Docker config, or None (anonymous)."""
    path = config_path or docker_config_path()
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise RegistryError(f"{path} is not valid JSON") from err
    keys = _auth_keys(registry)
    helpers = config.get("credHelpers") or {}
    for key in keys:
        if key in helpers:
            return _from_helper(host or Host(), str(helpers[key]), key)
    auths = config.get("auths") or {}
    for key in keys:
        if key in auths:
            found = _decode_auth(auths[key])
            if found is not None:
                return found
    if config.get("credsStore"):
        return _from_helper(host or Host(), str(config["credsStore"]), keys[0])
    return None
