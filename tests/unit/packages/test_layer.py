"""Deterministic layer tars and the library closure resolver on real files in tmp_path."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from distrokit.errors import PackageError
from distrokit.packages.elf import resolve
from distrokit.packages.layer import Member, member_from_disk, write_tar


def _tar(entries: dict[str, Member], mtime: int = 0) -> bytes:
    out = io.BytesIO()
    write_tar(entries, out, mtime)
    return out.getvalue()


def test_sorted_with_parents_fixed_owner_and_mtime(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"hello")
    src.chmod(0o750)
    data = _tar(
        {
            "/usr/bin/x": member_from_disk(src),
            "/a/link": Member(kind="symlink", target="../usr/bin/x"),
            "/etc/conf": Member(kind="file", data=b"k=v\n", mode=0o600),
        },
        mtime=1234,
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == ["a", "a/link", "etc", "etc/conf", "usr", "usr/bin", "usr/bin/x"]
        assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 1234)}
        by = {m.name: m for m in members}
        assert by["usr/bin/x"].mode == 0o750
        assert by["etc/conf"].mode == 0o600
        assert by["a/link"].issym() and by["a/link"].linkname == "../usr/bin/x"
        assert tar.extractfile("usr/bin/x").read() == b"hello"  # type: ignore[union-attr]


def test_same_inputs_same_bytes_whatever_the_order(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "b").write_bytes(b"2")
    one = {"/x/a": member_from_disk(tmp_path / "a"), "/x/b": member_from_disk(tmp_path / "b")}
    two = dict(reversed(list(one.items())))
    assert hashlib.sha256(_tar(one)).digest() == hashlib.sha256(_tar(two)).digest()
    assert _tar(one, mtime=0) != _tar(one, mtime=1)


def test_special_files_refused(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(PackageError, match="only files, directories and symlinks"):
        member_from_disk(fifo)


def test_resolve_follows_symlinks_inside_the_tree(tmp_path: Path) -> None:
    (tmp_path / "lib/x86_64-linux-gnu").mkdir(parents=True)
    (tmp_path / "lib/x86_64-linux-gnu/ld.so").write_bytes(b"")
    (tmp_path / "lib64").mkdir()
    (tmp_path / "lib64/ld.so").symlink_to("/lib/x86_64-linux-gnu/ld.so")
    (tmp_path / "usr").mkdir()
    (tmp_path / "usr/lib").symlink_to("../lib")
    touched: set[str] = set()
    assert resolve(tmp_path, "/lib64/ld.so", touched) == "/lib/x86_64-linux-gnu/ld.so"
    assert touched == {"/lib64/ld.so", "/lib/x86_64-linux-gnu/ld.so"}
    touched.clear()
    assert resolve(tmp_path, "/usr/lib/x86_64-linux-gnu/ld.so", touched) is not None
    assert "/usr/lib" in touched
    assert resolve(tmp_path, "/nope", set()) is None
