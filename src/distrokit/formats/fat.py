"""FAT file systems (ESPs, syslinux boot partitions, El Torito EFI images) without mounting.

mkfs.vfat with ``--invariant`` and a volume id derived from the inputs makes the empty file
system; mtools adds directories and files one at a time in sorted order (a recursive copy
would follow readdir order, which differs between hosts) and, given ``SOURCE_DATE_EPOCH``,
stamps every entry with that time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from distrokit.formats.disk import MIB, SECTOR, round_up
from distrokit.host import Host

TOOLS = ("mkfs.vfat", "mcopy", "mmd")
# Room for FAT tables, directories and cluster slack on top of the files themselves.
_OVERHEAD = 2 * MIB


def fat_size(files: Mapping[str, Path | bytes], extra: int = 0) -> int:
    """Bytes a FAT image needs to hold `files` (plus `extra`), rounded to whole MiB."""
    total = sum(len(v) if isinstance(v, bytes) else v.stat().st_size for v in files.values())
    return round_up(int(total * 1.03) + _OVERHEAD + extra, MIB)


def _mtools_env(epoch: int) -> dict[str, str]:
    # MTOOLS_SKIP_CHECK: images made by mkfs.vfat on a plain file have no real geometry.
    return {"SOURCE_DATE_EPOCH": str(epoch), "MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}


def make_fat(
    host: Host,
    image: Path,
    files: Mapping[str, Path | bytes],
    *,
    size: int,
    label: str,
    volume_id: int,
    epoch: int,
    scratch: Path,
) -> None:
    """Create `image` (`size` bytes) as a FAT file system holding `files`, a map from the path
    inside the file system to a host file or to bytes. `scratch` holds temporary files."""
    with image.open("wb") as f:
        f.truncate(round_up(size, SECTOR))
    label = label.upper()[:11]
    # The FAT type follows from the size alone (deterministic); OVMF reads FAT12/16/32.
    host.run(
        ["mkfs.vfat", "-n", label, "-i", f"{volume_id:08X}", "--invariant", image],
        env={"SOURCE_DATE_EPOCH": str(epoch)},
        capture=True,
    )
    env = _mtools_env(epoch)
    dirs = sorted({str(p) for f in files for p in PurePosixPath(f).parents if str(p) != "."})
    if dirs:
        host.run(["mmd", "-i", image, *(f"::/{d}" for d in dirs)], env=env)
    for index, (dest, source) in enumerate(sorted(files.items())):
        if isinstance(source, bytes):
            path = scratch / f"fat-{index}"
            path.write_bytes(source)
            source = path
        host.run(["mcopy", "-o", "-i", image, os.fspath(source), f"::/{dest}"], env=env)
