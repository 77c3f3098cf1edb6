"""Atomic output files: written under a temporary name in the target directory and renamed
into place only when every output of the build succeeded, so a failed or interrupted build
leaves nothing behind. ``-o -`` writes the single streamable output to stdout instead.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from distrokit.errors import BuildError
from distrokit.leftovers import sweep, temp_prefix


class Outputs:
    """Where a build writes its files: `directory`/`name`-based, or one explicit `single` path.

    Use as a context manager: files opened with `open` are committed on success and removed on
    any exception (including KeyboardInterrupt).
    """

    def __init__(self, directory: Path, name: str, single: str | None = None) -> None:
        self.directory = directory
        self.name = name
        self.single = single
        # (stream or None for reserved paths, temporary file, final path or Path() for scratch)
        self._open: list[tuple[BinaryIO | None, Path, Path]] = []
        self.written: list[Path] = []

    def path(self, filename: str) -> Path:
        """Final path of an output file."""
        if self.single is not None and self.single != "-":
            return Path(self.single)
        return self.directory / filename

    def open(self, filename: str) -> BinaryIO:
        """A binary stream for output `filename` (stdout for ``-o -``)."""
        if self.single == "-":
            return sys.stdout.buffer
        final = self.path(filename)
        fd, tmp = _mkstemp(final)
        stream = os.fdopen(fd, "wb")
        self._open.append((stream, tmp, final))
        return stream

    def reserve(self, filename: str) -> Path:
        """A path in the target directory for output `filename`, for writers that write a file
        by name (xorriso, qemu-img...): renamed into place with the other outputs on success,
        removed on failure. Writing it in place means no copy afterwards."""
        final = self.path(filename)
        fd, tmp = _mkstemp(final)
        os.close(fd)
        self._open.append((None, tmp, final))
        return tmp

    def temp(self, filename: str) -> tuple[BinaryIO, Path]:
        """A scratch file next to the outputs, removed when the build ends."""
        final = self.path(filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=final.parent, prefix=temp_prefix(f".{final.name}."), suffix=".part"
        )
        stream = os.fdopen(fd, "w+b")
        self._open.append((stream, Path(tmp), Path()))
        return stream, Path(tmp)

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self._commit()
        else:
            self._abort()

    def _commit(self) -> None:
        try:
            for stream, tmp, final in self._open:
                # No fsync: rename gives atomicity; forcing 100+ MB to disk would cost seconds.
                if stream is not None:
                    stream.close()
                if final == Path():
                    tmp.unlink(missing_ok=True)
                    continue
                tmp.chmod(0o644 & ~_umask())
            for _, tmp, final in self._open:
                if final != Path():
                    tmp.replace(final)
                    self.written.append(final)
        except BaseException:
            self._abort()
            raise
        if self.single == "-":
            sys.stdout.buffer.flush()

    def _abort(self) -> None:
        for stream, tmp, _ in self._open:
            if stream is not None:
                stream.close()
            tmp.unlink(missing_ok=True)
        self._open.clear()


def _mkstemp(final: Path) -> tuple[int, Path]:
    """A new temporary file next to `final` (same file system: the rename is atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    # What a killed build left next to this output (temp files, staged trees) goes first.
    sweep(final.parent, f".{final.name}.")
    try:
        prefix = temp_prefix(f".{final.name}.")
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=prefix, suffix=".tmp")
    except OSError as err:
        raise BuildError(f"cannot write output in {final.parent}: {err.strerror}") from err
    return fd, Path(tmp)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
