"""Pushing images from the cache to a registry (``cache push``, ``pkg push``).

Blobs the repository already has (HEAD) are skipped; the others are uploaded monolithically,
streamed from the cache file, on a bounded thread pool. Manifests go up after their blobs and
an index after its children, so the registry never sees a dangling reference.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from distrokit.errors import CacheError, RegistryError
from distrokit.oci.cache import Cache, ref_name
from distrokit.oci.endpoints import Endpoint, RegistryOptions
from distrokit.oci.image import INDEX_TYPES, Descriptor
from distrokit.oci.registry import RegistryClient
from distrokit.reference import Reference, parse_reference

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PushOptions(RegistryOptions):
    """Registry options plus LinuxKit's push flags."""

    with_arch_tags: bool = False
    # Push even when the registry already has the tag at the same digest.
    override: bool = False


def _push_manifest_blobs(
    cache: Cache,
    client: RegistryClient,
    ep: Endpoint,
    target: Reference,
    manifest: Descriptor,
    *,
    pool: ThreadPoolExecutor,
    mount_from: str | None = None,
) -> bytes:
    name = str(target)
    data = cache.read_json(manifest.digest, owner=name)
    blobs = [Descriptor.from_json(data["config"])]
    blobs += [Descriptor.from_json(layer) for layer in data.get("layers") or []]
    missing = [b.digest for b in blobs if not cache.has_blob(b)]
    if missing:
        raise CacheError(
            f"cannot push {name}: blob(s) {', '.join(missing)} are missing from the cache",
            hint="pull or build the image again",
        )

    def one(desc: Descriptor) -> None:
        if client.blob_exists(ep, target, desc.digest):
            log.debug("blob %s already in %s", desc.digest, target.name)
            return
        if mount_from and client.mount_blob(ep, target, desc.digest, mount_from):
            log.debug("blob %s mounted from %s", desc.digest, mount_from)
            return
        client.upload_blob(ep, target, desc, cache.blob_path(desc.digest))

    for future in [pool.submit(one, b) for b in blobs]:
        future.result()
    return cache.read_blob(manifest.digest, owner=name)


def _remote_digest(client: RegistryClient, ep: Endpoint, target: Reference, tag: str) -> str | None:
    try:
        _, body = client.get_manifest(ep, target, tag)
    except RegistryError:
        return None  # absent or unreadable: push it and let that report any real problem
    return "sha256:" + hashlib.sha256(body).hexdigest()


def push(
    cache: Cache,
    ref: str | Reference,
    *,
    remote_name: str | None = None,
    options: PushOptions | None = None,
) -> str:
    """Push image `ref` from the cache (as `remote_name` if given); return the root digest."""
    opts = options or PushOptions()
    name = ref_name(ref)
    root = cache.lookup(ref)
    if root is None:
        raise CacheError(f"image {name} is not in the cache at {cache.root}")
    target = parse_reference(remote_name or name)
    tag = target.tag or (None if target.digest else "latest")
    with (
        RegistryClient(opts) as client,
        ThreadPoolExecutor(max_workers=max(1, opts.max_parallel)) as pool,
    ):
        # Pushes go to the registry itself, never to a mirror.
        ep = next(e for e in client.endpoints(target.domain) if not e.mirror)
        source = parse_reference(name)
        # Pushing under another name on the same registry: link blobs instead of uploading.
        mount = (
            source.path if source.domain == target.domain and source.path != target.path else None
        )
        if not opts.override and tag and _remote_digest(client, ep, target, tag) == root.digest:
            log.info("%s is already in the registry at %s", target, root.digest)
            return root.digest
        if root.media_type in INDEX_TYPES:
            index = cache.read_json(root.digest, owner=name)
            children = [Descriptor.from_json(m) for m in index.get("manifests") or []]
            present = [c for c in children if cache.blob_path(c.digest).exists()]
            if len(present) != len(children):
                raise CacheError(
                    f"cannot push index {name}: only {len(present)} of its {len(children)} "
                    "platform manifests are in the cache",
                    hint="pull it with every platform, or push the per-platform image",
                )
            for child in children:
                body = _push_manifest_blobs(
                    cache, client, ep, target, child, pool=pool, mount_from=mount
                )
                client.put_manifest(ep, target, child.digest, child.media_type, body)
                if opts.with_arch_tags and tag and child.platform is not None:
                    arch_tag = f"{tag}-{child.platform.architecture}"
                    client.put_manifest(ep, target, arch_tag, child.media_type, body)
        else:
            _push_manifest_blobs(cache, client, ep, target, root, pool=pool, mount_from=mount)
        body = cache.read_blob(root.digest, owner=name)
        client.put_manifest(ep, target, tag or root.digest, root.media_type, body)
    if target.digest and target.digest != root.digest:
        raise RegistryError(f"pushed {name} has digest {root.digest}, not {target.digest}")
    return root.digest
