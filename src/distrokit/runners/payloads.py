"""The compressed streams a kernel boot carries, told apart by their magic bytes.

A bzImage's kernel payload (`runners.pvh`) and an initramfs (`runners.initrd`) are xz, gzip or
zstd. Each format here is its magic, its name and a factory of streaming decompressors; gzip
goes through zlib-ng (the same format as zlib's, inflated about twice as fast).
"""

from __future__ import annotations

import lzma
from collections.abc import Callable
from typing import Protocol, cast

import zstandard
from zlib_ng import zlib_ng

# zlib-ng's stub declares `error` as an instance; it is the exception class zlib's is
_ZLIB_ERROR = cast(type[Exception], zlib_ng.error)
# What a decompressor raises on corrupt input.
ERRORS: tuple[type[Exception], ...] = (lzma.LZMAError, _ZLIB_ERROR, zstandard.ZstdError)


class Decompressor(Protocol):
    """One stream (a gzip member, a zstd frame, an xz stream): bytes in, bytes out."""

    def decompress(self, data: bytes) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...


Factory = Callable[[], Decompressor]
FORMATS: tuple[tuple[bytes, str, Factory], ...] = (
    (b"\xfd7zXZ\x00", "xz", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ)),
    (b"\x1f\x8b", "gzip", lambda: zlib_ng.decompressobj(wbits=31)),
    (b"\x28\xb5\x2f\xfd", "zstd", lambda: zstandard.ZstdDecompressor().decompressobj()),
)
# The longest magic: how many bytes `identify` needs to see.
MAGIC_LEN = max(len(magic) for magic, _, _ in FORMATS)


def identify(head: bytes) -> tuple[str, Factory] | None:
    """The name and decompressor factory of the stream `head` begins, or None."""
    for magic, name, factory in FORMATS:
        if head.startswith(magic):
            return name, factory
    return None
