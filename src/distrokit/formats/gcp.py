"""The gcp format: a raw-bios disk named ``disk.raw`` in a gzip'd tar, as Compute Engine
imports it.

The tar header (mtime, owner, mode) and the gzip header (no file name, mtime) are fixed, so the
archive depends only on the disk. Compute Engine wants the raw disk size to be a whole number of
GiB; the disk is streamed into the archive, never held in memory.
"""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Mapping
from pathlib import Path

from distrokit.formats import raw as raw_disk
from distrokit.formats.bootable import bootable
from distrokit.formats.disk import BootFiles, atomic_output, round_up
from distrokit.formats.registry import BuildSettings
from distrokit.host import Host

GIB_IN_MIB = 1024


def write_gcp(raw: Path, out: Path, epoch: int) -> None:
    """Pack the raw disk `raw` as ``disk.raw`` into the tar.gz `out` (gzip -9)."""
    info = tarfile.TarInfo("disk.raw")
    info.size = raw.stat().st_size
    info.mtime = epoch
    info.mode = 0o644
    info.uname = info.gname = "root"
    with (
        atomic_output(out) as tmp,
        tmp.open("wb") as f,
        gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=epoch) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
        raw.open("rb") as disk,
    ):
        tar.addfile(info, disk)


def _gcp(
    host: Host, boot: BootFiles, out: Mapping[str, Path], scratch: Path, s: BuildSettings
) -> None:
    disk = scratch / "disk.raw"
    # Compute Engine wants a whole number of GiB
    raw_disk.write_raw_bios(host, boot, disk, round_up(s.size_mb, GIB_IN_MIB))
    write_gcp(disk, out[".img.tar.gz"], boot.epoch)


bootable(
    "gcp",
    (".img.tar.gz",),
    _gcp,
    "raw-bios disk.raw of --size (whole GiB) in a tar.gz (NAME.img.tar.gz)",
    tools=raw_disk.BIOS_TOOLS,
    files=raw_disk.BIOS_FILES,
)
