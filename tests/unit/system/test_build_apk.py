"""The consolidated apk database of init images, in tar and in cached initrd rebuilds."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

import pytest
from buildfix import F, Images, config_from, members, new_images, parse_cpio, run_build

YAML = """kernel:
  image: example.org/k:1
  tar: none
init:
  - example.org/a:1
  - example.org/plain:1
  - example.org/b:1
"""


@pytest.fixture
def images(tmp_path: Path) -> Images:
    imgs = new_images(tmp_path)
    imgs.add("example.org/k:1", [F("kernel", data=b"K")])
    for name, db in (("a", b"P:alpha\nV:1\n"), ("b", b"P:beta\nV:2\n")):
        imgs.add(
            f"example.org/{name}:1",
            [
                F("lib", "dir"),
                F("lib/apk", "dir"),
                F("lib/apk/db", "dir"),
                F("lib/apk/db/installed", data=db),
            ],
        )
    imgs.add("example.org/plain:1", [F("plain", data=b"p")])
    return imgs


def test_merged_database_follows_the_init_images(tmp_path: Path, images: Images) -> None:
    run_build(images, config_from(tmp_path, YAML), tmp_path / "out", "tar", name="s")
    ms = members(tmp_path / "out" / "s.tar")
    dbs = [m for m in ms if m.name == "lib/apk/db/installed"]
    assert len(dbs) == 3
    merged = dbs[-1]
    assert merged.pax_headers["LINUXKIT.source"] == "LINUXKIT.apkinit"

    with tarfile.open(tmp_path / "out" / "s.tar") as tar:
        data = tar.extractfile(merged)
        assert data is not None
        assert data.read() == b"P:alpha\nV:1\n\n\nP:beta\nV:2\n\n\n"


def test_one_database_is_left_alone(tmp_path: Path, images: Images) -> None:
    config = config_from(tmp_path, YAML.replace("  - example.org/b:1\n", ""))
    run_build(images, config, tmp_path / "out", "tar", name="s")
    names = [m.name for m in members(tmp_path / "out" / "s.tar")]
    assert names.count("lib/apk/db/installed") == 1


def test_cached_rebuild_keeps_the_merged_database(tmp_path: Path, images: Images) -> None:
    config = config_from(tmp_path, YAML)
    cold = run_build(images, config, tmp_path / "cold", "kernel+initrd", name="s")
    cache = tmp_path / "bc"
    run_build(images, config, tmp_path / "first", "kernel+initrd", name="s", build_cache=cache)
    run_build(images, config, tmp_path / "again", "kernel+initrd", name="s", build_cache=cache)
    initrd = next(p for p in cold if p.name == "s-initrd.img").read_bytes()
    assert (tmp_path / "first" / "s-initrd.img").read_bytes() == initrd
    assert (tmp_path / "again" / "s-initrd.img").read_bytes() == initrd
    records, _ = parse_cpio(gzip.decompress(initrd))
    assert [r.name for r in records].count("lib/apk/db/installed") == 3
