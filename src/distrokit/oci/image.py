"""OCI image data types: media types, descriptors, platforms, image configs, cached images.

These are the typed objects the rest of distrokit sees; raw JSON stays inside `oci/`.
`CachedImage.open_layer` yields the decompressed tar stream of a layer and verifies the
compressed blob's sha256 while it is read, so a corrupt cache entry never goes unnoticed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import platform as _platform
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, BinaryIO, cast

import zstandard
from zlib_ng import gzip_ng, zlib_ng

from distrokit.errors import CacheError

# Media types distrokit reads and writes (Docker v2 schema 2 and OCI).
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

# Annotation naming an image in an OCI layout's index.json (LinuxKit uses the full reference).
CHUNK = 1 << 20
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"

# Python's machine names -> GOARCH, which is what OCI platforms use.
_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "riscv64": "riscv64",
    "s390x": "s390x",
    "ppc64le": "ppc64le",
    "armv7l": "arm",
}


@dataclass(frozen=True, order=True)
class Platform:
    """An OCI platform: os, architecture and optional variant (``linux/arm64/v8``)."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` or a bare ``arch`` (os linux), e.g. ``linux/amd64``."""
        parts = text.strip().split("/")
        if len(parts) == 1 and parts[0]:
            return cls("linux", _GOARCH.get(parts[0], parts[0]))
        if 2 <= len(parts) <= 3 and all(parts):
            return cls(
                parts[0], _GOARCH.get(parts[1], parts[1]), parts[2] if len(parts) == 3 else None
            )
        raise CacheError(f"invalid platform '{text}' (expected os/arch[/variant])")

    def matches(self, other: Platform) -> bool:
        """LinuxKit's rule: os and architecture equal; variant only compared if requested."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return self.variant is None or self.variant == other.variant

    def to_json(self) -> dict[str, str]:
        """The ``platform`` object of an OCI descriptor or config."""
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


def declared_platform(raw: bytes) -> Platform | None:
    """The platform an image config blob states (os and architecture), if it states both."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    os_, arch, variant = data.get("os"), data.get("architecture"), data.get("variant")
    if not (isinstance(os_, str) and isinstance(arch, str) and os_ and arch):
        return None
    return Platform(os_, arch, variant if isinstance(variant, str) and variant else None)


def host_platform() -> Platform:
    """The platform of the machine distrokit runs on (``linux/<GOARCH>``)."""
    machine = _platform.machine().lower()
    return Platform("linux", _GOARCH.get(machine, machine))


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: media type, digest, size, optional platform/annotations."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        """Build from a JSON descriptor, rejecting anything but an object with digest and size.

        Raises CacheError for every malformed shape: JSON from registries and archives is
        untrusted.
        """
        shown = repr(data)
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        if not isinstance(data, Mapping):
            raise CacheError(f"invalid OCI descriptor {shown}: not a JSON object")
        try:
            plat = data.get("platform")
            notes = data.get("annotations") or {}
            size = data["size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ValueError("size is not a non-negative integer")
            if not isinstance(notes, Mapping):
                raise ValueError("annotations is not an object")
            return cls(
                media_type=_text(data.get("mediaType", "")),
                digest=_text(data["digest"]),
                size=size,
                platform=Platform(
                    _text(plat["os"]),
                    _text(plat["architecture"]),
                    _text(plat.get("variant")) or None,
                )
                if isinstance(plat, Mapping)
                else None,
                annotations=MappingProxyType({str(k): _text(v) for k, v in notes.items()}),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CacheError(f"invalid OCI descriptor {shown}: {err}") from err

    @classmethod
    def list_from_json(cls, data: Any, what: str) -> list[Descriptor]:
        """A JSON list of descriptors (``manifests``, ``layers``); CacheError naming `what`."""
        if data is None:
            return []
        if not isinstance(data, list):
            raise CacheError(f"{what} is not a list of descriptors")
        return [cls.from_json(item) for item in data]

    def to_json(self) -> dict[str, Any]:
        """The JSON form, with keys in the order OCI tools write them."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out

    @property
    def hex(self) -> str:
        """The hex part of a ``sha256:`` digest."""
        return digest_hex(self.digest)


