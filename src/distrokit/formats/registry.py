"""The table of output formats: name, output files, streamable?, host tools, arches, builder.

The CLI's ``--format`` choices and help text come from this table, and every requested format
is checked (known, tools present, arch supported, streaming rules) before any work starts.
Each format is declared in the module that writes it (``register(Format(...))``, or
`distrokit.formats.bootable.bootable` for boot media); the table is filled by importing every
module of this package, so adding a format is adding one module, and there is no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from distrokit.errors import BuildError, UsageError
from distrokit.formats.initrd import Compression, SegmentCache
from distrokit.formats.outputs import Outputs
from distrokit.host import Host
from distrokit.system.assemble import System

ALL_ARCHES = ("amd64", "arm64", "riscv64")


@dataclass(frozen=True)
class BuildSettings:
    """Settings shared by every format of one build."""

    compression: Compression = field(default_factory=Compression)
    segment_cache: SegmentCache | None = None
    progress: Callable[[str], None] | None = None
    host: Host | None = None
    arch: str = "amd64"
    size_mb: int = 1024
    workdir: Path | None = None


@dataclass(frozen=True)
class Format:
    """One output format."""

    name: str
    files: Callable[[str], tuple[str, ...]]
    build: Callable[[System, Outputs, BuildSettings], None]
    help: str
    streamable: bool = False
    tools: tuple[str, ...] = ()
    # (path, Debian package) of files the format copies from the host, e.g. boot loaders
    host_files: tuple[tuple[str, str], ...] = ()
    arches: tuple[str, ...] = ALL_ARCHES


_FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add a format to the table (module import time)."""
    _FORMATS[fmt.name] = fmt
    return fmt


def _load() -> None:
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{module.name}")


def formats() -> dict[str, Format]:
    """Every registered format, by name, sorted by name."""
    _load()
    return {name: _FORMATS[name] for name in sorted(_FORMATS)}


def get(name: str) -> Format:
    """The format called `name`; UsageError naming the known ones otherwise."""
    table = formats()
    if name not in table:
        raise UsageError(f"unknown format type {name}", hint="known formats: " + " ".join(table))
    return table[name]


def check_request(
    names: Sequence[str], *, single_output: str | None, arch: str, host: Host
) -> list[Format]:
    """Validate a request before any work (LinuxKit's messages) and return the formats."""
    chosen = [get(n) for n in names]
    for fmt in chosen:
        if fmt.streamable and len(chosen) > 1:
            raise UsageError(f"format type {fmt.name} must be the only format specified")
        if single_output is not None and not fmt.streamable:
            raise UsageError(
                f"format {fmt.name} cannot be streamed", hint="use --dir/--name instead of -o"
            )
        if arch not in fmt.arches:
            raise UsageError(f"format {fmt.name} is not supported for architecture {arch}")
        host.check_tools(fmt.tools)
        check_host_files(fmt)
    return chosen


def check_host_files(fmt: Format) -> None:
    """Fail before any work when a file the format copies from the host (a boot loader from a
    Debian package) is missing, naming the package."""
    for path, package in fmt.host_files:
        if not Path(path).is_file():
            raise BuildError(
                f"required file {path} is missing",
                hint=f"install it with: apt-get install {package}",
            )


def help_text() -> str:
    """One line per format for ``--help``."""
    return "\n".join(f"  {f.name:<20} {f.help}" for f in formats().values())
