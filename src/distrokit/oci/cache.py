"""The content-addressed image cache: an OCI image layout shared with LinuxKit.

Layout (the same as ``~/.linuxkit/cache``): ``oci-layout``, ``index.json`` whose entries are
named by the ``org.opencontainers.image.ref.name`` annotation (the fully expanded reference),
``blobs/sha256/<hex>``, and a ``.lock`` file. Safety under concurrency:

- every read-modify-write of ``index.json`` holds an exclusive ``fcntl`` lock on ``.lock`` and
  replaces the file atomically (temp name + fsync + rename), so readers never see half a file;
- blobs are written to a temp name in ``blobs/sha256``, hashed while written, fsynced, and only
  renamed to their digest once the sha256 matches: a blob file's content is always its name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gzip
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from distrokit.errors import CacheError
from distrokit.leftovers import sweep, temp_prefix
from distrokit.oci.image import (
    CHUNK,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    REF_NAME,
    CachedImage,
    Descriptor,
    ImageConfigBlob,
    Platform,
    canonical_json,
    declared_platform,
    digest_hex,
)
from distrokit.reference import Reference, parse_reference

# Cache files are shared with LinuxKit and other users' tools: readable by all, like Go writes.
_FILE_MODE = 0o644
_STALE_PARTIAL_SECONDS = 24 * 3600
_COMPRESSION = {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}


def default_cache_dir() -> Path:
    """``$LINUXKIT_CACHE`` if set, else ``~/.linuxkit/cache`` (shared with LinuxKit)."""
    env = os.environ.get("LINUXKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".linuxkit" / "cache"


# What a cache directory may hold: the layout, the lock, and temp files of atomic writes.
_LAYOUT_NAMES = frozenset({"oci-layout", "index.json", "blobs", ".lock"})
_TEMP_PREFIXES = (".oci-layout.", ".index.json.")


def check_cache_dir(root: Path) -> None:
    """Raise CacheError unless `root` is absent or holds only an image cache (OCI layout).

    `cache clean` deletes the whole directory, so a folder of someone's files given by
    mistake must be refused, not emptied.
    """
    try:
        names = sorted(p.name for p in root.iterdir())
    except FileNotFoundError:
        return
    except NotADirectoryError as err:
        raise CacheError(f"{root} is not a directory, so not an image cache") from err
    except OSError as err:
        raise CacheError(f"cannot read image cache {root}: {err.strerror}") from err
    stray = [n for n in names if n not in _LAYOUT_NAMES and not n.startswith(_TEMP_PREFIXES)]
    blobs = root / "blobs"
    if blobs.is_dir():
        stray += [f"blobs/{p.name}" for p in blobs.iterdir() if p.name != "sha256"]
    if stray:
        shown = ", ".join(stray[:5]) + (", ..." if len(stray) > 5 else "")
        raise CacheError(
            f"{root} is not an image cache: it holds {shown}",
            hint="an image cache holds only oci-layout, index.json, blobs/ and .lock",
        )


def check_platform(raw_config: bytes, platform: Platform, name: str) -> None:
    """Raise CacheError if an image config states another os/architecture than `platform`."""
    declared = declared_platform(raw_config)
    if declared is not None and not platform.matches(declared):
        raise CacheError(
            f"image {name} is built for {declared}, not {platform}",
            hint=f"it has a single manifest (no index): use an image built for {platform}",
        )


def ref_name(ref: str | Reference) -> str:
    """The name recorded in index.json: LinuxKit's expanded reference (no tag invented)."""
    return str(ref if isinstance(ref, Reference) else parse_reference(ref))


