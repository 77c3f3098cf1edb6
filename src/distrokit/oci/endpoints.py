"""How registries are reached: the options of a client (mirrors, insecure registries, CA
files, credentials, limits), LinuxKit's ``--mirror`` syntax, which hosts may be reached over
plain http (loopback only, unless named insecure), TLS contexts, and the `Endpoint` a request
goes to. `distrokit.oci.registry` sends the requests.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from requests.adapters import HTTPAdapter

from distrokit.errors import UsageError

# Registries whose API is served from a host other than the reference domain (registry name ->
# base URL). Empty by default: such a registry is otherwise reached through --mirror.
ENDPOINT_OVERRIDES: dict[str, str] = {}


@dataclass(frozen=True, kw_only=True)
class RegistryOptions:
    """How to reach registries: mirrors, insecure registries, CAs, credentials, limits."""

    mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    insecure_registries: frozenset[str] = frozenset()
    cert_files: tuple[Path, ...] = ()
    auth_config_path: Path | None = None
    max_parallel: int = 4
    retries: int = 5
    backoff: float = 0.5
    # No answer, or a body arriving slower than deadline.MIN_RATE, for this long ends a request
    # (see docs/security.md); it is also the connect and read timeout.
    timeout: float = 30.0


def parse_mirrors(specs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """LinuxKit's ``--mirror`` / ``LINUXKIT_MIRROR``: ``registry=url`` or ``url`` (all, ``*``)."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, url = spec.partition("=")
        if not sep:
            key, url = "*", spec
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"mirror URL '{url}' must start with http:// or https://")
        out.setdefault(key, []).append(url)
    return {k: tuple(v) for k, v in out.items()}


def is_loopback(registry: str) -> bool:
    """Whether ``host[:port]`` names this machine (plain http is allowed only there)."""
    if registry.startswith("["):
        hostname = registry[1:].partition("]")[0]
    else:
        hostname = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


class CAAdapter(HTTPAdapter):
    """An adapter whose TLS context trusts the system CAs plus the given certificate files.

    With `verify` false (a registry named by --insecure-registry) the context checks neither
    certificate nor host name: requests cannot turn verification off on a context that checks
    host names (it fails with "Cannot set verify_mode to CERT_NONE").
    """

    def __init__(self, cert_files: Sequence[Path], pool: int, *, verify: bool = True) -> None:
        self._ctx = ssl.create_default_context()
        if not verify:
            self._ctx.check_hostname = False
            self._ctx.verify_mode = ssl.CERT_NONE
        for cert in cert_files:
            try:
                self._ctx.load_verify_locations(cafile=str(cert))
            except (OSError, ssl.SSLError) as err:
                raise UsageError(f"cannot load CA certificate file {cert}: {err}") from err
        super().__init__(pool_connections=pool, pool_maxsize=pool)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._ctx
        super().init_poolmanager(*args, **kwargs)


@dataclass(frozen=True)
class Endpoint:
    """Where requests for one registry go: a base URL, and whether TLS is verified."""

    registry: str
    base: str
    verify: bool = True
    mirror: bool = False
