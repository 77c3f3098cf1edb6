"""An uncompressed copy of a compressed initramfs, for boots under TCG.

Under TCG the guest kernel inflates its initramfs at emulated speed: examples/minimal.yml's
50 MB of gzip (134 MB of cpio) take 2.2 s of a 3.5 s kernel boot to unpack, 0.6 s when the
same archive is handed over uncompressed (the kernel takes plain newc as it takes compressed
members). The host inflates it once, natively (`runners.payloads`: gzip through zlib-ng, zstd,
xz), into the cache. The file named on the command line is never changed: a
LinuxKit-compatible output stays what `build` wrote.

The copy is keyed by the file's identity (device, inode, size, mtime): `distrokit build`
replaces its outputs, so a rebuilt system has a new key. The most recently used copies are
kept; older ones go once they have not been used for a while. Not done under KVM (the guest
inflates at native speed), nor when the guest's memory could not hold the plain archive next
to what it unpacks into (the compressed file is used then, as given).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from distrokit.runners import payloads

log = logging.getLogger(__name__)

KEEP = 3  # copies kept however old
IDLE_SECONDS = 600  # older copies go once unused this long (a run may be about to read one)
RESERVED_MB = 128  # guest memory left for the kernel and the system's first steps
_CHUNK = 1 << 20


def is_compressed(path: Path) -> bool:
    """Whether `path` starts with a gzip member, a zstd frame or an xz stream."""
    with path.open("rb") as f:
        head = f.read(payloads.MAGIC_LEN)
    return payloads.identify(head) is not None


def inflate(src: BinaryIO, out: BinaryIO, limit: int) -> bool:
    """Write the plain bytes of `src`, a run of gzip members, zstd frames and xz streams
    (zero padding between them allowed, as the kernel allows it), to `out`. False when `src`
    holds anything else, is truncated or corrupt, or inflates to more than `limit` bytes."""
    pending = b""
    inflater: payloads.Decompressor | None = None
    written = 0
    while True:
        if not pending:
            pending = src.read(_CHUNK)
            if not pending:
                return inflater is None and written > 0
        if inflater is None:
            pending = pending.lstrip(b"\0")
            if not pending:
                continue
            if len(pending) < payloads.MAGIC_LEN:
                pending += src.read(payloads.MAGIC_LEN)
            found = payloads.identify(pending)
            if found is None:
                return False
            inflater = found[1]()
        try:
            data = inflater.decompress(pending)
        except payloads.ERRORS:
            return False
        written += len(data)
        if written > limit:
            return False
        out.write(data)
        if inflater.eof:
            pending, inflater = inflater.unused_data, None
        else:
            pending = b""


def _key(path: Path) -> str:
    st = path.stat()
    identity = f"{path.resolve()}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def _prune(cache: Path, keep: Path) -> None:
    copies = sorted(cache.glob("*.cpio"), key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for old in copies[KEEP:]:
        if old != keep and now - old.stat().st_mtime > IDLE_SECONDS:
            old.unlink(missing_ok=True)


def plain_initrd(initrd: Path, cache: Path, mem_mb: int) -> Path:
    """The uncompressed copy of `initrd` in `cache` (made now if needed); `initrd` itself
    when it is not compressed, cannot be inflated here, or would not fit in `mem_mb`."""
    if not is_compressed(initrd):
        return initrd
    limit = max(0, (mem_mb - RESERVED_MB) << 20) // 2
    copy = cache / f"{_key(initrd)}.cpio"
    if copy.is_file():
        copy.touch()
        return copy
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".initrd-")
    try:
        with os.fdopen(fd, "wb") as out, initrd.open("rb") as src:
            ok = inflate(src, out, limit)
        if not ok:
            log.debug("%s: kept compressed (not inflatable within %d MiB)", initrd, limit >> 20)
            return initrd
        Path(tmp).replace(copy)
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
    log.debug("%s: inflated for TCG in %.2f s", initrd, time.monotonic() - started)
    _prune(cache, copy)
    return copy
