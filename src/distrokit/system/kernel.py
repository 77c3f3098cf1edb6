"""The ``kernel:`` section: find the kernel binary, microcode and module tar in the kernel image.

The binary and the microcode cpio are copied to files (they are written to outputs on their
own, e.g. ``NAME-kernel``); ``kernel.tar`` is streamed entry by entry, its names kept verbatim
(a leading ``./`` included), as LinuxKit does, except that absolute names and names with ``..``
are refused (LinuxKit copies them). Every other file of the kernel image is ignored.
"""

from __future__ import annotations

import json
import lzma
import shutil
import struct
import tarfile
import zlib
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import zstandard

from distrokit.errors import BuildError
from distrokit.oci.flatten import READ_BUFSIZE, clean_name, flatten
from distrokit.oci.image import CachedImage
from distrokit.tarstream import Entry, Origin, VerbatimInfo, set_origin, verbatim_name

DEFAULT_BINARY = "kernel"
DEFAULT_TAR = "kernel.tar"
# Names LinuxKit appends after the entries of every image, the kernel image included.
APPENDED_NAMES = frozenset(
    {"dev", "dev/pts", "dev/shm", "etc", "etc/hosts", "etc/resolv.conf", "proc", "sys"}
)


@dataclass(frozen=True)
class KernelFile:
    """A file copied out of the kernel image, with the header fields LinuxKit keeps."""

    path: Path
    mode: int
    mtime: int
    size: int


@dataclass(frozen=True)
class KernelParts:
    """What the build takes from the kernel image; `order` is where the kernel binary, the
    module tar and the microcode stand in the image (LinuxKit writes them in that order)."""

    binary: KernelFile
    ucode: KernelFile | None
    order: tuple[str, ...] = ("kernel", "tar", "ucode")


def tar_name(setting: str | None) -> str | None:
    """The module tar's name, or None for ``tar: none`` / ``tar: ""``."""
    if setting is None:
        return DEFAULT_TAR
    return None if setting in ("", "none") else clean_name(setting)


def _image_entries(image: CachedImage) -> Generator[Entry, None, None]:
    return flatten(len(image.layers), lambda i: image.open_layer(image.layers[i]))


def _copy(entry: Entry, dest: Path) -> KernelFile:
    assert entry.data is not None
    with dest.open("wb") as out:
        shutil.copyfileobj(entry.data, out, 1 << 20)
    info = entry.info
    return KernelFile(dest, info.mode, int(info.mtime), info.size)


def extract_files(
    image: CachedImage,
    binary: str | None,
    ucode: str | None,
    workdir: Path,
    tar: str | None = DEFAULT_TAR,
) -> KernelParts:
    """Copy the kernel binary (and microcode, if asked for) out of `image` into `workdir`.

    The whole image is read, as LinuxKit reads it: a second entry with the binary's name
    (LinuxKit also sees the directories it appends after every image) is an error.
    """
    want_binary = clean_name(binary or DEFAULT_BINARY)
    want_ucode = clean_name(ucode) if ucode else None
    found_binary: KernelFile | None = None
    found_ucode: KernelFile | None = None
    order: list[str] = []
    seen_binary = 0
    with closing(_image_entries(image)) as entries:
        for entry in entries:
            name = entry.info.name
            if name == want_binary:
                seen_binary += 1
                if entry.info.isreg() and found_binary is None:
                    found_binary = _copy(entry, workdir / "kernel")
                    order.append("kernel")
            elif name == tar and "tar" not in order:
                order.append("tar")
            elif entry.info.isreg() and name == want_ucode and found_ucode is None:
                found_ucode = _copy(entry, workdir / "ucode.cpio")
                order.append("ucode")
    if want_binary in APPENDED_NAMES:
        seen_binary += 1
    if seen_binary > 1:
        raise BuildError(
            f"found more than one possible kernel image in {image.reference}",
            hint=f"the image has more than one entry named /{want_binary} (kernel.binary)",
        )
    if found_binary is None:
        raise BuildError(
            f"did not find kernel in kernel image {image.reference}",
            hint=f"the image has no file /{want_binary} (kernel.binary)",
        )
    if want_ucode is not None and found_ucode is None:
        raise BuildError(f"did not find ucode {want_ucode} in kernel image {image.reference}")
    return KernelParts(found_binary, found_ucode, tuple(order))


def module_entries(image: CachedImage, tar: str, origin: Origin) -> Iterator[Entry]:
    """The entries of the module tar inside the kernel image, names verbatim.

    An empty file counts as an empty archive, as Go's tar reader sees it.
    """
    with closing(_image_entries(image)) as entries:
        for entry in entries:
            if entry.info.name != tar or not entry.info.isreg():
                continue
            if entry.info.size:
                assert entry.data is not None
                yield from _inner_entries(entry.data, origin, f"{tar} in {image.reference}")
            return
    raise BuildError(f"did not find kernel tar {tar} in kernel image {image.reference}")


