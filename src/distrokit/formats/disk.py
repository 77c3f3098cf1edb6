"""What every bootable format shares: its inputs, ids derived from them, sizes and atomic output.

Reproducibility starts here: timestamps come from ``SOURCE_DATE_EPOCH`` (LinuxKit's
2017-04-18T16:30:00Z by default) and every UUID, volume id and serial is derived from a sha256
of the inputs, so two builds of the same system give the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from distrokit.env import LINUXKIT_EPOCH
from distrokit.errors import UsageError
from distrokit.leftovers import sweep, temp_prefix, untagged

DEFAULT_EPOCH = LINUXKIT_EPOCH
SECTOR = 512
MIB = 1 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class BootFiles:
    """A system as the boot formats see it: kernel, command line, and its root file system,
    either as the RAM `initrd` or as the `rootfs` tar (without ``boot/``) for the formats whose
    root lives on the medium (ISO, squashfs, erofs). Each format gets the one it reads."""

    kernel: Path
    cmdline: str
    initrd: Path | None = None
    rootfs: Path | None = None
    epoch: int = DEFAULT_EPOCH

    def ram_initrd(self) -> Path:
        """The RAM initrd, for formats that boot it."""
        if self.initrd is None:
            raise ValueError("this format boots the RAM initrd, which was not made")
        return self.initrd

    def root_tar(self) -> Path:
        """The root file system tar, for formats whose root lives on the medium."""
        if self.rootfs is None:
            raise ValueError("this format puts the root file system on the medium: no tar")
        return self.rootfs

    def seed(self) -> bytes:
        """sha256 over every input: the root of all ids derived for this system."""
        digest = hashlib.sha256()
        for path in (self.kernel, self.initrd, self.rootfs):
            if path is not None:
                digest.update(file_sha256(path))
        digest.update(self.cmdline.encode())
        digest.update(str(self.epoch).encode())
        return digest.digest()


def file_sha256(path: Path) -> bytes:
    """sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.digest()


def derive_bytes(seed: bytes, purpose: str, length: int) -> bytes:
    """`length` bytes derived from `seed` for one `purpose` (a disk GUID, a volume id...)."""
    return hashlib.sha256(seed + b"\0" + purpose.encode()).digest()[:length]


def derive_uuid(seed: bytes, purpose: str) -> uuid.UUID:
    """A version-4-shaped UUID derived from `seed`: stable across builds, unique per purpose."""
    raw = bytearray(derive_bytes(seed, purpose, 16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(raw))


def derive_u32(seed: bytes, purpose: str) -> int:
    """A 32-bit serial (FAT volume id, MBR signature) derived from `seed`."""
    return int.from_bytes(derive_bytes(seed, purpose, 4), "big") or 1


_SIZE = re.compile(r"^(\d+)([MG]?)$")


def parse_size_mib(text: str) -> int:
    """LinuxKit's ``--size``: ``NM`` is MiB, ``NG`` and a bare ``N`` are GiB. Returns MiB."""
    match = _SIZE.match(text.strip().upper())
    if match is None or int(match.group(1)) == 0:
        raise UsageError(f"invalid --size {text}", hint="a number with M or G, e.g. 1024M")
    number = int(match.group(1))
    return number if match.group(2) == "M" else number * 1024


def round_up(value: int, unit: int) -> int:
    """`value` rounded up to a multiple of `unit`."""
    return -(-value // unit) * unit


def data_ranges(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of the regions of a file that hold data; holes are skipped."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        pos = end


def copy_into(dst: Path, src: Path, offset: int) -> None:
    """Copy the file `src` into the file `dst` at byte `offset`, keeping it sparse: `dst` is
    fresh (zeros there already), so holes and all-zero chunks of `src` are not written. A 25 GiB
    dynamic-vhd disk stays a few MiB on the host."""
    zero = bytes(_CHUNK)
    with src.open("rb") as fin, dst.open("r+b") as fout:
        size = os.fstat(fin.fileno()).st_size
        for start, end in data_ranges(fin.fileno(), size):
            fin.seek(start)
            pos = start
            while pos < end:
                chunk = fin.read(min(_CHUNK, end - pos))
                if chunk != zero[: len(chunk)]:
                    fout.seek(offset + pos)
                    fout.write(chunk)
                pos += len(chunk)


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path next to `path`, renamed onto it when the block succeeds and removed
    when it fails, so an interrupted build leaves nothing half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_beside(path)
    fd, name = tempfile.mkstemp(prefix=temp_prefix(f".{path.name}."), dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _sweep_beside(path: Path) -> None:
    """Remove what killed runs left beside `path`: their temp files and scratch trees."""
    base = untagged(path.name)
    sweep(path.parent, f".{base}." if base == path.name else f".{base}")


@contextlib.contextmanager
def scratch_dir(near: Path) -> Iterator[Path]:
    """A private temporary directory next to an output (same file system, cheap renames)."""
    near.parent.mkdir(parents=True, exist_ok=True)
    # A staged tree of a killed build (device nodes included) goes first.
    _sweep_beside(near)
    with tempfile.TemporaryDirectory(prefix=temp_prefix(f".{near.name}."), dir=near.parent) as name:
        yield Path(name)
