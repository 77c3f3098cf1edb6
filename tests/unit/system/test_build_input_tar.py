"""``--input-tar``: unchanged parts come from the previous tar, the result equals a fresh build."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from buildfix import F, Images, config_from, new_images, read_member

from distrokit.config.model import Config
from distrokit.pipeline import BuildRequest, build

BASE = """
kernel:
  image: example.org/kernel:1
  cmdline: console=ttyS0
  tar: none
init:
  - example.org/init:1
volumes:
  - name: data
    image: example.org/vol:1
services:
  - name: web
    image: example.org/app:1
    command: ["/app", "--port", "80"]
  - name: db
    image: example.org/app:1
    command: ["/app", "--db"]
files:
  - path: etc/linuxkit.yml
    metadata: yaml
  - path: etc/motd
    contents: "v1\\n"
"""
CHANGED = BASE.replace('"--db"', '"--db", "--fast"').replace("v1\\n", "v2\\n")


def _images(tmp_path: Path) -> Images:
    images = new_images(tmp_path)
    images.add("example.org/kernel:1", [F("kernel", data=b"BZIMAGE", mode=0o600)])
    images.add(
        "example.org/init:1",
        [F("bin", "dir"), F("bin/busybox", data=b"busybox", mode=0o755), F("init", data=b"#!")],
    )
    images.add("example.org/vol:1", [F("srv", data=b"volume")])
    images.add("example.org/app:1", [F("app", data=b"app", mode=0o755)])
    return images


def _tar(images: Images, config: Config, out: Path, input_tar: Path | None = None) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    request = BuildRequest(
        formats=("tar",), name=out.stem, directory=out.parent, input_tar=input_tar
    )
    build(config, images.cache, request)
    return out


def _tampered(src: Path, dest: Path, name: str, data: bytes) -> Path:
    """A copy of `src` with member `name` holding `data` (records and order kept)."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tout:
        for m in tin:
            body = tin.extractfile(m).read() if m.isreg() else None  # type: ignore[union-attr]
            if m.name == name:
                body, m.size = data, len(data)
            tout.addfile(m, io.BytesIO(body) if body is not None else None)
    return dest


def test_input_tar_gives_the_same_bytes_as_a_fresh_build(tmp_path: Path) -> None:
    images = _images(tmp_path)
    old = _tar(images, config_from(tmp_path, BASE, "base.yml"), tmp_path / "a" / "old.tar")
    changed = config_from(tmp_path, CHANGED, "changed.yml")
    fresh = _tar(images, changed, tmp_path / "b" / "fresh.tar")
    incremental = _tar(images, changed, tmp_path / "c" / "new.tar", input_tar=old)
    assert incremental.read_bytes() == fresh.read_bytes()
    assert read_member(incremental, "etc/motd") == b"v2\n"


def test_unchanged_parts_are_copied_from_the_input_tar(tmp_path: Path) -> None:
    """What the input tar holds for an unchanged part is what the output gets; changed parts
    and volumes are built from their images."""
    images = _images(tmp_path)
    old = _tar(images, config_from(tmp_path, BASE, "base.yml"), tmp_path / "a" / "old.tar")
    marked = old
    for name, data in (
        ("init", b"OLD"),
        ("boot/kernel", b"OLDKERNEL"),
        ("containers/services/web/lower/app", b"OLD"),
        ("containers/services/db/config.json", b"{}"),
        ("containers/volumes/data/lower/srv", b"OLD"),
    ):
        marked = _tampered(marked, tmp_path / f"marked-{len(data)}-{name[:4]}.tar", name, data)
    changed = config_from(tmp_path, CHANGED, "changed.yml")
    out = _tar(images, changed, tmp_path / "c" / "new.tar", input_tar=marked)
    assert read_member(out, "init") == b"OLD"  # init[0] unchanged: copied
    assert read_member(out, "boot/kernel") == b"OLDKERNEL"  # kernel unchanged: copied
    assert read_member(out, "containers/services/web/lower/app") == b"OLD"  # unchanged service
    # the changed service is built again, and volumes always are
    assert b"--fast" in read_member(out, "containers/services/db/config.json")
    assert read_member(out, "containers/volumes/data/lower/srv") == b"volume"


def test_input_tar_without_a_metadata_file_is_not_used(tmp_path: Path) -> None:
    images = _images(tmp_path)
    text = BASE.replace("metadata: yaml", 'contents: "x"')
    config = config_from(tmp_path, text, "base.yml")
    old = _tar(images, config, tmp_path / "a" / "old.tar")
    marked = _tampered(old, tmp_path / "marked.tar", "init", b"OLD")
    out = _tar(images, config, tmp_path / "c" / "new.tar", input_tar=marked)
    assert read_member(out, "init") == b"#!"
