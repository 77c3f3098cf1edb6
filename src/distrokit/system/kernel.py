"""The ``kernel:`` section: find the kernel binary, microcode and module tar in the kernel image.

The binary and the microcode cpio are copied to files (they are written to outputs on their
own, e.g. ``NAME-kernel``); ``kernel.tar`` is streamed entry by entry, its names kept verbatim
(a leading ``./`` included), as LinuxKit does, except that absolute names and names with ``..``
are refused (LinuxKit copies them). Every other file of the kernel image is ignored.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from distrokit.errors import BuildError
from distrokit.oci.flatten import READ_BUFSIZE, clean_name, flatten
from distrokit.oci.image import CachedImage
from distrokit.tarstream import Entry, Origin, set_origin

DEFAULT_BINARY = "kernel"
DEFAULT_TAR = "kernel.tar"


@dataclass(frozen=True)
class KernelFile:
    """A file copied out of the kernel image, with the header fields LinuxKit keeps."""

    path: Path
    mode: int
    mtime: int
    size: int


@dataclass(frozen=True)
class KernelParts:
    """What the build takes from the kernel image."""

    binary: KernelFile
    ucode: KernelFile | None


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
    image: CachedImage, binary: str | None, ucode: str | None, workdir: Path
) -> KernelParts:
    """Copy the kernel binary (and microcode, if asked for) out of `image` into `workdir`.

    Stops reading as soon as both are found.
    """
    want_binary = clean_name(binary or DEFAULT_BINARY)
    want_ucode = clean_name(ucode) if ucode else None
    found_binary: KernelFile | None = None
    found_ucode: KernelFile | None = None
    with closing(_image_entries(image)) as entries:
        for entry in entries:
            name = entry.info.name
            if entry.info.isreg() and name == want_binary:
                found_binary = _copy(entry, workdir / "kernel")
            elif entry.info.isreg() and name == want_ucode:
                found_ucode = _copy(entry, workdir / "ucode.cpio")
            if found_binary is not None and (want_ucode is None or found_ucode is not None):
                break
    if found_binary is None:
        raise BuildError(
            f"did not find kernel in kernel image {image.reference}",
            hint=f"the image has no file /{want_binary} (kernel.binary)",
        )
    if want_ucode is not None and found_ucode is None:
        raise BuildError(f"did not find ucode {want_ucode} in kernel image {image.reference}")
    return KernelParts(found_binary, found_ucode)


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
        with tarfile.open(fileobj=data, mode="r|", bufsize=READ_BUFSIZE) as inner:
            for member in inner:
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
    (dest / "meta.json").write_text(json.dumps(meta))


def load_parts(src: Path) -> KernelParts | None:
    """Parts saved by `save_parts`, or None if absent or incomplete."""
    try:
        meta = json.loads((src / "meta.json").read_text())
        files = {
            label: KernelFile(src / label, int(m[0]), int(m[1]), int(m[2]))
            for label, m in meta.items()
        }
        if any(f.path.stat().st_size != f.size for f in files.values()):
            return None
        return KernelParts(files["kernel"], files.get("ucode.cpio"))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