def _names(ref: str | Reference) -> list[str]:
    # "nginx" may have been recorded as docker.io/library/nginx or ...:latest; accept both.
    parsed = ref if isinstance(ref, Reference) else parse_reference(ref)
    return list(dict.fromkeys([str(parsed), parsed.canonical]))


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same directory and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.fchmod(fd, _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class BlobWriter:
    """A blob being written: hashed as it is written, renamed into place by `commit`.

    The temp file can be reopened for appending (`resume_offset`) so an interrupted download
    continues with an HTTP Range request instead of starting again.
    """

    def __init__(self, blob_dir: Path, expected: str | None) -> None:
        self.expected = expected
        self._blob_dir = blob_dir
        fd, tmp = tempfile.mkstemp(dir=blob_dir, prefix=temp_prefix(".partial-"))
        os.fchmod(fd, _FILE_MODE)
        self.tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def reset(self) -> None:
        """Start the blob again from byte 0 (the server ignored a Range request)."""
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        """Append `data` (hashing it)."""
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def commit(self) -> str:
        """Verify the digest, fsync and rename; return the digest. Mismatch -> CacheError."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = "sha256:" + self._hash.hexdigest()
        if self.expected is not None and digest != self.expected:
            self.tmp.unlink(missing_ok=True)
            raise CacheError(f"blob content hashes to {digest}, expected {self.expected}")
        self.tmp.replace(self._blob_dir / digest_hex(digest))
        return digest

    def abort(self) -> None:
        """Throw the partial blob away."""
        self._file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()


@dataclass(frozen=True)
class CacheEntry:
    """One named root in index.json, with the bytes its present blobs take."""

    name: str
    descriptor: Descriptor
    size: int


class Cache:
    """An OCI image layout on disk (created when missing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs" / "sha256"
        layout = self.root / "oci-layout"
        if self.blob_dir.is_dir() and layout.exists() and (self.root / "index.json").exists():
            return  # nothing to create: a read-only cache can still be read
        try:
            self.blob_dir.mkdir(parents=True, exist_ok=True)
            with self._locked():
                if not layout.exists():
                    atomic_write(layout, b'{"imageLayoutVersion":"1.0.0"}')
                if not (self.root / "index.json").exists():
                    self._write_index([])
        except OSError as err:
            raise CacheError(f"cannot create image cache at {self.root}: {err}") from err

    # -- locking and index.json ---------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, shared: bool = False) -> Iterator[None]:
        with self._lock_file(shared) as f:
            if f is None:
                yield  # a read-only cache without a lock file: nobody can be writing it
                return
            fcntl.flock(f.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _lock_file(self, shared: bool) -> contextlib.AbstractContextManager[Any]:
        """The open lock file; for readers of a read-only cache, opened read-only or None."""
        path = self.root / ".lock"
        try:
            return path.open("a+b")
        except IsADirectoryError:
            # Left by a bad copy or unpack; the lock holds no data, so an empty one is
            # replaced. A non-empty one may be someone's: say so instead.
            try:
                path.rmdir()
                return path.open("a+b")
            except OSError as err:
                raise CacheError(
                    f"{path} is a directory, not the cache's lock file", hint=f"remove {path}"
                ) from err
        except OSError as err:
            if not shared:
                raise CacheError(f"cannot lock image cache {self.root}: {err.strerror}") from err
        try:
            return path.open("rb")
        except FileNotFoundError:
            return contextlib.nullcontext()
        except OSError as err:
            raise CacheError(f"cannot lock image cache {self.root}: {err.strerror}") from err

    def _read_index(self) -> list[Descriptor]:
        path = self.root / "index.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except ValueError as err:
            raise CacheError(f"{path} is not valid JSON") from err
        if not isinstance(data, dict):
            raise CacheError(f"{path} is not a JSON object")
        try:
            return Descriptor.list_from_json(data.get("manifests"), "manifests")
        except CacheError as err:
            raise CacheError(f"{path}: {err}", hint="repair or remove the damaged entry") from err

    def _write_index(self, entries: Sequence[Descriptor]) -> None:
        data = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [d.to_json() for d in entries],
        }
        atomic_write(self.root / "index.json", json.dumps(data, indent=2).encode() + b"\n")

    def entries(self) -> list[Descriptor]:
        """Every root descriptor in index.json (read under a shared lock)."""
        with self._locked(shared=True):
            return self._read_index()

    def record(self, ref: str | Reference, desc: Descriptor) -> None:
        """Name `desc` as `ref` in index.json, replacing an older entry of that name."""
        name = ref_name(ref)
        entry = Descriptor(desc.media_type, desc.digest, desc.size, desc.platform, {REF_NAME: name})
        with self._locked():
            kept = [d for d in self._read_index() if d.annotations.get(REF_NAME) != name]
            self._write_index([*kept, entry])

    def unrecord(self, refs: Sequence[str | Reference]) -> list[str]:
        """Remove the index.json entries named `refs`; return the names removed."""
        names = {n for r in refs for n in _names(r)}
        with self._locked():
            entries = self._read_index()
            gone = [
                d.annotations.get(REF_NAME, "")
                for d in entries
                if d.annotations.get(REF_NAME) in names
            ]
            self._write_index([d for d in entries if d.annotations.get(REF_NAME) not in names])
        return gone

    def lookup(self, ref: str | Reference) -> Descriptor | None:
        """The root descriptor recorded for `ref`, if any."""
        names = _names(ref)
        for desc in reversed(self.entries()):
            if desc.annotations.get(REF_NAME) in names:
                return desc
        return None

    # -- blobs ------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where the blob `digest` lives (whether or not it is present)."""
        return self.blob_dir / digest_hex(digest)

    def has_blob(self, desc: Descriptor) -> bool:
        """Whether the blob is present with the expected size."""
        try:
            return self.blob_path(desc.digest).stat().st_size == desc.size
        except FileNotFoundError:
            return False

    def blob_writer(self, expected: str | None = None) -> BlobWriter:
        """A writer for a new blob; `commit()` verifies `expected` and renames it into place."""
        return BlobWriter(self.blob_dir, expected)

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        """Store a small blob (manifest, config); return its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected is not None and digest != expected:
            raise CacheError(f"blob content hashes to {digest}, expected {expected}")
        if not self.blob_path(digest).exists():
            with self.blob_writer(digest) as w:
                w.write(data)
                w.commit()
        return digest

    def read_blob(self, digest: str, *, owner: str = "") -> bytes:
        """Read a small blob and verify its digest; errors name `owner` (an image)."""
        path = self.blob_path(digest)
        of = f" of image {owner}" if owner else ""
        try:
            data = path.read_bytes()
        except FileNotFoundError as err:
            raise CacheError(f"blob {digest}{of} is missing from the cache") from err
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            with contextlib.suppress(OSError):  # a read-only cache keeps it
                path.unlink(missing_ok=True)
            raise CacheError(f"blob {digest}{of} is corrupt in the cache (removed)")
        return data

    def read_json(self, digest: str, *, owner: str = "") -> dict[str, Any]:
        """A verified JSON blob (manifest, index or config)."""
        try:
            data = json.loads(self.read_blob(digest, owner=owner))
        except ValueError as err:
            raise CacheError(f"blob {digest} of {owner or 'the cache'} is not valid JSON") from err
        if not isinstance(data, dict):
            raise CacheError(f"blob {digest} of {owner or 'the cache'} is not a JSON object")
        return data

    # -- images -----------------------------------------------------------------------

    def select_manifest(
        self, index: Mapping[str, Any], platform: Platform, owner: str
    ) -> Descriptor:
        """LinuxKit's selection: the first manifest whose os+arch match (variant if asked)."""
        children = Descriptor.list_from_json(index.get("manifests"), f"index {owner}: manifests")
        for child in children:
            if child.platform is not None and platform.matches(child.platform):
                return child
        found = sorted({str(c.platform) for c in children if c.platform is not None})
        raise CacheError(
            f"index {owner} does not contain target platform {platform}"
            + (f" (it has {', '.join(found)})" if found else "")
        )

    def image(self, ref: str | Reference, platform: Platform) -> CachedImage:
        """The image `ref` for `platform`; CacheError naming the reference if absent/incomplete."""
        name = ref_name(ref)
        root = self.lookup(ref)
        if root is None:
            raise CacheError(
                f"image {name} is not in the cache at {self.root}",
                hint=f"pull it first: distrokit cache pull {name}",
            )
        manifest_desc = root
        data = self.read_json(root.digest, owner=name)
        if root.media_type in INDEX_TYPES or data.get("manifests") is not None:
            manifest_desc = self.select_manifest(data, platform, name)
            data = self.read_json(manifest_desc.digest, owner=name)
        if "config" not in data or "layers" not in data:
            raise CacheError(f"manifest {manifest_desc.digest} of image {name} is not an image")
        config_desc = Descriptor.from_json(data["config"])
        layers = tuple(
            Descriptor.list_from_json(data["layers"], f"manifest {manifest_desc.digest}: layers")
        )
        missing = [d.digest for d in layers if not self.has_blob(d)]
        if missing:
            raise CacheError(
                f"image {name} is incomplete in the cache: missing layer(s) {', '.join(missing)}",
                hint=f"pull it again: distrokit cache pull {name}",
            )
        raw_config = self.read_blob(config_desc.digest, owner=name)
        config = ImageConfigBlob.from_bytes(raw_config)
        if manifest_desc is root:
            # A single manifest has no platform list: its config says what it is built for.
            check_platform(raw_config, platform, name)
        return CachedImage(
            reference=name,
            digest=manifest_desc.digest,
            manifest=manifest_desc,
            config=config,
            config_descriptor=config_desc,
            layers=layers,
            blob_dir=self.blob_dir,
        )

    def find(self, ref: str | Reference, platform: Platform) -> CachedImage | None:
        """Like `image`, but None when the image is absent or incomplete.

        A damaged index.json is still an error: hiding it would send a pull to the registry
        and report the cache's problem as the network's.
        """
        if self.lookup(ref) is None:
            return None
        try:
            return self.image(ref, platform)
        except CacheError:
            return None

    def _store_layer(self, path: Path, compression: str) -> tuple[Descriptor, str]:
        """Compress one uncompressed tar into a blob; return its descriptor and diff_id."""
        media_type = _COMPRESSION.get(compression)
        if media_type is None:
            raise CacheError(f"unknown layer compression '{compression}' (gzip, zstd or none)")
        diff = hashlib.sha256()
        with self.blob_writer() as w, path.open("rb") as src:
            sink: Any
            if compression == "gzip":
                # mtime 0 and no file name: the same tar always gives the same blob.
                sink = gzip.GzipFile(filename="", mode="wb", fileobj=w, mtime=0, compresslevel=6)  # type: ignore[call-overload]
            elif compression == "zstd":
                sink = zstandard.ZstdCompressor(level=3).stream_writer(w, closefd=False)  # type: ignore[arg-type]
            else:
                sink = w
            while chunk := src.read(CHUNK):
                diff.update(chunk)
                sink.write(chunk)
            if sink is not w:
                sink.close()
            digest = w.commit()
            size = w.size
        return Descriptor(media_type, digest, size), "sha256:" + diff.hexdigest()

    def add_image(
        self,
        ref: str | Reference,
        layers: Sequence[Path],
        config: ImageConfigBlob,
        platform: Platform,
        *,
        compression: str = "gzip",
        annotations: Mapping[str, str] | None = None,
    ) -> str:
        """Build a deterministic single-platform OCI image from uncompressed tars, name it `ref`.

        Returns the manifest digest. The same inputs always give the same digest.
        """
        stored = [self._store_layer(Path(p), compression) for p in layers]
        plat_config = dataclasses.replace(
            config,
            os=platform.os,
            architecture=platform.architecture,
            variant=platform.variant,
            raw_digest=None,
        )
        config_bytes = canonical_json(plat_config.to_json([diff for _, diff in stored]))
        config_digest = self.put_bytes(config_bytes)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [d.to_json() for d, _ in stored],
        }
        if annotations:
            manifest["annotations"] = dict(annotations)
        manifest_bytes = canonical_json(manifest)
        digest = self.put_bytes(manifest_bytes)
        self.record(ref, Descriptor(OCI_MANIFEST, digest, len(manifest_bytes), platform))
        return digest

    def add_index(
        self,
        ref: str | Reference,
        manifests: Sequence[Descriptor],
        *,
        annotations: Mapping[str, str] | None = None,
    ) -> str:
        """Write a multi-platform OCI index over `manifests` (already in the cache) as `ref`."""
        for m in manifests:
            if m.platform is None:
                raise CacheError(f"manifest {m.digest} added to index {ref} has no platform")
            if not self.blob_path(m.digest).exists():
                raise CacheError(f"manifest {m.digest} added to index {ref} is not in the cache")
        index: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                Descriptor(m.media_type or OCI_MANIFEST, m.digest, m.size, m.platform).to_json()
                for m in manifests
            ],
        }
        if annotations:
            index["annotations"] = dict(annotations)
        data = canonical_json(index)
        digest = self.put_bytes(data)
        self.record(ref, Descriptor(OCI_INDEX, digest, len(data)))
        return digest

    # -- listing and removal ------------------------------------------------------------

    def reachable(self, desc: Descriptor) -> set[str]:
        """Digests of every blob reachable from `desc` that the cache holds (and desc's own)."""
        seen: set[str] = {desc.digest}
        stack = [desc]
        while stack:
            d = stack.pop()
            if d.media_type not in INDEX_TYPES | MANIFEST_TYPES and not d.media_type.endswith(
                "json"
            ):
                continue
            try:
                data = json.loads(self.blob_path(d.digest).read_bytes())
            except (FileNotFoundError, ValueError):
                continue
            if not isinstance(data, dict):
                continue
            children: list[Any] = [data.get("config")]
            for key in ("manifests", "layers"):
                value = data.get(key)
                children += value if isinstance(value, list) else []
            for c in children:
                try:
                    child = Descriptor.from_json(c)
                except CacheError:
                    continue  # a damaged blob: what it names cannot be found from here
                if child.digest not in seen:
                    seen.add(child.digest)
                    if child.media_type in INDEX_TYPES | MANIFEST_TYPES:
                        stack.append(child)
        return seen

    def drop_stale_partials(self) -> None:
        """Remove partial blobs of killed downloads: by process id, or after a day."""
        # By process id when the maker ran in this pid namespace; otherwise by age: a live
        # download touches its file at least every few seconds.
        sweep(self.blob_dir, ".partial-")
        cutoff = time.time() - _STALE_PARTIAL_SECONDS
        for partial in self.blob_dir.glob(".partial-*"):
            with contextlib.suppress(FileNotFoundError):
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()

    def _present_size(self, digests: set[str]) -> int:
        total = 0
        for digest in digests:
            with contextlib.suppress(FileNotFoundError, CacheError):
                total += self.blob_path(digest).stat().st_size
        return total

    def list_entries(self) -> list[CacheEntry]:
        """Every named image, with the bytes its blobs (present in the cache) take."""
        return [
            CacheEntry(d.annotations.get(REF_NAME, ""), d, self._present_size(self.reachable(d)))
            for d in self.entries()
        ]

    def drop_unreferenced(self, digests: set[str]) -> None:
        """Remove those of `digests` no named image reaches (blobs a failed import left)."""
        with self._locked():
            entries = self._read_index()
            keep = set().union(*(self.reachable(d) for d in entries)) if entries else set()
            for digest in digests - keep:
                with contextlib.suppress(CacheError, OSError):
                    self.blob_path(digest).unlink(missing_ok=True)

    def remove(self, refs: Sequence[str | Reference]) -> list[str]:
        """Remove images and the blobs no remaining image uses; return the names removed.

        Held under the lock so a concurrent `record` cannot interleave; blobs a concurrent
        pull has written but not yet recorded may be removed and are then fetched again.
        """
        names = {n for r in refs for n in _names(r)}
        with self._locked():
            entries = self._read_index()
            gone = [d for d in entries if d.annotations.get(REF_NAME) in names]
            kept = [d for d in entries if d.annotations.get(REF_NAME) not in names]
            doomed = set().union(*(self.reachable(d) for d in gone)) if gone else set()
            keep = set().union(*(self.reachable(d) for d in kept)) if kept else set()
            self._write_index(kept)
            for digest in doomed - keep:
                with contextlib.suppress(CacheError):
                    self.blob_path(digest).unlink(missing_ok=True)
            self.drop_stale_partials()
        return [d.annotations.get(REF_NAME, "") for d in gone]
