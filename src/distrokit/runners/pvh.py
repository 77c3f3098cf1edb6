"""The uncompressed ELF kernel inside an x86 bzImage, for booting via PVH.

Under TCG most of a bzImage boot is the guest decompressing itself (xz for Debian) and the
real-mode setup; QEMU can instead enter the ELF ``vmlinux`` at its PVH entry point. We find the
compressed payload from the boot-protocol header, stream it through the matching decompressor
(xz, gzip or zstd: `runners.payloads`) into the cache, and keep it only if it is an ELF with
the PVH note (``XEN_ELFNOTE_PHYS32_ENTRY``, type 18, name "Xen"). Results are cached by the
bzImage's sha256, including the answer "this kernel has no PVH entry".

The ELF note scan is hand-written (program headers and notes only, ~30 lines): it reads a few
kilobytes of a ~60 MB file and needs no untyped dependency.
"""

from __future__ import annotations

import logging
import os
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO

from distrokit.errors import RunError
from distrokit.formats.disk import file_sha256
from distrokit.runners import payloads

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18


def is_bzimage(path: Path) -> bool:
    """Whether `path` starts with the x86 boot-protocol header."""
    with path.open("rb") as f:
        return f.read(0x206)[0x202:0x206] == b"HdrS"


def payload_location(bzimage: Path) -> tuple[int, int]:
    """Offset and length of the compressed kernel inside `bzimage` (boot protocol >= 2.08)."""
    with bzimage.open("rb") as f:
        header = f.read(0x260)
    if len(header) < 0x260 or header[0x202:0x206] != b"HdrS":
        raise RunError(f"{bzimage} is not an x86 bzImage (no HdrS boot header)")
    (version,) = struct.unpack_from("<H", header, 0x206)
    if version < 0x208:
        raise RunError(f"{bzimage}: boot protocol {version:#x} has no payload fields")
    setup_sects = header[0x1F1] or 4
    offset, length = struct.unpack_from("<II", header, 0x248)
    return (setup_sects + 1) * 512 + offset, length


def extract_vmlinux(bzimage: Path, out: BinaryIO) -> str:
    """Stream the decompressed payload of `bzimage` into `out`; returns the compression name."""
    start, length = payload_location(bzimage)
    with bzimage.open("rb") as f:
        f.seek(start)
        magic = f.read(payloads.MAGIC_LEN)
        found = payloads.identify(magic)
        if found is None:
            raise RunError(f"{bzimage}: unsupported kernel compression (magic {magic.hex()})")
        name, factory = found
        f.seek(start)
        decompressor = factory()
        remaining = length
        try:
            while remaining > 0 and not decompressor.eof:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                out.write(decompressor.decompress(chunk))
        except payloads.ERRORS as err:
            raise RunError(f"{bzimage}: corrupt {name} kernel payload: {err}") from err
    return name


def _notes(data: bytes) -> list[tuple[str, int, bytes]]:
    found = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        pos += 12
        name = data[pos : pos + namesz].rstrip(b"\0").decode(errors="replace")
        pos += (namesz + 3) & ~3
        desc = data[pos : pos + descsz]
        pos += (descsz + 3) & ~3
        found.append((name, ntype, desc))
    return found


def pvh_entry(elf: Path) -> int | None:
    """The PVH (32-bit) entry address of an ELF64 kernel, or None when it has no PVH note."""
    with elf.open("rb") as f:
        ident = f.read(64)
        if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
            return None
        (phoff,) = struct.unpack_from("<Q", ident, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", ident, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        for i in range(phnum):
            p_type, _, p_offset = struct.unpack_from("<IIQ", table, i * phentsize)
            (p_filesz,) = struct.unpack_from("<Q", table, i * phentsize + 0x20)
            if p_type != PT_NOTE:
                continue
            f.seek(p_offset)
            for name, ntype, desc in _notes(f.read(p_filesz)):
                if name == "Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY and len(desc) >= 4:
                    return int(struct.unpack_from("<I", desc)[0])
    return None


def pvh_kernel(kernel: Path, cache_dir: Path) -> Path | None:
    """An ELF kernel with a PVH entry for `kernel`, extracted once and cached; None if the
    kernel cannot boot via PVH. An ELF `kernel` with the note is returned as is."""
    if pvh_entry(kernel) is not None:
        return kernel
    if not is_bzimage(kernel):
        return None
    digest = file_sha256(kernel).hex()
    elf = cache_dir / f"{digest}.vmlinux"
    negative = cache_dir / f"{digest}.no-pvh"
    if elf.is_file():
        return elf
    if negative.is_file():
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".vmlinux-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            compression = extract_vmlinux(kernel, out)
        if pvh_entry(tmp) is None:
            log.debug("%s: ELF payload (%s) has no PVH note", kernel, compression)
            negative.touch()
            return None
        Path(tmp).replace(elf)
        log.debug("%s: extracted %s PVH kernel to %s", kernel, compression, elf)
        return elf
    finally:
        tmp.unlink(missing_ok=True)
