"""Tar entries as a stream: the `Entry` type every build step produces and a PAX tar writer.

An `Entry` is a tar header plus (for regular files) a reader positioned at its data. Producers
yield entries lazily and a consumer must read an entry's data before asking for the next one, so
no file content is ever held in memory. Every entry carries LinuxKit's PAX records
``LINUXKIT.source`` and ``LINUXKIT.location``.

Headers are written block for block as Go's ``archive/tar`` writes them in PAX format (the
writer LinuxKit uses), so the same entries give the same bytes as ``linuxkit build``: which
PAX records exist and in what order, the extended header's name and fields, octal fields and
the end of the archive without padding to a record size. Reading stays with `tarfile`.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, BinaryIO

from distrokit.env import source_date_epoch

# LinuxKit's fixed timestamp for entries it generates: 2017-04-18T16:30:00Z.
DEFAULT_MTIME = 1492533000
SOURCE = "LINUXKIT.source"
LOCATION = "LINUXKIT.location"
COPY_BUFSIZE = 1 << 20


def generated_mtime() -> int:
    """mtime of generated entries: ``SOURCE_DATE_EPOCH`` if set, else LinuxKit's fixed time."""
    return source_date_epoch(DEFAULT_MTIME)


@dataclass(frozen=True)
class Origin:
    """What the PAX records of an entry say: the image (or pseudo source) and its location."""

    source: str
    location: str

    def records(self) -> dict[str, str]:
        """The two PAX records."""
        return {SOURCE: self.source, LOCATION: self.location}


@dataclass(frozen=True)
class Entry:
    """One tar member; `data` is set for regular files and must be read before the next entry."""

    info: tarfile.TarInfo
    data: IO[bytes] | None = None


def set_origin(info: tarfile.TarInfo, origin: Origin) -> None:
    """Give an entry read from another archive our PAX records, keeping its other records
    (the writer decides which field records still apply, as Go's does)."""
    info.pax_headers = {**info.pax_headers, **origin.records()}


class VerbatimInfo(tarfile.TarInfo):
    """A member read by `tarfile` that remembers whether its header spelled a directory with
    a trailing slash, which `tarfile` strips but LinuxKit copies verbatim."""

    slash = False

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> VerbatimInfo:
        obj = super().frombuf(buf, encoding, errors)
        obj.slash = bytes(buf[:100]).split(b"\0", 1)[0].endswith(b"/")
        return obj


def verbatim_name(member: tarfile.TarInfo) -> str:
    """The member's name as the archive spells it (read with ``tarinfo=VerbatimInfo``)."""
    raw = member.pax_headers.get("path")
    if raw is not None:
        return raw
    if member.isdir() and isinstance(member, VerbatimInfo) and member.slash:
        return member.name + "/"
    return member.name


def _info(name: str, kind: bytes, mode: int, mtime: int, origin: Origin) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uname = info.gname = ""
    info.pax_headers = origin.records()
    return info


def directory(
    name: str,
    origin: Origin,
    *,
    mode: int = 0o755,
    mtime: int | None = None,
    uid: int = 0,
    gid: int = 0,
) -> Entry:
    """A generated directory entry."""
    info = _info(name.rstrip("/"), tarfile.DIRTYPE, mode, _mtime(mtime), origin)
    info.uid, info.gid = uid, gid
    return Entry(info)


def regular(
    name: str,
    content: bytes,
    origin: Origin,
    *,
    mode: int = 0o644,
    mtime: int | None = None,
    uid: int = 0,
    gid: int = 0,
) -> Entry:
    """A generated regular file holding small `content`."""
    info = _info(name, tarfile.REGTYPE, mode, _mtime(mtime), origin)
    info.uid, info.gid = uid, gid
    info.size = len(content)
    return Entry(info, io.BytesIO(content))


