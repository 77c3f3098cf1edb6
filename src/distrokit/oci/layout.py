"""Moving images between the cache and tar archives (``cache import`` / ``cache export``).

Import reads an OCI image layout tar (``docker buildx build --output type=oci``, ``skopeo copy
oci-archive:``, LinuxKit's export) as a stream: every blob is verified against its name as it
enters the cache, then the ``index.json`` entries named by ``io.containerd.image.name`` (or a
full ``org.opencontainers.image.ref.name``) are recorded. Export writes one image for one
platform as a deterministic tar in one of `EXPORT_FORMATS`: an OCI layout, the same with
Docker's ``manifest.json`` (``docker load``), or the flattened root filesystem.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from distrokit.errors import CacheError
from distrokit.oci.cache import Cache
from distrokit.oci.flatten import flatten
from distrokit.oci.image import (
    CONTAINERD_NAME,
    INDEX_TYPES,
    OCI_INDEX,
    REF_NAME,
    CachedImage,
    Descriptor,
    Platform,
    digest_hex,
)
from distrokit.reference import ReferenceError, parse_reference

_MAX_JSON = 8 << 20


def _image_name(desc: Descriptor) -> str | None:
    name = desc.annotations.get(CONTAINERD_NAME)
    if name:
        return name
    # In plain OCI layouts ref.name is often just a tag; only a full reference names an image.
    ref = desc.annotations.get(REF_NAME, "")
    if "/" in ref or "." in ref.partition(":")[0]:
        return ref
    return None


def import_layout(cache: Cache, stream: IO[bytes], *, source: str = "archive") -> list[str]:
    """Import an OCI layout tar from `stream`; return the image names recorded.

    Blobs the archive brought that no named image uses afterwards (all of them, when the
    import fails) are removed again: nothing could reach them to remove them later.
    """
    added: set[str] = set()
    try:
        return _import(cache, stream, source, added)
    finally:
        if added:
            cache.drop_unreferenced(added)


def _import(cache: Cache, stream: IO[bytes], source: str, added: set[str]) -> list[str]:
    index: dict[str, Any] | None = None
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if not member.isfile():
                    continue
                fobj = tar.extractfile(member)
                if fobj is None:
                    continue
                if name == "index.json":
                    index = json.loads(fobj.read(_MAX_JSON))
                    if not isinstance(index, dict):
                        raise CacheError("index.json is not a JSON object")
                elif name.startswith("blobs/sha256/"):
                    digest = "sha256:" + name.removeprefix("blobs/sha256/")
                    digest_hex(digest)
                    if not cache.blob_path(digest).exists():
                        added.add(digest)
                    with cache.blob_writer(digest) as writer:
                        while chunk := fobj.read(1 << 20):
                            writer.write(chunk)
                        writer.commit()
    except (tarfile.TarError, ValueError, EOFError, zlib.error, lzma.LZMAError) as err:
        raise CacheError(f"{source} is not a readable OCI layout tar: {err}") from err
    except TypeError as err:
        # tarfile's stream reader fails this way on a gzip header cut short (b"\x1f\x8b\x08").
        raise CacheError(f"{source} is not a readable OCI layout tar: truncated") from err
    except CacheError as err:
        raise CacheError(f"{source}: {err}") from err
    if index is None:
        raise CacheError(f"{source} has no index.json: it is not an OCI image layout")
    recorded = []
    try:
        entries = Descriptor.list_from_json(index.get("manifests"), "index.json: manifests")
    except CacheError as err:
        raise CacheError(f"{source}: {err}") from err
    for desc in entries:
        image = _image_name(desc)
        if image is None:
            continue
        try:
            ref = parse_reference(image)
        except ReferenceError as err:
            raise CacheError(f"{source}: invalid image name '{image}'") from err
        _check_complete(cache, desc, f"{source}: image {image}")
        cache.record(ref, Descriptor(desc.media_type, desc.digest, desc.size, desc.platform))
        recorded.append(str(ref))
    if not recorded:
        raise CacheError(f"{source} names no image (no {CONTAINERD_NAME} annotation in index.json)")
    return recorded


def _check_complete(cache: Cache, desc: Descriptor, what: str) -> None:
    """Every manifest the entry needs is present (platform children may be partial)."""
    data = cache.read_json(desc.digest, owner=what)
    if desc.media_type in INDEX_TYPES or "manifests" in data:
        children = Descriptor.list_from_json(data.get("manifests"), f"{what}: manifests")
        if not any(cache.blob_path(c.digest).exists() for c in children):
            raise CacheError(f"{what} has none of its platform manifests in the archive")
        return
    if "config" not in data:
        raise CacheError(f"{what}: manifest {desc.digest} has no config")
    blobs = [Descriptor.from_json(data["config"])]
    blobs += Descriptor.list_from_json(data.get("layers"), f"{what}: layers")
    missing = [b.digest for b in blobs if not cache.has_blob(b)]
    if missing:
        raise CacheError(f"{what} is missing blob(s) {', '.join(missing)}")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


class _Hashing(io.RawIOBase):
    """Reads a file while hashing it, so exported blobs are verified too."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()

    def read(self, n: int | None = -1) -> bytes:
        data = self._raw.read(-1 if n is None else n)
        self.hash.update(data)
        return data

    def readable(self) -> bool:
        return True


