"""The ``files:`` section (1.7) as tar entries, with LinuxKit's synthetic parent directories."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from distrokit.config.model import Config, File
from distrokit.config.rules import RuleError, resolve_id
from distrokit.errors import BuildError
from distrokit.system.metadata import metadata_json, metadata_yaml
from distrokit.tarstream import Entry, Origin, directory, regular, symlink

FILES_SOURCE = "linuxkit.files"
_METADATA: Mapping[str, Callable[[Config], bytes]] = {"yaml": metadata_yaml, "json": metadata_json}


def parent_mode(mode: int) -> int:
    """LinuxKit's mode for generated parent directories: add x wherever any bit is set."""
    out = mode
    for bits, x in ((0o700, 0o100), (0o070, 0o010), (0o007, 0o001)):
        if mode & bits:
            out |= x
    return out


def _where(f: File) -> str:
    return f"files entry {f.path}" + (f" ({f.origin})" if f.origin else "")


def _mode(f: File) -> int:
    if f.mode is None:
        return 0o700 if f.directory else 0o600
    try:
        return int(f.mode, 8)
    except ValueError:
        raise BuildError(f"{_where(f)}: cannot parse mode as octal value: {f.mode!r}") from None


def _ids(f: File, ids: Mapping[str, int]) -> tuple[int, int]:
    try:
        return resolve_id(f.uid, ids), resolve_id(f.gid, ids)
    except RuleError as err:
        raise BuildError(f"{_where(f)}: {err}") from err


def _open_source(f: File) -> tuple[BinaryIO, int] | None:
    assert f.source is not None
    path = Path(f.source).expanduser()
    try:
        stream = path.open("rb")
    except OSError as err:
        if f.optional:
            return None
        raise BuildError(f"{_where(f)}: cannot read source {path}: {err.strerror}") from err
    return stream, path.stat().st_size


def _content(f: File, config: Config) -> bytes | None:
    if f.metadata is not None:
        dump = _METADATA.get(f.metadata)
        if dump is None:
            raise BuildError(f"{_where(f)}: unsupported metadata format {f.metadata!r}")
        return dump(config)
    if f.contents is not None:
        return f.contents.encode()
    return None


def file_entries(config: Config, ids: Mapping[str, int]) -> Iterator[Entry]:
    """Every ``files:`` entry in order, each preceded by its not-yet-written parents."""
    added: set[str] = set()
    for index, f in enumerate(config.files):
        origin = Origin(FILES_SOURCE, f"files[{index}]")
        path = f.path.lstrip("/")
        if not path:
            raise BuildError(f"{_where(f)}: did not specify path for file")
        mode = _mode(f)
        uid, gid = _ids(f, ids)
        source: tuple[BinaryIO, int] | None = None
        if f.source is not None and f.metadata is None:
            source = _open_source(f)
            if source is None:
                continue  # optional and missing: skipped, as LinuxKit does
        root = ""
        for part in posixpath.dirname(path).split("/"):
            if part in ("", ".", "/"):
                continue
            root = f"{root}/{part}" if root else part
            if root not in added:
                added.add(root)
                yield directory(root, origin, mode=parent_mode(mode), uid=uid, gid=gid)
        added.add(path)
        if f.directory:
            yield directory(path, origin, mode=mode, uid=uid, gid=gid)
        elif f.symlink is not None:
            yield symlink(path, f.symlink, origin, mode=mode, uid=uid, gid=gid)
        elif source is not None:
            stream, size = source
            with stream:
                entry = regular(path, b"", origin, mode=mode, uid=uid, gid=gid)
                entry.info.size = size
                yield Entry(entry.info, stream)
        else:
            content = _content(f, config)
            if content is None:
                raise BuildError(f"contents of file ({path}) not specified")
            yield regular(path, content, origin, mode=mode, uid=uid, gid=gid)