def symlink(
    name: str,
    target: str,
    origin: Origin,
    *,
    mode: int = 0o777,
    mtime: int | None = None,
    uid: int = 0,
    gid: int = 0,
) -> Entry:
    """A generated symbolic link."""
    info = _info(name, tarfile.SYMTYPE, mode, _mtime(mtime), origin)
    info.uid, info.gid = uid, gid
    info.linkname = target
    return Entry(info)


def _mtime(mtime: int | None) -> int:
    return generated_mtime() if mtime is None else mtime


# Go's archive/tar limits: octal fields keep one byte for the NUL terminator.
_NAME_SIZE, _OWNER_NAME_SIZE = 100, 32
_BLOCK = 512
# PAX keys Go derives from header fields: a source record for one of them is kept only when
# it equals the value written (Go's Header.allowedFormats).
_BASIC_KEYS = frozenset(
    {"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime"}
)


def _fits_octal(width: int, value: int) -> bool:
    return value >= 0 and (width >= 22 or value < 1 << ((width - 1) * 3))


def _octal(value: int, width: int) -> bytes:
    """Go's formatOctal: zero-padded octal leaving room for a NUL; 0 when it does not fit."""
    if not _fits_octal(width, value):
        value = 0
    return _field(b"%0*o" % (width - 1, value), width)


def _field(raw: bytes, width: int) -> bytes:
    """Go's formatString: truncated to the field, NUL-terminated when shorter."""
    if len(raw) > width:
        out = bytearray(raw[:width])
        if out[-1:] == b"/":
            out[len(raw[:width].rstrip(b"/"))] = 0
        return bytes(out)
    return raw + b"\0" * (width - len(raw))


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _is_ascii(raw: bytes) -> bool:
    return all(0 < b < 0x80 for b in raw)


def _ascii(raw: bytes) -> bytes:
    return bytes(b for b in raw if 0 < b < 0x80)


def pax_time(value: str) -> str:
    """A PAX time record as Go re-formats it after parsing (9 digits at most, no trailing 0)."""
    secs, _, frac = value.partition(".")
    frac = (frac + "0" * 9)[:9].rstrip("0")
    return f"{int(secs)}.{frac}" if frac else str(int(secs))


def _header_time(info: tarfile.TarInfo) -> tuple[int, str | None]:
    """The header's whole seconds and, for a fractional time, its PAX record."""
    mtime = info.mtime
    if isinstance(mtime, int):
        return mtime, None
    record = info.pax_headers.get("mtime")
    text = pax_time(record) if record is not None else pax_time(repr(float(mtime)))
    seconds = int(text.partition(".")[0])
    return seconds, (text if "." in text else None)


def pax_records(info: tarfile.TarInfo) -> dict[str, str]:
    """The PAX records Go's tar writer emits for `info` (before sorting).

    A field that does not fit its header field gets a record; records of the source archive
    that Go derives from fields are kept only when equal to the value written; every other
    record (xattrs, LinuxKit's own) is kept.
    """
    source = info.pax_headers
    out: dict[str, str] = {}
    for key, text, width in (
        ("path", info.name, _NAME_SIZE),
        ("linkpath", info.linkname, _NAME_SIZE),
        ("uname", info.uname, _OWNER_NAME_SIZE),
        ("gname", info.gname, _OWNER_NAME_SIZE),
    ):
        raw = _encode(text)
        if not _is_ascii(raw) or len(raw) > width or source.get(key) == text:
            out[key] = text
    for key, number, width in (("uid", info.uid, 8), ("gid", info.gid, 8), ("size", info.size, 12)):
        if not _fits_octal(width, number) or source.get(key) == str(number):
            out[key] = str(number)
    seconds, fraction = _header_time(info)
    if fraction is not None or not _fits_octal(12, seconds):
        out["mtime"] = fraction or str(seconds)
    elif source.get("mtime") == str(seconds):
        out["mtime"] = str(seconds)
    for key in ("atime", "ctime"):
        if key in source:
            out[key] = pax_time(source[key])
    for key, value in source.items():
        if key not in _BASIC_KEYS and not key.startswith("GNU.sparse."):
            out[key] = value
    return out


