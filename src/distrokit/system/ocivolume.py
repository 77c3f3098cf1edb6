"""A ``volumes:`` entry with ``format: oci``: the image as an OCI image layout in ``lower/``.

LinuxKit (``ImageOCITar``) writes, in this order: ``oci-layout``, ``blobs/``,
``blobs/sha256/``; for each manifest of the image's index that is an image manifest and matches
one of the volume's ``platforms`` (all of them when none is given): its config, its layers and
the manifest itself; then the index blob and an ``index.json`` naming the index by the image
reference. Blobs are copied from the cache byte for byte; generated entries have mtime 0 and
no owner, as LinuxKit's layout writer leaves them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from distrokit.errors import BuildError, CacheError
from distrokit.oci.cache import Cache
from distrokit.oci.image import (
    DOCKER_MANIFEST,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    REF_NAME,
    Descriptor,
    Platform,
)
from distrokit.reference import expand
from distrokit.system.gojson import marshal_indent
from distrokit.tarstream import Entry, Origin, directory, regular

# LinuxKit's oci-layout file, tabs and all.
LAYOUT_FILE = b'{\n\t\t"imageLayoutVersion": "1.0.0"\n\t}'
_IMAGE_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)


def _wanted(child: Descriptor, platforms: Sequence[Platform]) -> bool:
    if not platforms:
        return True
    if child.platform is None:
        return False
    return any(p.matches(child.platform) for p in platforms)


def _blob(cache: Cache, name: str, digest: str, origin: Origin) -> Entry:
    path = cache.blob_path(digest)
    try:
        stream = path.open("rb")
        size = path.stat().st_size
    except FileNotFoundError as err:
        raise CacheError(
            f"blob {digest} of image {origin.source} is missing from the cache",
            hint=f"pull it again: distrokit cache pull --pull {origin.source}",
        ) from err
    entry = regular(name, b"", origin, mode=0o644, mtime=0)
    entry.info.size = size
    return Entry(entry.info, stream)


def _manifest_blobs(cache: Cache, digest: str, owner: str) -> list[str]:
    manifest = cache.read_json(digest, owner=owner)
    try:
        config = str(manifest["config"]["digest"])
        layers = [str(layer["digest"]) for layer in manifest.get("layers") or []]
    except (KeyError, TypeError) as err:
        raise BuildError(f"manifest {digest} of image {owner} is not an image") from err
    return [config, *layers, digest]


def ref_annotation(ref: str) -> str:
    """The reference as LinuxKit's layout writer names it (go-containerregistry's spelling)."""
    full = expand(ref)
    if full.startswith("docker.io/"):
        return "index." + full
    return full


def index_json(index: Descriptor, ref: str) -> bytes:
    """``index.json`` as LinuxKit writes it: one descriptor, indented by three spaces."""
    desc: dict[str, Any] = {
        "mediaType": OCI_INDEX,
        "size": index.size,
        "digest": index.digest,
        "annotations": {REF_NAME: ref_annotation(ref)},
    }
    return marshal_indent(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}, indent="   "
    )


def oci_layout_entries(
    cache: Cache, ref: str, platforms: Sequence[str], prefix: str, location: str
) -> Iterator[Entry]:
    """The entries of the volume's ``lower/`` (`prefix`) for image `ref`."""
    name = expand(ref)
    origin = Origin(name, location)
    root = cache.lookup(ref)
    if root is None:
        raise CacheError(f"image {name} is not in the cache at {cache.root}")
    data = cache.read_json(root.digest, owner=name)
    if root.media_type not in INDEX_TYPES and data.get("manifests") is None:
        raise BuildError(
            f"volume image {name} is a single manifest, not an index: LinuxKit writes an OCI"
            " layout only from an index"
        )
    wanted = [Platform.parse(p) for p in platforms]
    yield regular(prefix + "oci-layout", LAYOUT_FILE, origin, mode=0o644, mtime=0)
    for sub in ("blobs/", "blobs/sha256/"):
        entry = directory(prefix + sub, origin, mtime=0)
        entry.info.name = prefix + sub  # LinuxKit keeps the trailing slash
        yield entry
    for raw in data.get("manifests") or []:
        child = Descriptor.from_json(raw)
        if not _wanted(child, wanted) or child.media_type not in _IMAGE_MANIFESTS:
            continue
        for digest in _manifest_blobs(cache, child.digest, name):
            yield _blob(cache, f"{prefix}blobs/sha256/{digest.split(':', 1)[1]}", digest, origin)
    yield _blob(cache, f"{prefix}blobs/sha256/{root.hex}", root.digest, origin)
    yield regular(prefix + "index.json", index_json(root, ref), origin, mode=0o644, mtime=0)
