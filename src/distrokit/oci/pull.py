"""Pulling images from registries into the cache, LinuxKit's ``ImagePull``.

Unless ``always`` (``--pull``) is set, an image complete in the cache for the platform is used
without touching the network. Otherwise the manifest (or index) is fetched; for an index only
the manifest of the requested platform and its blobs are stored, along with the index itself
(LinuxKit stores every child; see docs/compatibility.md). Missing blobs download in parallel on
a bounded thread pool, each streamed to a temp file, verified and renamed; the root entry is
recorded in index.json last, so a crash never leaves a named but incomplete image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from distrokit.errors import CacheError, RegistryError
from distrokit.oci.cache import Cache, check_platform, ref_name
from distrokit.oci.endpoints import Endpoint, RegistryOptions
from distrokit.oci.image import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_MANIFEST,
    CachedImage,
    Descriptor,
    Platform,
)
from distrokit.oci.registry import RegistryClient
from distrokit.reference import Reference, parse_reference

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PullOptions(RegistryOptions):
    """Registry options plus ``always``: fetch even when the cache has the image (``--pull``)."""

    always: bool = False


@dataclass(frozen=True)
class Progress:
    """Progress of one image: bytes downloaded of the bytes it needs (cached blobs excluded)."""

    image: str
    done: int
    total: int
    finished: bool = False
    cached: bool = False


ProgressCallback = Callable[[Progress], None]


class _Tracker:
    """Serialises progress reports from download threads."""

    def __init__(self, image: str, total: int, callback: ProgressCallback | None) -> None:
        self.image, self.total, self.done = image, total, 0
        self._callback = callback
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self._callback:
                self._callback(Progress(self.image, self.done, self.total))

    def finish(self, cached: bool = False) -> None:
        if self._callback:
            with self._lock:
                self._callback(Progress(self.image, self.done, self.total, True, cached))


def _digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _media_type(header_type: str, body: bytes, what: str) -> tuple[str, dict[str, Any]]:
    try:
        data = json.loads(body)
    except ValueError as err:
        raise RegistryError(f"manifest of {what} is not valid JSON") from err
    if not isinstance(data, dict):
        raise RegistryError(f"manifest of {what} is not a JSON object")
    media_type = str(data.get("mediaType") or header_type)
    if media_type not in INDEX_TYPES | MANIFEST_TYPES:
        if "manifests" in data:
            media_type = "application/vnd.oci.image.index.v1+json"
        elif "layers" in data:
            media_type = OCI_MANIFEST
        else:
            raise RegistryError(f"{what} has unsupported manifest type '{media_type}'")
    return media_type, data


class _Puller:
    """Pulls single references with one client and one bounded download pool."""

    def __init__(
        self,
        cache: Cache,
        client: RegistryClient,
        pool: ThreadPoolExecutor,
        platform: Platform,
        progress: ProgressCallback | None,
    ) -> None:
        self.cache, self.client, self.pool = cache, client, pool
        self.platform = platform
        self.progress = progress

    def pull(self, ref: Reference) -> CachedImage:
        errors: list[tuple[Endpoint, RegistryError]] = []
        for ep in self.client.endpoints(ref.domain):
            try:
                return self._pull_from(ep, ref)
            except RegistryError as err:
                # A mirror that lacks the image or is down: try the next endpoint.
                log.debug("pull of %s from %s failed: %s", ref, ep.base, err)
                errors.append((ep, err))
        if len(errors) == 1:
            raise errors[0][1]
        hint = next((e.hint for _, e in errors if e.hint), None)
        lines = [f"cannot pull {ref} from any of {len(errors)} endpoints:"]
        lines += [f"  {ep.base}: {err}" for ep, err in errors]
        raise RegistryError("\n".join(lines), hint=hint) from errors[-1][1]

    def _fetch_manifest(
        self, ep: Endpoint, ref: Reference, identifier: str
    ) -> tuple[Descriptor, dict[str, Any], bytes]:
        header_type, body = self.client.get_manifest(ep, ref, identifier)
        digest = _digest_of(body)
        if identifier.startswith("sha256:") and digest != identifier:
            raise RegistryError(
                f"manifest of {ref} from {ep.registry} hashes to {digest}, expected {identifier}"
            )
        media_type, data = _media_type(header_type, body, str(ref))
        return Descriptor(media_type, digest, len(body)), data, body

    def _pull_from(self, ep: Endpoint, ref: Reference) -> CachedImage:
        name = ref_name(ref)
        root, data, root_body = self._fetch_manifest(ep, ref, ref.identifier)
        manifest, manifest_data, manifest_body = root, data, root_body
        if root.media_type in INDEX_TYPES:
            try:
                child = self.cache.select_manifest(data, self.platform, name)
            except CacheError as err:
                raise RegistryError(str(err)) from None
            manifest, manifest_data, manifest_body = self._fetch_manifest(ep, ref, child.digest)
            if manifest.digest != child.digest:
                raise RegistryError(f"manifest {child.digest} of {name} changed while pulling")
        if "config" not in manifest_data or "layers" not in manifest_data:
            raise RegistryError(f"manifest {manifest.digest} of {name} is not an image manifest")
        try:
            blobs = [Descriptor.from_json(manifest_data["config"])]
            blobs += Descriptor.list_from_json(manifest_data["layers"], "layers")
        except CacheError as err:
            raise RegistryError(f"manifest {manifest.digest} of {name}: {err}") from None
        if root.media_type not in INDEX_TYPES:
            # Only the config says which platform a single manifest is for: check it before
            # the layers are fetched and the name is recorded.
            config = blobs[0]
            if not self.cache.has_blob(config):
                self._download_one(ep, ref, config, _Tracker(name, 0, None))
            try:
                check_platform(self.cache.read_blob(config.digest, owner=name), self.platform, name)
            except CacheError as err:
                raise RegistryError(err.message, hint=err.hint) from None
        self._download(ep, ref, name, blobs)
        # Children before parents, the name last: readers never see a dangling entry.
        self.cache.put_bytes(manifest_body, manifest.digest)
        self.cache.put_bytes(root_body, root.digest)
        plat = None if root.media_type in INDEX_TYPES else self.platform
        self.cache.record(name, Descriptor(root.media_type, root.digest, root.size, plat))
        return self.cache.image(name, self.platform)

    def _download(self, ep: Endpoint, ref: Reference, name: str, blobs: list[Descriptor]) -> None:
        todo = list({d.digest: d for d in blobs if not self.cache.has_blob(d)}.values())
        tracker = _Tracker(name, sum(d.size for d in todo), self.progress)
        futures = [self.pool.submit(self._download_one, ep, ref, d, tracker) for d in todo]
        failures = [f.exception() for f in futures if f.exception() is not None]
        if failures:
            err = failures[0]
            if isinstance(err, CacheError):
                raise RegistryError(f"image {name}: {err}") from err
            raise err if isinstance(err, Exception) else RuntimeError(str(err))
        tracker.finish(cached=not todo)

    def _download_one(
        self, ep: Endpoint, ref: Reference, desc: Descriptor, tracker: _Tracker
    ) -> None:
        if self.client.watchdog.cancelled:
            raise RegistryError(f"interrupted: fetch blob {desc.digest} of {ref}")
        with self.cache.blob_writer(desc.digest) as writer:
            self.client.fetch_blob(ep, ref, desc, writer, tracker.add)
            try:
                writer.commit()
            except CacheError as err:
                raise RegistryError(
                    f"blob {desc.digest} of {ref} from {ep.registry} failed verification: {err}"
                ) from err


def pull(
    cache: Cache,
    refs: Sequence[str | Reference],
    platform: Platform,
    *,
    options: PullOptions | None = None,
    progress: ProgressCallback | None = None,
) -> list[CachedImage]:
    """Make each of `refs` present in `cache` for `platform`, fetching only what is missing.

    With ``options.always`` the registry is asked even when the cache has the image. Returns
    the cached images in the order of `refs`. Raises RegistryError naming the reference.
    """
    opts = options or PullOptions()
    parsed = [r if isinstance(r, Reference) else parse_reference(r) for r in refs]
    cache.drop_stale_partials()
    out: list[CachedImage] = []
    with (
        RegistryClient(opts) as client,
        ThreadPoolExecutor(max_workers=max(1, opts.max_parallel)) as pool,
    ):
        puller = _Puller(cache, client, pool, platform, progress)
        try:
            for ref in parsed:
                found = None if opts.always else cache.find(ref, platform)
                if found is not None:
                    _Tracker(found.reference, 0, progress).finish(cached=True)
                    out.append(found)
                    continue
                out.append(puller.pull(ref))
        except BaseException:
            # Ctrl-C (or a failure) in this thread: cut the downloads still running, so the
            # pool's threads end now (removing their partial blobs) instead of when the
            # registry lets them.
            client.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return out
