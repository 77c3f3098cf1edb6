"""A client for the Docker Registry HTTP API v2 / OCI distribution spec.

Owns the requests to the endpoints `distrokit.oci.endpoints` describes: authentication
(anonymous or credentialed bearer tokens, basic auth), retries with backoff on 429/5xx and
connection errors, bounded bodies under a deadline, streamed blob downloads resumed with
``Range`` after a drop, and the upload calls `push` needs. One `requests.Session` per client.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter

from distrokit.deadline import (
    MIN_RATE,
    BodyTooLarge,
    Watch,
    Watchdog,
    current_watch,
    iter_body,
    read_body,
    watch_pools,
)
from distrokit.errors import RegistryError
from distrokit.oci.auth import Challenge, Credentials, find_credentials, parse_challenge
from distrokit.oci.cache import BlobWriter
from distrokit.oci.endpoints import (
    ENDPOINT_OVERRIDES,
    CAAdapter,
    Endpoint,
    RegistryOptions,
    is_loopback,
)
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
# Token answers and error bodies are read this far at most.
MAX_SMALL_BODY = 1 << 20
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
)


def _set_body(resp: requests.Response, body: bytes) -> None:
    """Make `resp.content` return `body` (read, bounded, while the transfer was watched)."""
    resp._content = body
    resp._content_consumed = True  # type: ignore[attr-defined]


class RegistryClient:
    """Talks to registries for one pull or push. Thread-safe for parallel blob transfers."""

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self.options = options or RegistryOptions()
        self.session = requests.Session()
        self.watchdog = Watchdog()
        adapter = CAAdapter(self.options.cert_files, self.options.max_parallel + 4)
        self.session.mount("https://", watch_pools(adapter))
        # Endpoints of registries named by --insecure-registry: TLS without verification. The
        # user asked for it by name: urllib3's warning on every request would only be noise.
        self.insecure_session = requests.Session()
        if self.options.insecure_registries:
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        insecure = CAAdapter((), self.options.max_parallel + 4, verify=False)
        self.insecure_session.mount("https://", watch_pools(insecure))
        self.insecure_session.mount("http://", watch_pools(HTTPAdapter()))
        plain = HTTPAdapter(pool_maxsize=self.options.max_parallel + 4)
        self.session.mount("http://", watch_pools(plain))
        self._auth: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close pooled connections."""
        self.watchdog.close()
        self.session.close()
        self.insecure_session.close()

    def cancel(self) -> None:
        """Stop every transfer now (from any thread): the user interrupted."""
        self.watchdog.cancel()

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
        """Send one request with authentication and retries; the caller checks the status.

        The body is always streamed (the caller reads it, bounded, or closes the response).
        Without a watch active in this thread (see `transfer`), the request gets its own.
        """
        if current_watch() is None:
            with self.transfer() as watch:
                resp = self.request(
                    ep, method, path, scope=scope, what=what, headers=headers, data=data,
                    params=params, retry_network=retry_network,
                )  # fmt: skip
                if not stream and resp.status_code < 300:
                    resp.close()
                elif not stream:
                    self._buffer_error(resp, watch)
                return resp
        url = path if path.startswith(("http://", "https://")) else ep.base + path
        attempt, authed = 0, False
        # A streamed file body cannot be sent twice; the caller retries those itself.
        replayable = data is None or isinstance(data, bytes)
        while True:
            try:
                resp = self._send(
                    ep, method, url, scope=scope, headers=headers, stream=True, data=data,
                    params=params,
                )  # fmt: skip
            except _NETWORK_ERRORS as err:
                self.check_cut(ep, what, err)
                if not retry_network or attempt >= self.options.retries:
                    raise RegistryError(f"cannot reach {ep.registry} ({ep.base}): {err}") from err
                attempt = self._sleep(attempt, None)
                continue
            current = current_watch()
            if current is not None:
                current.extend()  # an answer came: the deadline starts again
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

    def transfer(self, seconds: float | None = None) -> contextlib.AbstractContextManager[Watch]:
        """A deadline for one transfer made by this thread (default: the timeout)."""
        return self.watchdog.watch(self.options.timeout if seconds is None else seconds)

    def check_cut(self, ep: Endpoint, what: str, err: BaseException | None = None) -> None:
        """Raise the RegistryError that says why, if the current transfer was cut short.

        A socket timeout is the same stall seen from the socket (it is set a little longer
        than the deadline, but the two may race).
        """
        watch = current_watch()
        timed_out = isinstance(err, (requests.Timeout, urllib3.exceptions.TimeoutError))
        if watch is None or not (watch.cut or timed_out):
            return
        if watch.cancelled:
            raise RegistryError(f"interrupted: {what}") from err
        raise RegistryError(
            f"{ep.registry} ({ep.base}) stalled: no answer, or less than "
            f"{MIN_RATE * self.options.timeout / 1000:.0f} kB in {self.options.timeout:g} s, "
            f"to {what}",
            hint="the registry or the network is overloaded; try again, or raise --timeout",
        ) from err

    def _buffer_error(self, resp: requests.Response, watch: Watch) -> None:
        """Read a failed response's body (bounded) so it can be read after the watch ends."""
        try:
            _set_body(resp, read_body(resp, MAX_SMALL_BODY, watch))
        except (BodyTooLarge, *_NETWORK_ERRORS):
            _set_body(resp, b"")
        resp.close()

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
        session = self.session if ep.verify else self.insecure_session
        try:
            return session.request(
                method,
                url,
                headers=hdrs,
                stream=stream,
                data=data,
                params=params,
                verify=ep.verify,
                timeout=self.options.timeout + 1,
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
        watch = current_watch()
        if watch is not None:
            # Waiting is not the registry's fault: the deadline starts after the wait.
            watch.extend(delay + watch.window)
        if not self.watchdog.sleep(delay):
            raise RegistryError("interrupted")
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
        session = self.session if ep.verify else self.insecure_session
        try:
            resp = session.get(
                challenge.params["realm"],
                params=params,
                auth=auth,
                timeout=self.options.timeout,
                verify=ep.verify,
                stream=True,
            )
            with resp:
                if resp.status_code in (401, 403):
                    raise self._auth_error(ep, what)
                if resp.status_code != 200:
                    raise RegistryError(
                        f"token service of {ep.registry} answered HTTP {resp.status_code} "
                        f"for {what}"
                    )
                raw = read_body(resp, MAX_SMALL_BODY, current_watch())
        except (*_NETWORK_ERRORS, BodyTooLarge) as err:
            self.check_cut(ep, f"get a token for {what}", err)
            raise RegistryError(f"cannot reach the token service of {ep.registry}: {err}") from err
        try:
            body = json.loads(raw)
            return str(body.get("token") or body["access_token"])
        except (ValueError, KeyError, AttributeError, TypeError) as err:
            raise RegistryError(f"token service of {ep.registry} sent no token") from err

    def status_error(self, ep: Endpoint, resp: requests.Response, what: str) -> RegistryError:
        """A RegistryError for an unexpected response, naming registry, status and object."""
        detail = ""
        try:
            if not getattr(resp, "_content_consumed", False):  # streamed: read a bounded part
                _set_body(resp, read_body(resp, MAX_SMALL_BODY, current_watch()))
            errors = json.loads(resp.content).get("errors") or []
            detail = "; ".join(str(e.get("message", e.get("code", ""))) for e in errors)[:500]
        except (ValueError, AttributeError, TypeError, BodyTooLarge, *_NETWORK_ERRORS):
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
        with self.transfer() as watch:
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
                        raise RegistryError(
                            f"image {return_ref} not found in {ep.registry} (HTTP 404)"
                        )
                    raise self.status_error(ep, resp, what)
                try:
                    body = read_body(resp, MAX_MANIFEST_BYTES, watch)
                    self.check_cut(ep, what)
                except BodyTooLarge:
                    raise RegistryError(
                        f"manifest of {ref} from {ep.registry} is larger than "
                        f"{MAX_MANIFEST_BYTES >> 20} MiB"
                    ) from None
                except _NETWORK_ERRORS as err:
                    self.check_cut(ep, what, err)
                    raise RegistryError(
                        f"manifest of {ref} from {ep.registry} was cut off: {err}"
                    ) from err
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
        with self.transfer():
            self._fetch_blob(ep, ref, desc, writer, what=what, on_bytes=on_bytes)

    def _fetch_blob(
        self,
        ep: Endpoint,
        ref: Reference,
        desc: Descriptor,
        writer: BlobWriter,
        *,
        what: str,
        on_bytes: Callable[[int], None] | None,
    ) -> None:
        attempt = 0
        while True:
            headers = {"Range": f"bytes={writer.size}-"} if writer.size else {}
            try:
                self._stream_once(
                    ep, ref, desc, writer, headers=headers, what=what, on_bytes=on_bytes
                )
            except _NETWORK_ERRORS as err:
                self.check_cut(ep, what, err)
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
            self.check_cut(ep, what)
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
            watch = current_watch()
            window = 0
            for chunk in iter_body(resp, CHUNK):
                writer.write(chunk)
                window += len(chunk)
                if watch is not None and window >= MIN_RATE * watch.window:
                    watch.extend()
                    window = 0
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
                with (
                    path.open("rb") as f,
                    self.transfer(desc.size / MIN_RATE + self.options.timeout),
                ):
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