def _text(value: Any) -> str:
    """A JSON string field; anything else (number, list, object) is a ValueError."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def digest_hex(digest: str) -> str:
    """Return the hex of a ``sha256:<hex>`` digest; other algorithms are refused."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise CacheError(f"unsupported or malformed digest '{digest}' (sha256 expected)")
    return hexpart


def canonical_json(data: Any) -> bytes:
    """Deterministic JSON for manifests and configs we write (sorted keys, no spaces)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class ImageConfigBlob:
    """The parts of an OCI image config distrokit uses, plus the digest of the raw blob."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    working_dir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    raw_digest: str | None = None

    @classmethod
    def from_bytes(cls, raw: bytes) -> ImageConfigBlob:
        """Parse a config blob; `raw_digest` is the sha256 of exactly these bytes."""
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise CacheError("image config blob is not valid JSON") from err
        if not isinstance(data, dict):
            raise CacheError("image config blob is not a JSON object")
        cfg = data.get("config") or {}
        labels = cfg.get("Labels") or {} if isinstance(cfg, dict) else None
        if not isinstance(cfg, dict) or not isinstance(labels, dict):
            raise CacheError("image config blob: config or config.Labels is not an object")

        def strs(key: str) -> tuple[str, ...] | None:
            value = cfg.get(key)
            if value is not None and not isinstance(value, list):
                raise ValueError(f"config.{key} is not a list")
            return None if value is None else tuple(_text(v) for v in value)

        try:
            return cls(
                entrypoint=strs("Entrypoint"),
                cmd=strs("Cmd"),
                env=strs("Env") or (),
                working_dir=_text(cfg.get("WorkingDir")) or None,
                user=_text(cfg.get("User")) or None,
                labels=MappingProxyType({str(k): _text(v) for k, v in labels.items()}),
                architecture=_text(data.get("architecture", "amd64")),
                os=_text(data.get("os", "linux")),
                variant=_text(data.get("variant")) or None,
                raw_digest="sha256:" + hashlib.sha256(raw).hexdigest(),
            )
        except ValueError as err:
            raise CacheError(f"image config blob: {err}") from err

    def to_json(self, diff_ids: list[str]) -> dict[str, Any]:
        """The OCI config JSON for an image whose uncompressed layers have `diff_ids`."""
        cfg: dict[str, Any] = {}
        if self.entrypoint is not None:
            cfg["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            cfg["Cmd"] = list(self.cmd)
        if self.env:
            cfg["Env"] = list(self.env)
        if self.working_dir:
            cfg["WorkingDir"] = self.working_dir
        if self.user:
            cfg["User"] = self.user
        if self.labels:
            cfg["Labels"] = dict(self.labels)
        out: dict[str, Any] = {
            "architecture": self.architecture,
            "os": self.os,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        if self.variant:
            out["variant"] = self.variant
        return out


class _VerifyingReader(io.RawIOBase):
    """Hashes a compressed blob as it is read and checks the digest at EOF."""

    def __init__(self, raw: IO[bytes], expected: str, on_mismatch: Callable[[str], CacheError]):
        self._raw = raw
        self._hash = hashlib.sha256()
        self._expected = expected
        self._on_mismatch = on_mismatch
        self._checked = False

    def readinto(self, buffer: Any) -> int:
        n = int(self._raw.readinto(buffer) or 0)  # type: ignore[attr-defined]
        if n:
            self._hash.update(memoryview(buffer)[:n])
        else:
            self._check()
        return n

    def readable(self) -> bool:
        return True

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        got = "sha256:" + self._hash.hexdigest()
        if got != self._expected:
            raise self._on_mismatch(got)

    def close(self) -> None:
        self._raw.close()
        super().close()


# What a damaged compressed stream raises while being decoded.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    cast(type[BaseException], zlib_ng.error),
    zstandard.ZstdError,
)


class LayerStream(io.RawIOBase):
    """The decompressed tar stream of a cached layer.

    The compressed blob's sha256 is checked when the stream reaches its end. A tar reader
    usually stops at the end-of-archive blocks, before that: call `finish` once done reading to
    drain the rest and verify.
    """

    def __init__(self, verified: _VerifyingReader, decoded: BinaryIO, what: str) -> None:
        self._verified = verified
        self._decoded = decoded
        self._what = what

    def readinto(self, buffer: Any) -> int:
        try:
            n = int(cast(Any, self._decoded).readinto(buffer))
        except _DECODE_ERRORS as err:
            # Most likely corruption: finish hashing so the error says so if it is.
            self._drain()
            raise CacheError(f"{self._what} cannot be decompressed: {err}") from err
        if not n:
            self._drain()
        return n

    def _drain(self) -> None:
        # The decompressor may stop before the compressed stream's end (padding); read the
        # rest so the digest covers every byte of the blob.
        while self._verified.read(CHUNK):
            pass

    @property
    def what(self) -> str:
        """The layer and image, for messages."""
        return self._what

    def finish(self) -> None:
        """Read whatever is left and verify the blob's digest (raises CacheError)."""
        while self.read(CHUNK):
            pass
        self._drain()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._decoded.close()
        self._verified.close()
        super().close()


def decompressing_reader(media_type: str, stream: IO[bytes] | io.RawIOBase) -> BinaryIO:
    """Wrap `stream` in the decompressor its layer media type calls for."""
    if media_type.endswith("+zstd") or media_type.endswith(".zstd"):
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], stream), read_across_frames=True
        )
        return cast(BinaryIO, reader)
    if media_type.endswith("gzip"):
        # zlib-ng decodes the same stream in well under half the CPU time of zlib; gzip layers
        # (a kernel's module tree) are on the build's critical path.
        buffered = io.BufferedReader(cast(io.RawIOBase, stream), CHUNK)
        return cast(BinaryIO, gzip_ng.GzipNGFile(fileobj=buffered))  # type: ignore[no-untyped-call]
    if media_type.endswith(".tar") or media_type.endswith("diff.tar"):
        return cast(BinaryIO, stream)
    raise CacheError(f"unsupported layer media type '{media_type}'")