def _check_member(member: tarfile.TarInfo, what: str) -> None:
    """Refuse names kept verbatim that would leave the root: absolute, or with ``..``.

    LinuxKit copies them as they are; an unpacked initrd or tar then writes outside its root.
    """
    for name in [member.name] + ([member.linkname] if member.islnk() else []):
        if name.startswith("/") or ".." in name.split("/") or "\0" in name:
            raise BuildError(
                f"kernel tar {what} has an unsafe member name {name!r} (absolute or with '..')"
            )


def _inner_entries(data: IO[bytes], origin: Origin, what: str) -> Iterator[Entry]:
    try:
        with tarfile.open(
            fileobj=data, mode="r|", bufsize=READ_BUFSIZE, tarinfo=VerbatimInfo
        ) as inner:
            for member in inner:
                member.name = verbatim_name(member)
                _check_member(member, what)
                set_origin(member, origin)
                if not member.isreg():
                    member.size = 0
                yield Entry(member, inner.extractfile(member) if member.isreg() else None)
    except tarfile.TarError as err:
        raise BuildError(f"kernel tar {what} is not a valid tar archive: {err}") from err


def save_parts(parts: KernelParts, dest: Path) -> None:
    """Store extracted parts in the new directory `dest` with their header fields."""
    dest.mkdir(parents=True)
    meta = {}
    for label, part in (("kernel", parts.binary), ("ucode.cpio", parts.ucode)):
        if part is not None:
            shutil.copyfile(part.path, dest / label)
            meta[label] = [part.mode, part.mtime, part.size]
    (dest / "meta.json").write_text(json.dumps({"files": meta, "order": list(parts.order)}))


def load_parts(src: Path) -> KernelParts | None:
    """Parts saved by `save_parts`, or None if absent or incomplete."""
    try:
        saved = json.loads((src / "meta.json").read_text())
        files = {
            label: KernelFile(src / label, int(m[0]), int(m[1]), int(m[2]))
            for label, m in saved["files"].items()
        }
        if any(f.path.stat().st_size != f.size for f in files.values()):
            return None
        order = tuple(str(x) for x in saved["order"])
        return KernelParts(files["kernel"], files.get("ucode.cpio"), order)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


_GZIP = b"\x1f\x8b"
_XZ = b"\xfd7zXZ\x00"
_ZSTD = b"\x28\xb5\x2f\xfd"
# bzImage header fields (Documentation/arch/x86/boot.rst).
_SETUP_SECTS, _BOOT_FLAG, _HEADER, _VERSION = 0x1F1, 0x1FE, 0x202, 0x206
_PAYLOAD_OFFSET, _PAYLOAD_LENGTH, _MIN_LENGTH = 0x248, 0x24C, 0x250


def _decode(data: bytes, what: str) -> bytes:
    """One compressed stream at the start of `data` (trailing bytes ignored)."""
    try:
        if data.startswith(_GZIP):
            out = b""
            while data.startswith(_GZIP):  # members of one stream, as gunzip reads them
                d = zlib.decompressobj(wbits=31)
                out += d.decompress(data) + d.flush()
                data = d.unused_data
            return out
        if data.startswith(_XZ):
            return lzma.LZMADecompressor().decompress(data)
        if data.startswith(_ZSTD):
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except (zlib.error, lzma.LZMAError, zstandard.ZstdError) as err:
        raise BuildError(f"cannot decompress {what}: {err}") from err
    raise BuildError(f"unsupported compression of {what}")


def decompressed_kernel(data: bytes) -> bytes:
    """The kernel inside a compressed image, as ``--decompress-kernel`` stores it.

    A gzip'd image (arm64 ``Image.gz``) is gunzipped; a bzImage's payload (boot protocol
    2.08 or later) is decompressed: gzip as LinuxKit does, xz and zstd too.
    """
    if data.startswith(_GZIP):
        return _decode(data, "the kernel")
    is_bzimage = (
        len(data) > _MIN_LENGTH
        and struct.unpack_from("<H", data, _BOOT_FLAG)[0] == 0xAA55
        and data[_HEADER : _HEADER + 4] == b"HdrS"
    )
    if not is_bzimage:
        raise BuildError("no compressed kernel or no supported format found")
    version = struct.unpack_from("<H", data, _VERSION)[0]
    if version < 0x0208:
        raise BuildError(f"unsupported bzImage version: {version >> 8}.{version & 0xFF}")
    setup = data[_SETUP_SECTS] or 4  # 0 means 4 in the boot protocol
    offset, length = struct.unpack_from("<II", data, _PAYLOAD_OFFSET)
    offset += (setup + 1) * 512
    if len(data) < offset + length:
        raise BuildError("compressed bzImage payload exceeds size of image")
    payload = data[offset : offset + length]
    if not payload.startswith((_GZIP, _XZ, _ZSTD)):
        raise BuildError(f"unsupported bzImage payload format at offset {offset}")
    return _decode(payload, f"the bzImage payload at offset {offset}")


def decompress_file(binary: KernelFile, workdir: Path) -> KernelFile:
    """`binary` decompressed into `workdir` (its mode and mtime kept)."""
    out = decompressed_kernel(binary.path.read_bytes())
    dest = workdir / "kernel.decompressed"
    dest.write_bytes(out)
    return KernelFile(dest, binary.mode, binary.mtime, len(out))
