"""An image's layers flattened into one entry stream, the way container runtimes unpack them.

`flatten` reads the layers top-down in a single pass, the way go-containerregistry's extract
(which LinuxKit uses) does: an entry is emitted the first time its path is seen, so the top
layer wins and a directory already seen is not repeated. Whiteouts (``.wh.<name>``) hide the
name and everything below it in lower layers; opaque markers (``.wh..wh..opq``) hide the
directory's contents in lower layers (go-containerregistry ignores these; we apply them, see
docs/compatibility.md). Only names are remembered, never contents.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from typing import IO, Any, cast

from distrokit.errors import BuildError
from distrokit.oci.image import LayerStream
from distrokit.tarstream import Entry

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
# Larger buffers make tarfile's stream reader copy more on every header read.
READ_BUFSIZE = 64 * 1024

LayerOpener = Callable[[int], IO[bytes]]


def clean_name(name: str) -> str:
    """A tar member name as go-containerregistry stores it: cleaned, relative, no slash."""
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    return cleaned or "."


def _hidden(name: str, gone: set[str], opaque: set[str]) -> bool:
    """Whether a whiteout/opaque marker of a higher layer hides `name`."""
    parent = name
    while True:
        parent = posixpath.dirname(parent)
        if parent in gone:
            return True
        if parent in opaque:
            return True
        if not parent:
            return False


def flatten(layer_count: int, open_layer: LayerOpener) -> Generator[Entry, None, None]:
    """Entries of the flattened image, topmost layer first; regular files carry their data.

    Yields `Entry` objects whose data must be consumed before the next one is requested.
    """
    seen: set[str] = set()
    gone: set[str] = set()
    opaque: set[str] = set()
    for index in reversed(range(layer_count)):
        new_opaque: set[str] = set()
        new_gone: set[str] = set()
        with closing(open_layer(index)) as stream, _layer_tar(stream, index) as tar:
            what = stream.what if isinstance(stream, LayerStream) else f"image layer {index}"
            for member in _members(tar, what):
                name = clean_name(member.name)
                base = posixpath.basename(name)
                parent = posixpath.dirname(name)
                if base == OPAQUE:
                    new_opaque.add(parent)
                    continue
                if base.startswith(WHITEOUT):
                    new_gone.add(posixpath.join(parent, base[len(WHITEOUT) :]))
                    continue
                if name in seen or name in gone or _hidden(name, gone, opaque):
                    continue
                seen.add(name)
                if not member.isdir():
                    # A file or link also hides anything below its name in lower layers.
                    new_gone.add(name)
                member.name = name
                if member.islnk():
                    member.linkname = clean_name(member.linkname)
                data = tar.extractfile(member) if member.isreg() else None
                yield Entry(member, cast(IO[bytes], _Guarded(data, what)) if data else None)
            if isinstance(stream, LayerStream):
                # tar stops at its end-of-archive blocks: verify the rest of the blob too.
                stream.finish()
        # A layer's markers only affect the layers below it.
        gone |= new_gone
        opaque |= new_opaque


# What a damaged tar (truncated, bad header) raises while it is read.
_TAR_ERRORS = (tarfile.TarError, EOFError)


def _members(tar: tarfile.TarFile, what: str) -> Iterator[tarfile.TarInfo]:
    members = iter(tar)
    while True:
        try:
            member = next(members)
        except StopIteration:
            return
        except _TAR_ERRORS as err:
            raise BuildError(f"{what} is not a valid tar archive: {err}") from err
        yield member


class _Guarded:
    """A member's data whose tar read errors (a truncated layer) become a BuildError."""

    def __init__(self, raw: IO[bytes], what: str) -> None:
        self._raw = raw
        self._what = what

    def read(self, size: int = -1) -> bytes:
        try:
            return self._raw.read(size)
        except _TAR_ERRORS as err:
            raise BuildError(f"{self._what} is not a valid tar archive: {err}") from err

    def readinto(self, buffer: Any) -> int:
        try:
            return int(self._raw.readinto(buffer))  # type: ignore[attr-defined]
        except _TAR_ERRORS as err:
            raise BuildError(f"{self._what} is not a valid tar archive: {err}") from err

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _layer_tar(stream: IO[bytes], index: int) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=stream, mode="r|", bufsize=READ_BUFSIZE)
    except _TAR_ERRORS as err:
        raise BuildError(f"image layer {index} is not a valid tar archive: {err}") from err