@dataclass(frozen=True)
class CachedImage:
    """A single-platform image whose manifest, config and layers are in a cache."""

    reference: str
    digest: str
    manifest: Descriptor
    config: ImageConfigBlob
    config_descriptor: Descriptor
    layers: tuple[Descriptor, ...]
    blob_dir: Path

    def blob_path(self, desc: Descriptor) -> Path:
        """Where the blob of `desc` lives in the cache."""
        return self.blob_dir / desc.hex

    def open_layer(self, desc: Descriptor) -> BinaryIO:
        """The DECOMPRESSED tar stream of layer `desc`; raises CacheError on a bad blob.

        The compressed blob's sha256 is checked when the stream reaches its end; a mismatch
        raises CacheError naming this image and the blob. The stream is a `LayerStream`: call
        its `finish` when a reader (tar) may stop before the end.
        """
        path = self.blob_path(desc)
        try:
            raw = path.open("rb")
        except FileNotFoundError as err:
            raise CacheError(
                f"layer {desc.digest} of image {self.reference} is missing from the cache",
                hint=f"pull it again: distrokit cache pull --pull {self.reference}",
            ) from err

        def mismatch(got: str) -> CacheError:
            # Drop the bad blob so the next pull sees it missing and fetches it again.
            with contextlib.suppress(OSError):  # unless the cache is read-only
                path.unlink(missing_ok=True)
            return CacheError(
                f"layer {desc.digest} of image {self.reference} is corrupt in the cache "
                f"(content hashes to {got})",
                hint=f"pull it again: distrokit cache pull --pull {self.reference}",
            )

        verified = _VerifyingReader(raw, desc.digest, mismatch)
        decoded = decompressing_reader(desc.media_type, verified)
        stream = LayerStream(verified, decoded, f"layer {desc.digest} of image {self.reference}")
        return cast(BinaryIO, stream)