def _pax_record(key: str, value: str) -> bytes:
    body = b" " + _encode(key) + b"=" + _encode(value) + b"\n"
    size = len(body) + len(str(len(body)))
    if len(str(size)) + len(body) != size:
        size = len(str(size)) + len(body)
    return str(size).encode() + body


def _checksummed(block: bytearray) -> bytes:
    block[148:156] = b" " * 8
    block[148:155] = _octal(sum(block), 7)
    return bytes(block)


def _raw_block(name: bytes, kind: bytes, size: int) -> bytearray:
    block = bytearray(_BLOCK)
    block[0:100] = _field(name, 100)
    fields = ((100, 8, 0), (108, 8, 0), (116, 8, 0), (124, 12, size), (136, 12, 0))
    for start, width, value in fields:
        block[start : start + width] = _octal(value, width)
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    return block


def _pax_header_name(name: str) -> bytes:
    """Go's name for the extended header of `name`: dir/PaxHeaders.0/base, cleaned."""
    head, _, tail = name.rpartition("/")
    joined = "/".join(p for p in (head, "PaxHeaders.0", tail) if p)
    cleaned = posixpath.normpath(joined)
    return _ascii(_encode(cleaned))[:_NAME_SIZE].rstrip(b"/")


def header_bytes(info: tarfile.TarInfo) -> bytes:
    """The header blocks Go's archive/tar writes for `info` in PAX format.

    LinuxKit writes every entry with Go's writer, so writing the same blocks makes the output
    byte-identical: the records sorted by key, the extended header named
    ``dir/PaxHeaders.0/base`` with zero mode, owner and time, no ``ustar`` device fields in it.
    """
    records = pax_records(info)
    out = b""
    if records:
        data = b"".join(_pax_record(k, records[k]) for k in sorted(records))
        head = _raw_block(_pax_header_name(info.name), tarfile.XHDTYPE, len(data))
        out = _checksummed(head) + data + b"\0" * (-len(data) % _BLOCK)
    seconds, _ = _header_time(info)
    block = bytearray(_BLOCK)
    block[0:100] = _field(_ascii(_encode(info.name)), 100)
    size = info.size
    for start, width, value in (
        (100, 8, info.mode),
        (108, 8, info.uid),
        (116, 8, info.gid),
        (124, 12, size),
        (136, 12, seconds),
    ):
        block[start : start + width] = _octal(value, width)
    block[156:157] = info.type
    block[157:257] = _field(_ascii(_encode(info.linkname)), 100)
    block[257:265] = b"ustar\x0000"
    block[265:297] = _field(_ascii(_encode(info.uname)), 32)
    block[297:329] = _field(_ascii(_encode(info.gname)), 32)
    block[329:337] = _octal(info.devmajor, 8)
    block[337:345] = _octal(info.devminor, 8)
    return out + _checksummed(block)


class TarWriter:
    """Writes entries as a PAX tar to a binary stream (which may be a pipe), block for block
    as Go's archive/tar does (no padding of the archive to a record size)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._closed = False

    def write(self, entry: Entry) -> None:
        """Append one entry, streaming its data."""
        info = entry.info
        self._out.write(header_bytes(info))
        if not info.isreg() or not info.size:
            return
        if entry.data is None:
            raise ValueError(f"tar entry {info.name} has no data")
        left = info.size
        while left:
            piece = entry.data.read(min(left, COPY_BUFSIZE))
            if not piece:
                raise OSError(f"tar entry {info.name} ended early")
            self._out.write(piece)
            left -= len(piece)
        self._out.write(b"\0" * (-info.size % _BLOCK))

    def write_all(self, entries: Iterable[Entry]) -> None:
        """Append every entry of `entries` in order."""
        for entry in entries:
            self.write(entry)

    def close(self) -> None:
        """Write the two end-of-archive blocks (does not close the underlying stream)."""
        if not self._closed:
            self._closed = True
            self._out.write(b"\0" * (2 * _BLOCK))

    def __enter__(self) -> TarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
