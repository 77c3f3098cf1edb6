"""A client for the Docker Registry HTTP API v2 / OCI distribution spec.

Owns endpoints (mirrors, https, plain http only for loopback or registries named insecure,
extra CA certificates), authentication (anonymous or credentialed bearer tokens, basic auth),
retries with backoff on 429/5xx/connection errors, streamed blob downloads resumed with
``Range`` after a drop, and the upload calls `push` needs. One `requests.Session` per client.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from distrokit.errors import RegistryError, UsageError
from distrokit.oci.auth import Challenge, Credentials, find_credentials, parse_challenge
from distrokit.oci.cache import BlobWriter
from distrokit.oci.image import (
    CHUNK,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
)
from distrokit.reference import Reference

log = logging.getLogger(__name__)

MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
# Manifests are small; refuse anything absurd rather than hold it in memory.
MAX_MANIFEST_BYTES = 8 << 20
# Registries whose API is served from a host other than the reference domain (registry name ->
# base URL). Empty by default: such a registry is otherwise reached through --mirror.
ENDPOINT_OVERRIDES: dict[str, str] = {}
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


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
    timeout: float = 60.0


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


class _CAAdapter(HTTPAdapter):
    """An adapter whose TLS context trusts the system CAs plus the given certificate files."""

    def __init__(self, cert_files: Sequence[Path], pool: int) -> None:
        self._ctx = ssl.create_default_context()
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


class RegistryClient:
    """Talks to registries for one pull or push. Thread-safe for parallel blob transfers."""

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self.options = options or RegistryOptions()
        self.session = requests.Session()
        adapter = _CAAdapter(self.options.cert_files, self.options.max_parallel + 4)
        self.session.mount("https://", adapter)
        self.session.mount("http://", HTTPAdapter(pool_maxsize=self.options.max_parallel + 4))
        self._auth: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints --------------------------------------------------------------------

    def endpoints(self, registry: str) -> list[Endpoint]:
        """Mirrors for `registry` (then ``*`` mirrors), then the registry itself."""
        out = [
            Endpoint(registry, url, verify=True, mirror=True)
            for key in (registry, "*")
            for url in self.options.mirrors.get(key, ())
        ]
        insecure = registry in self.options.insecure_registries
        if registry in ENDPOINT_OVERRIDES:
            out.append(Endpoint(registry, ENDPOINT_OVERRIDES[registry]))
        elif is_loopback(registry):
            out.append(Endpoint(registry, f"http://{registry}"))
        else:
            out.append(Endpoint(registry, f"https://{registry}", verify=not insecure))
            if insecure:
                out.append(Endpoint(registry, f"http://{registry}"))
        return out

    # -- requests, retries, authentication -----------------------------------------------

    def request(
        self,
        ep: Endpoint,
        method: str,
        path: str,
        *,
        scope: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        data: Any = None,
        params: Mapping[str, str] | None = None,
        retry_network: bool = True,
    ) -> requests.Response:
        """Send one request with authentication and retries; the caller checks the status."""
        url = path if path.startswith(("http://", "https://")) else ep.base + path
        attempt, authed = 0, False
        # A streamed file body cannot be sent twice; the caller retries those itself.
        replayable = data is None or isinstance(data, bytes)
        while True:
            try:
                resp = self._send(
                    ep, method, url, scope=scope, headers=headers, stream=stream, data=data,
                    params=params,
                )  # fmt: skip
            except _NETWORK_ERRORS as err:
                if not retry_network or attempt >= self.options.retries:
                    raise RegistryError(f"cannot reach {ep.registry} ({ep.base}): {err}") from err
                attempt = self._sleep(attempt, None)
                continue
            if resp.status_code == 401 and not authed and replayable:
                authed = True
                challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                resp.close()
                self._authenticate(ep, challenge, scope, what)
                continue
            if resp.status_code in _RETRY_STATUS and replayable and attempt < self.options.retries:
                retry_after = resp.headers.get("Retry-After")
                resp.close()
                attempt = self._sleep(attempt, retry_after)
                continue
            if resp.status_code == 401:
                resp.close()
                raise self._auth_error(ep, what)
            return resp

    def _send(
        self,
        ep: Endpoint,
        method: str,
        url: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None,
        stream: bool,
        data: Any,
        params: Mapping[str, str] | None,
    ) -> requests.Response:
        hdrs = dict(headers or {})
        token = self._auth.get((ep.base, scope))
        if token:
            hdrs["Authorization"] = token
        try:
            return self.session.request(
                method,
                url,
                headers=hdrs,
                stream=stream,
                data=data,
                params=params,
                verify=ep.verify,
                timeout=self.options.timeout,
            )
        except requests.exceptions.SSLError as err:
            raise RegistryError(
                f"TLS certificate of {ep.registry} ({ep.base}) cannot be verified: {err}",
                hint="add its CA certificate with --cert-file, or name the registry with "
                "--insecure-registry",
            ) from err

    def _sleep(self, attempt: int, retry_after: str | None) -> int:
        delay = self.options.backoff * (2**attempt)
        if retry_after and retry_after.isdigit():
            delay = min(float(retry_after), 30.0)
        log.debug("retrying in %.1fs", delay)
        time.sleep(delay)
        return attempt + 1

    def _auth_error(self, ep: Endpoint, what: str) -> RegistryError:
        return RegistryError(
            f"authentication required for {ep.registry} (HTTP 401) to {what}",
            hint=f"log in with 'docker login {ep.registry}' or add credentials for "
            f"{ep.registry} to the Docker config.json (auths or credHelpers)",
        )

    def _credentials(self, registry: str) -> Credentials | None:
        return find_credentials(registry, config_path=self.options.auth_config_path)

    def _authenticate(self, ep: Endpoint, challenge: Challenge, scope: str, what: str) -> None:
        creds = self._credentials(ep.registry)
        if challenge.scheme == "basic":
            if creds is None:
                raise self._auth_error(ep, what)
            value = requests.auth._basic_auth_str(creds.username, creds.password)
        elif challenge.scheme == "bearer" and challenge.params.get("realm"):
            value = "Bearer " + self._token(ep, challenge, scope, creds, what)
        else:
            raise self._auth_error(ep, what)
        with self._lock:
            self._auth[(ep.base, scope)] = value

    def _token(
        self, ep: Endpoint, challenge: Challenge, scope: str, creds: Credentials | None, what: str
    ) -> str:
        params = {"scope": scope}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        auth = (creds.username, creds.password) if creds else None
        try:
            resp = self.session.get(
                challenge.params["realm"],
                params=params,
                auth=auth,
                timeout=self.options.timeout,
                verify=ep.verify,
            )
        except _NETWORK_ERRORS as err:
            raise RegistryError(f"cannot reach the token service of {ep.registry}: {err}") from err
        if resp.status_code in (401, 403):
            raise self._auth_error(ep, what)
        if resp.status_code != 200:
            raise RegistryError(
                f"token service of {ep.registry} answered HTTP {resp.status_code} for {what}"
            )
        try:
            body = resp.json()
            return str(body.get("token") or body["access_token"])
        except (ValueError, KeyError) as err:
            raise RegistryError(f"token service of {ep.registry} sent no token") from err

    def status_error(self, ep: Endpoint, resp: requests.Response, what: str) -> RegistryError:
        """A RegistryError for an unexpected response, naming registry, status and object."""
        detail = ""
        try:
            errors = resp.json().get("errors") or []
            detail = "; ".join(str(e.get("message", e.get("code", ""))) for e in errors)
        except (ValueError, AttributeError):
            pass
        if resp.status_code == 404:
            return RegistryError(
                f"{what}: not found in {ep.registry} (HTTP 404)" + (f": {detail}" if detail else "")
            )
        if resp.status_code == 403:
            return RegistryError(
                f"access denied by {ep.registry} (HTTP 403) to {what}",
                hint="check that your credentials allow this repository",
            )
        return RegistryError(
            f"{ep.registry} answered HTTP {resp.status_code} to {what}"
            + (f": {detail}" if detail else "")
        )

    # -- reading --------------------------------------------------------------------------

    def get_manifest(self, ep: Endpoint, ref: Reference, identifier: str) -> tuple[str, bytes]:
        """GET a manifest or index; return (media type, raw bytes). 404 names the reference."""
        scope = f"repository:{ref.path}:pull"
        what = f"pull {ref.name}:{identifier}" if ":" not in identifier else f"pull {ref}"
        resp = self.request(
            ep,
            "GET",
            f"/v2/{ref.path}/manifests/{identifier}",
            scope=scope,
            what=what,
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
        )
        with resp:
            if resp.status_code != 200:
                if resp.status_code == 404:
                    return_ref = ref.name + ("@" if ":" in identifier else ":") + identifier
                    raise RegistryError(f"image {return_ref} not found in {ep.registry} (HTTP 404)")
                raise self.status_error(ep, resp, what)
            body = resp.raw.read(MAX_MANIFEST_BYTES + 1, decode_content=True)
        if len(body) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"manifest of {ref} from {ep.registry} is too large")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return media_type, body

    def fetch_blob(
        self,
        ep: Endpoint,
        ref: Reference,
        desc: Descriptor,
        writer: BlobWriter,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """Stream blob `desc` into `writer`, resuming with Range after a dropped connection."""
        what = f"fetch blob {desc.digest} of {ref}"
        attempt = 0
        while True:
            headers = {"Range": f"bytes={writer.size}-"} if writer.size else {}
            try:
                self._stream_once(
                    ep, ref, desc, writer, headers=headers, what=what, on_bytes=on_bytes
                )
            except _NETWORK_ERRORS as err:
                if attempt >= self.options.retries:
                    raise RegistryError(
                        f"download of blob {desc.digest} of {ref} from {ep.registry} "
                        f"failed after {attempt} retries: {err}"
                    ) from err
                log.debug("blob %s dropped at %d bytes, resuming", desc.digest, writer.size)
                attempt = self._sleep(attempt, None)
                continue
            if writer.size >= desc.size:
                return
            # The body ended early without an error: resume like after a drop.
            if attempt >= self.options.retries:
                raise RegistryError(
                    f"blob {desc.digest} of {ref} from {ep.registry} ended after "
                    f"{writer.size} of {desc.size} bytes"
                )
            attempt = self._sleep(attempt, None)

    def _stream_once(
        self,
        ep: Endpoint,
        ref: Reference,
        desc: Descriptor,
        writer: BlobWriter,
        *,
        headers: Mapping[str, str],
        what: str,
        on_bytes: Callable[[int], None] | None,
    ) -> None:
        resp = self.request(
            ep,
            "GET",
            f"/v2/{ref.path}/blobs/{desc.digest}",
            scope=f"repository:{ref.path}:pull",
            what=what,
            headers=headers,
            stream=True,
        )
        with resp:
            if resp.status_code == 200 and writer.size:
                # The server ignored Range: start over.
                if on_bytes:
                    on_bytes(-writer.size)
                writer.reset()
            elif resp.status_code not in (200, 206):
                raise self.status_error(ep, resp, what)
            for chunk in resp.iter_content(CHUNK):
                writer.write(chunk)
                if writer.size > desc.size:
                    raise RegistryError(
                        f"blob {desc.digest} of {ref} from {ep.registry} is larger than "
                        f"its descriptor says ({desc.size} bytes)"
                    )
                if on_bytes:
                    on_bytes(len(chunk))

    # -- writing ----------------------------------------------------------------------------

    def blob_exists(self, ep: Endpoint, ref: Reference, digest: str) -> bool:
        """HEAD a blob: whether the repository already has it."""
        what = f"check blob {digest} in {ref.name}"
        resp = self.request(
            ep, "HEAD", f"/v2/{ref.path}/blobs/{digest}", scope=self._push_scope(ref), what=what
        )
        resp.close()
        if resp.status_code in (200, 404):
            return resp.status_code == 200
        raise self.status_error(ep, resp, what)

    @staticmethod
    def _push_scope(ref: Reference) -> str:
        return f"repository:{ref.path}:pull,push"

    def mount_blob(self, ep: Endpoint, ref: Reference, digest: str, source_path: str) -> bool:
        """Ask the registry to link blob `digest` from repository `source_path` (no upload)."""
        what = f"mount blob {digest} into {ref.name}"
        resp = self.request(
            ep,
            "POST",
            f"/v2/{ref.path}/blobs/uploads/",
            scope=self._push_scope(ref),
            what=what,
            params={"mount": digest, "from": source_path},
        )
        resp.close()
        if resp.status_code == 201:
            return True
        if resp.status_code == 202:
            # Not mountable here; the registry opened an upload instead, which we abandon.
            location = resp.headers.get("Location")
            if location:
                with contextlib.suppress(RegistryError):
                    self.request(
                        ep, "DELETE", urljoin(ep.base + "/", location), scope=self._push_scope(ref),
                        what=what,
                    ).close()  # fmt: skip
            return False
        raise self.status_error(ep, resp, what)

    def upload_blob(self, ep: Endpoint, ref: Reference, desc: Descriptor, path: Path) -> None:
        """Monolithic upload (POST then PUT with the streamed file), retried from scratch."""
        what = f"upload blob {desc.digest} to {ref.name}"
        scope = self._push_scope(ref)
        for attempt in range(self.options.retries + 1):
            resp = self.request(
                ep, "POST", f"/v2/{ref.path}/blobs/uploads/", scope=scope, what=what
            )
            resp.close()
            if resp.status_code != 202 or "Location" not in resp.headers:
                raise self.status_error(ep, resp, what)
            location = urljoin(ep.base + "/", resp.headers["Location"])
            try:
                with path.open("rb") as f:
                    put = self.request(
                        ep,
                        "PUT",
                        location,
                        scope=scope,
                        what=what,
                        params={"digest": desc.digest},
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Length": str(desc.size),
                        },
                        data=f,
                        retry_network=False,
                    )
            except RegistryError:
                if attempt >= self.options.retries:
                    raise
                self._sleep(attempt, None)
                continue
            put.close()
            if put.status_code in (201, 204):
                return
            if put.status_code in _RETRY_STATUS and attempt < self.options.retries:
                self._sleep(attempt, None)
                continue
            raise self.status_error(ep, put, what)

    def put_manifest(
        self, ep: Endpoint, ref: Reference, identifier: str, media_type: str, body: bytes
    ) -> None:
        """PUT a manifest or index under a tag or digest."""
        what = f"push manifest {ref.name}:{identifier}"
        resp = self.request(
            ep,
            "PUT",
            f"/v2/{ref.path}/manifests/{identifier}",
            scope=self._push_scope(ref),
            what=what,
            headers={"Content-Type": media_type},
            data=body,
        )
        resp.close()
        if resp.status_code not in (200, 201):
            raise self.status_error(ep, resp, what)
