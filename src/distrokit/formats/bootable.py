"""How a bootable format is declared, and the adapter from an assembled system to its writer.

The family modules (raw.py, convert.py, gcp.py, iso.py, squashfs.py, erofs.py) each declare
their formats with `bootable(...)`: name, output suffixes, host tools and files, and a writer.
A writer takes plain files (`BootFiles`: kernel, command line, and the RAM initrd or the root
file system tar) and writes each output straight into its place among the build's atomic
outputs, so nothing is copied after it is written. This module makes those inputs from the
assembled `System` in the build's scratch space: the RAM initrd only for formats that boot it,
the root file system tar only for formats whose root lives on the medium.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from distrokit.env import source_date_epoch
from distrokit.errors import BuildError
from distrokit.formats.disk import BootFiles
from distrokit.formats.kernel_initrd import write_initrd
from distrokit.formats.outputs import Outputs
from distrokit.formats.registry import (
    BuildSettings,
    Format,
    check_host_files,
    formats,
    register,
)
from distrokit.host import Host
from distrokit.system.assemble import System, all_entries
from distrokit.tarstream import TarWriter

# A writer gets the host, the inputs, {output suffix: path to write}, a scratch directory for
# intermediate files, and the build settings.
Writer = Callable[[Host, BootFiles, Mapping[str, Path], Path, BuildSettings], None]


def one_file(write: Callable[[Host, BootFiles, Path], None], suffix: str) -> Writer:
    """The writer of a format with one output, from a ``write(host, boot, out)`` function."""

    def writer(
        host: Host, boot: BootFiles, out: Mapping[str, Path], scratch: Path, s: BuildSettings
    ) -> None:
        write(host, boot, out[suffix])

    return writer


@dataclass(frozen=True)
class _Bootable:
    format: Format
    suffixes: tuple[str, ...]
    writer: Writer
    root_on_medium: bool


_BOOTABLE: dict[str, _Bootable] = {}


def bootable(
    name: str,
    suffixes: tuple[str, ...],
    writer: Writer,
    help: str,
    *,
    tools: tuple[str, ...],
    files: Mapping[Path, str],
    root_on_medium: bool = False,
) -> Format:
    """Declare and register a bootable format (amd64). `files` are the host files it copies,
    each with its Debian package; `root_on_medium` formats get the root file system tar
    instead of the RAM initrd."""

    def names(prefix: str) -> tuple[str, ...]:
        return tuple(prefix + suffix for suffix in suffixes)

    def build(system: System, outputs: Outputs, settings: BuildSettings) -> None:
        host = settings.host or Host()
        targets = {suffix: outputs.reserve(outputs.name + suffix) for suffix in suffixes}
        with _scratch(settings, outputs) as scratch:
            boot = _boot_files(system, settings, scratch, root_on_medium=root_on_medium)
            writer(host, boot, targets, scratch, settings)

    fmt = register(
        Format(
            name=name,
            files=names,
            build=build,
            help=help,
            tools=tools,
            host_files=tuple(sorted((str(path), pkg) for path, pkg in files.items())),
            arches=("amd64",),
        )
    )
    _BOOTABLE[name] = _Bootable(fmt, suffixes, writer, root_on_medium)
    return fmt


def bootable_formats() -> dict[str, Format]:
    """Every bootable format, by name (the registry's other formats need no boot loader)."""
    return {name: fmt for name, fmt in formats().items() if name in _BOOTABLE}


@contextmanager
def _scratch(settings: BuildSettings, outputs: Outputs) -> Iterator[Path]:
    base = settings.workdir or outputs.directory
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".distrokit-format.", dir=base) as name:
        yield Path(name)


def _boot_files(
    system: System, settings: BuildSettings, scratch: Path, *, root_on_medium: bool
) -> BootFiles:
    """Kernel, cmdline and the RAM initrd, or the root file system tar, of `system`."""
    if system.kernel is None:
        raise BuildError("this format needs a kernel: the configuration has no kernel.image")
    initrd = rootfs = None
    if root_on_medium:
        rootfs = scratch / "rootfs.tar"
        parts = [p for p in system.parts if p.kind != "boot"]
        with rootfs.open("wb") as out, TarWriter(out) as tar:
            tar.write_all(all_entries(parts, None))
    else:
        initrd = scratch / "initrd.img"
        with initrd.open("wb") as out:
            # the progress lines were printed by the kernel+initrd step already, or need not be
            write_initrd(system, out, replace(settings, progress=None))
    return BootFiles(
        kernel=Path(system.kernel.binary.path),
        initrd=initrd,
        cmdline=system.cmdline,
        rootfs=rootfs,
        epoch=source_date_epoch(),
    )


def write_from_files(
    name: str, host: Host, boot: BootFiles, directory: Path, settings: BuildSettings
) -> dict[str, Path]:
    """Write bootable format `name` from plain files as ``directory/out<suffix>``; returns
    {output suffix: file}. The registered build function does the same from a system."""
    bootable_formats()
    spec = _BOOTABLE[name]
    check_host_files(spec.format)
    host.check_tools(spec.format.tools)
    if spec.root_on_medium:
        boot = replace(boot, initrd=None)
    targets = {suffix: directory / f"out{suffix}" for suffix in spec.suffixes}
    with tempfile.TemporaryDirectory(prefix=".distrokit-format.", dir=directory) as scratch:
        spec.writer(host, boot, targets, Path(scratch), settings)
    return targets
