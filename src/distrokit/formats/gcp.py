"""The gcp format: a raw disk named ``disk.raw`` in a gzip'd tar, as Compute Engine imports it.

The tar header (mtime, owner, mode) and the gzip header (no file name, mtime) are fixed, so the
archive depends only on the disk. Compute Engine wants the raw disk size to be a whole number of
GiB; the disk is streamed into the archive, never held in memory.
"""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

from distrokit.formats.disk import atomic_output


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
