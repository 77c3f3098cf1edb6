"""Helpers for build tests: small layer tars made in the test, images in a temp cache."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from distrokit.config.load import load_config
from distrokit.config.model import Config
from distrokit.oci.cache import Cache
from distrokit.oci.image import ImageConfigBlob, Platform
from distrokit.pipeline import BuildRequest, build

PLATFORM = Platform("linux", "amd64")
MTIME = 1600000000


@dataclass(frozen=True)
class F:
    """A layer member: kind is file, dir, symlink, link, chr."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int | None = None
    target: str = ""
    uid: int = 0
    gid: int = 0


def write_layer(path: Path, members: Iterable[F]) -> Path:
    """An uncompressed layer tar at `path`."""
    kinds = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "link": tarfile.LNKTYPE,
        "chr": tarfile.CHRTYPE,
    }
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = kinds[m.kind]
            info.mtime = MTIME
            info.uid, info.gid = m.uid, m.gid
            info.mode = m.mode if m.mode is not None else (0o755 if m.kind == "dir" else 0o644)
            if m.kind in ("symlink", "link"):
                info.linkname = m.target
            if m.kind == "chr":
                info.devmajor, info.devminor = 1, 3
            if m.kind == "file":
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
            else:
                tar.addfile(info)
    return path


@dataclass
class Images:
    """Adds images to a temp cache."""

    cache: Cache
    workdir: Path
    counter: list[int] = field(default_factory=lambda: [0])

    def add(
        self,
        ref: str,
        *layers: list[F],
        entrypoint: tuple[str, ...] | None = None,
        cmd: tuple[str, ...] | None = None,
        env: tuple[str, ...] = (),
        labels: Mapping[str, str] | None = None,
        working_dir: str | None = None,
    ) -> str:
        paths = []
        for members in layers:
            self.counter[0] += 1
            paths.append(write_layer(self.workdir / f"layer{self.counter[0]}.tar", members))
        config = ImageConfigBlob(
            entrypoint=entrypoint,
            cmd=cmd,
            env=env,
            working_dir=working_dir,
            labels=MappingProxyType(dict(labels or {})),
        )
        return self.cache.add_image(ref, paths, config, PLATFORM)


def new_images(tmp_path: Path) -> Images:
    """An empty cache under `tmp_path` to add images to."""
    work = tmp_path / "layers"
    work.mkdir()
    return Images(Cache(tmp_path / "cache"), work)


def config_from(tmp_path: Path, text: str, name: str = "system.yml") -> Config:
    """A Config loaded from YAML text through the real loader."""
    path = tmp_path / name
    path.write_text(text)
    return load_config([str(path)])


def run_build(
    images: Images,
    config: Config,
    out: Path,
    *formats: str,
    name: str = "sys",
    build_cache: Path | None = None,
    compression: Any = None,
    single: str | None = None,
) -> list[Path]:
    """Build through the library entry point."""
    from distrokit.formats.initrd import Compression

    request = BuildRequest(
        formats=formats or ("tar",),
        name=name,
        directory=out,
        single_output=single,
        platform=PLATFORM,
        compression=compression or Compression(),
        build_cache=build_cache,
    )
    return list(build(config, images.cache, request).written)


def members(path: Path) -> list[tarfile.TarInfo]:
    """All members of a tar file, in order."""
    with tarfile.open(path) as tar:
        return tar.getmembers()


def read_member(path: Path, name: str) -> bytes:
    """Contents of the LAST member called `name`."""
    with tarfile.open(path) as tar:
        found = [m for m in tar.getmembers() if m.name == name]
        assert found, f"{name} not in {path}"
        data = tar.extractfile(found[-1])
        assert data is not None
        return data.read()


def read_json(path: Path, name: str) -> Any:
    """A JSON member parsed."""
    return json.loads(read_member(path, name))


@dataclass(frozen=True)
class CpioEntry:
    """One parsed newc record."""

    name: str
    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    dev: tuple[int, int]
    rdev: tuple[int, int]
    data: bytes


def parse_cpio(raw: bytes) -> tuple[list[CpioEntry], int]:
    """Every record up to and including TRAILER!!!; returns them and the archive length."""
    out: list[CpioEntry] = []
    pos = 0
    while True:
        assert raw[pos : pos + 6] == b"070701", f"bad magic at {pos}"
        f = [int(raw[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, size = f[11], f[6]
        name_start = pos + 110
        name = raw[name_start : name_start + namesize - 1].decode()
        data_start = name_start + namesize + (-(110 + namesize) % 4)
        data = raw[data_start : data_start + size]
        pos = data_start + size + (-size % 4)
        out.append(
            CpioEntry(name, f[0], f[1], f[2], f[3], f[4], f[5], (f[7], f[8]), (f[9], f[10]), data)
        )
        if name == "TRAILER!!!":
            return out, pos