def _add_blob(tar: tarfile.TarFile, cache: Cache, digest: str, owner: str) -> None:
    path = cache.blob_path(digest)
    info = tarfile.TarInfo(f"blobs/sha256/{digest_hex(digest)}")
    try:
        info.size = path.stat().st_size
        info.mode, info.mtime = 0o644, 0
        with path.open("rb") as f:
            reader = _Hashing(f)
            tar.addfile(info, reader)
    except FileNotFoundError as err:
        raise CacheError(f"blob {digest} of image {owner} is missing from the cache") from err
    if "sha256:" + reader.hash.hexdigest() != digest:
        path.unlink(missing_ok=True)
        raise CacheError(f"blob {digest} of image {owner} is corrupt in the cache (removed)")


def _write_layout(
    tar: tarfile.TarFile, cache: Cache, image: CachedImage, name: str, docker: bool
) -> None:
    """An OCI image layout holding `image` as `name`; with `docker`, also manifest.json."""
    platform = Platform(image.config.os, image.config.architecture, image.config.variant)
    entry = Descriptor(
        image.manifest.media_type,
        image.digest,
        image.manifest.size,
        platform,
        {CONTAINERD_NAME: name, REF_NAME: name},
    ).to_json()
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    digests = [image.digest, image.config_descriptor.digest, *(d.digest for d in image.layers)]
    _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    _add_bytes(tar, "index.json", json.dumps(index, sort_keys=True).encode())
    for digest in dict.fromkeys(digests):
        _add_blob(tar, cache, digest, image.reference)
    if docker:
        manifest = [
            {
                "Config": f"blobs/sha256/{image.config_descriptor.hex}",
                "RepoTags": [name] if parse_reference(name).tag else [],
                "Layers": [f"blobs/sha256/{d.hex}" for d in image.layers],
            }
        ]
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())


def _write_oci(tar: tarfile.TarFile, cache: Cache, image: CachedImage, name: str) -> None:
    _write_layout(tar, cache, image, name, docker=False)


def _write_docker(tar: tarfile.TarFile, cache: Cache, image: CachedImage, name: str) -> None:
    _write_layout(tar, cache, image, name, docker=True)


def _write_filesystem(tar: tarfile.TarFile, cache: Cache, image: CachedImage, name: str) -> None:
    """The image's flattened root filesystem (whiteouts applied), as the build reads it."""
    layers = image.layers
    for entry in flatten(len(layers), lambda i: image.open_layer(layers[i])):
        tar.addfile(entry.info, entry.data)


@dataclass(frozen=True)
class ExportFormat:
    """An export format: its name, what it is, and the function writing it into a tar."""

    name: str
    description: str
    write: Callable[[tarfile.TarFile, Cache, CachedImage, str], None]


EXPORT_FORMATS: Mapping[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("oci", "OCI image layout tar (what cache import reads)", _write_oci),
        ExportFormat("docker", "OCI layout plus manifest.json for docker load", _write_docker),
        ExportFormat("filesystem", "flattened root filesystem tar", _write_filesystem),
    )
}


def export_image(
    cache: Cache,
    ref: str,
    platform: Platform,
    out: IO[bytes],
    *,
    fmt: str = "oci",
    name: str | None = None,
) -> str:
    """Write image `ref` for `platform` to `out` as a tar in format `fmt`; return its digest.

    Deterministic: fixed order, mtime 0, no owner names; the same image gives the same bytes.
    """
    spec = EXPORT_FORMATS.get(fmt)
    if spec is None:
        raise CacheError(f"unknown export format '{fmt}' (choose from {', '.join(EXPORT_FORMATS)})")
    image = cache.image(ref, platform)
    image_name = str(parse_reference(name)) if name else image.reference
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        spec.write(tar, cache, image, image_name)
    return image.digest
