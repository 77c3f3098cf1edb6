"""``kernel+initrd`` (``NAME-kernel``, ``NAME-initrd.img``, ``NAME-cmdline``) and
``tar-kernel-initrd`` (``NAME-initrd.tar`` holding kernel, initrd.img, cmdline, ucode.cpio).

The initrd is the root tree minus ``boot/kernel``, ``boot/cmdline`` and ``boot/ucode.cpio``
(the ``boot`` directory stays) as a compressed newc cpio; with ``kernel.ucode`` the raw
microcode cpio is prepended, uncompressed, as the early-microcode convention requires.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from distrokit.errors import BuildError
from distrokit.formats.initrd import InitrdWriter
from distrokit.formats.outputs import Outputs
from distrokit.formats.registry import BuildSettings, Format, register
from distrokit.system.assemble import System
from distrokit.tarstream import Entry, Origin, TarWriter, regular


def kernel_initrd_files(name: str) -> tuple[str, ...]:
    """Output file names of ``kernel+initrd``."""
    return (f"{name}-kernel", f"{name}-initrd.img", f"{name}-cmdline")


def tar_kernel_initrd_files(name: str) -> tuple[str, ...]:
    """Output file name of ``tar-kernel-initrd``."""
    return (f"{name}-initrd.tar",)


def write_initrd(system: System, out: BinaryIO, settings: BuildSettings) -> None:
    """The compressed cpio of `system` (without boot files, without microcode)."""
    writer = InitrdWriter(out, settings.compression, settings.segment_cache)
    try:
        for part in system.parts:
            for message in part.messages:
                if settings.progress is not None:
                    settings.progress(message)
            if part.kind == "boot":
                # Only the boot/ directory itself stays in the initrd.
                writer.add(_without_boot_files(part.entries))
            else:
                key = part.key if part.kind == "image" else None
                writer.add(part.entries, key, part.sidecar)
        writer.finish()
    finally:
        writer.close()


def _without_boot_files(
    entries: Callable[[], Iterable[Entry]],
) -> Callable[[], Iterator[Entry]]:
    return lambda: (e for e in entries() if not e.info.name.startswith("boot/"))


def _kernel(system: System) -> tuple[str, str]:
    if system.kernel is None:
        raise BuildError("this format needs a kernel: the configuration has no kernel.image")
    return str(system.kernel.binary.path), system.cmdline


def _copy_to(path: str, out: BinaryIO) -> None:
    with Path(path).open("rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)


def build_kernel_initrd(system: System, outputs: Outputs, settings: BuildSettings) -> None:
    """Write ``NAME-kernel``, ``NAME-initrd.img`` and ``NAME-cmdline``."""
    kernel, cmdline = _kernel(system)
    kernel_name, initrd_name, cmdline_name = kernel_initrd_files(outputs.name)
    initrd = outputs.open(initrd_name)
    assert system.kernel is not None
    if system.kernel.ucode is not None:
        _copy_to(str(system.kernel.ucode.path), initrd)
    write_initrd(system, initrd, settings)
    _copy_to(kernel, outputs.open(kernel_name))
    outputs.open(cmdline_name).write(cmdline.encode())


def build_tar_kernel_initrd(system: System, outputs: Outputs, settings: BuildSettings) -> None:
    """Write ``NAME-initrd.tar``: kernel, initrd.img, cmdline (and ucode.cpio), mode 0644."""
    kernel, cmdline = _kernel(system)
    assert system.kernel is not None
    scratch, _ = outputs.temp(tar_kernel_initrd_files(outputs.name)[0] + ".initrd")
    write_initrd(system, scratch, settings)
    size = scratch.tell()
    scratch.seek(0)
    origin = Origin("", "")
    out = outputs.open(tar_kernel_initrd_files(outputs.name)[0])
    with TarWriter(out) as tar, Path(kernel).open("rb") as kernel_stream:
        entry = regular("kernel", b"", origin, mode=0o644)
        entry.info.size = system.kernel.binary.size
        entry.info.pax_headers = {}
        tar.write(Entry(entry.info, kernel_stream))
        entry = regular("initrd.img", b"", origin, mode=0o644)
        entry.info.size = size
        entry.info.pax_headers = {}
        tar.write(Entry(entry.info, scratch))
        entry = regular("cmdline", cmdline.encode(), origin, mode=0o644)
        entry.info.pax_headers = {}
        tar.write(entry)
        ucode = system.kernel.ucode
        if ucode is not None:
            with ucode.path.open("rb") as ucode_stream:
                entry = regular("ucode.cpio", b"", origin, mode=0o644)
                entry.info.size = ucode.size
                entry.info.pax_headers = {}
                tar.write(Entry(entry.info, ucode_stream))


register(
    Format(
        name="kernel+initrd",
        files=kernel_initrd_files,
        build=build_kernel_initrd,
        help="kernel, compressed cpio initrd and cmdline (NAME-kernel, NAME-initrd.img,"
        " NAME-cmdline)",
    )
)
register(
    Format(
        name="tar-kernel-initrd",
        files=tar_kernel_initrd_files,
        build=build_tar_kernel_initrd,
        help="tar of kernel, initrd.img and cmdline (NAME-initrd.tar)",
    )
)
