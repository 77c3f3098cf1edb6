"""`distrokit cache` commands that need no registry: ls, rm, clean --keep."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from registry import make_layer

from distrokit.cli import main
from distrokit.errors import CacheError
from distrokit.oci.cache import Cache
from distrokit.oci.image import ImageConfigBlob, Platform
from distrokit.oci.layout import export_image

AMD64 = Platform.parse("linux/amd64")
KEPT = ("reg.example/sys/kernel:1", "reg.example/sys/init:2", "reg.example/sys/getty:3")


def _fill(tmp_path: Path) -> Path:
    cache_dir = tmp_path / "cache"
    cache = Cache(cache_dir)
    for i, name in enumerate([*KEPT, "reg.example/old/thing:9"]):
        layer = make_layer(tmp_path / f"{i}.tar", seed=i)
        cache.add_image(name, [layer], ImageConfigBlob(), AMD64)
    return cache_dir


def test_clean_keep_keeps_images_named_in_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = _fill(tmp_path)
    stale = cache_dir / "blobs/sha256/.partial-abandoned"
    stale.write_bytes(b"x")
    os.utime(stale, (0, 0))
    yml = tmp_path / "system.yml"
    yml.write_text(
        f"kernel:\n  image: {KEPT[0]}\n  cmdline: console=ttyS0\n"
        f"init:\n  - {KEPT[1]}\n"
        f"services:\n  - name: getty\n    image: {KEPT[2]}\n"
    )
    assert main(["cache", "clean", "--cache", str(cache_dir), "--keep", str(yml)]) == 0
    assert "removed reg.example/old/thing:9" in capsys.readouterr().out
    cache = Cache(cache_dir)
    assert sorted(e.name for e in cache.list_entries()) == sorted(KEPT)
    for name in KEPT:
        image = cache.image(name, AMD64)
        with image.open_layer(image.layers[0]) as s:
            assert len(s.read()) > 4096
    assert not stale.exists()


def test_clean_without_keep_removes_the_cache(tmp_path: Path) -> None:
    cache_dir = _fill(tmp_path)
    assert main(["cache", "clean", "-cache", str(cache_dir)]) == 0
    assert not cache_dir.exists()


def test_clean_keep_with_invalid_yaml_fails_and_keeps_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = _fill(tmp_path)
    yml = tmp_path / "bad.yml"
    yml.write_text("kernel:\n  imagee: x\n")
    assert main(["cache", "clean", "--cache", str(cache_dir), "--keep", str(yml)]) == 2
    assert "bad.yml" in capsys.readouterr().err
    assert len(Cache(cache_dir).list_entries()) == 4


def test_ls_shows_names_digests_and_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = _fill(tmp_path)
    assert main(["cache", "ls", "--cache", str(cache_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["IMAGE", "ROOT", "MANIFEST", "SIZE"]
    assert len(out) == 5
    digest = Cache(cache_dir).image(KEPT[0], AMD64).digest
    row = next(line for line in out if line.startswith(KEPT[0]))
    assert digest in row and row.endswith("kB")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_terminal_and_lines_otherwise() -> None:
    from distrokit.cli.cache import _ProgressPrinter
    from distrokit.oci.pull import Progress

    tty = _Terminal()
    bar = _ProgressPrinter(tty, quiet=False)
    bar(Progress("r/x:1", 500_000, 1_000_000))
    bar(Progress("r/x:1", 1_000_000, 1_000_000, finished=True))
    assert "\r\x1b[Kr/x:1 [###############---------------] 500.0 kB/1.0 MB" in tty.getvalue()
    assert tty.getvalue().endswith("r/x:1: pulled 1.0 MB\n")

    plain = io.StringIO()
    lines = _ProgressPrinter(plain, quiet=False)
    lines(Progress("r/x:1", 500_000, 1_000_000))
    lines(Progress("r/x:1", 1_000_000, 1_000_000, finished=True))
    lines(Progress("r/y:1", 0, 0, finished=True, cached=True))
    assert plain.getvalue() == "r/x:1: pulled 1.0 MB\nr/y:1: cached\n"


def test_clean_keep_resolves_pkg_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg" / "getty").mkdir(parents=True)
    (repo / "pkg" / "getty" / "build.yml").write_text("image: getty\norg: reg.example/sys\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "getty"]):
        subprocess.run([*git, *args], check=True)
    tree = subprocess.run(
        [*git, "rev-parse", "HEAD:pkg/getty"], check=True, capture_output=True, text=True
    ).stdout.strip()
    cache_dir = _fill(tmp_path)
    built = f"reg.example/sys/getty:{tree}"
    Cache(cache_dir).add_image(
        built, [make_layer(tmp_path / "g.tar", seed=7)], ImageConfigBlob(), AMD64
    )
    yml = repo / "system.yml"
    yml.write_text("services:\n  - name: getty\n    image: '@pkg:pkg/getty'\n")
    assert main(["cache", "clean", "--cache", str(cache_dir), "--keep", str(yml)]) == 0
    assert [e.name for e in Cache(cache_dir).list_entries()] == [built]


def test_clean_refuses_a_directory_that_is_not_a_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "documents"
    (folder / "blobs").mkdir(parents=True)
    (folder / "thesis.txt").write_text("years of work")
    assert main(["cache", "clean", "--cache", str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"{folder} is not an image cache: it holds thesis.txt" in err
    assert (folder / "thesis.txt").read_text() == "years of work"


def test_clean_refuses_a_cache_with_foreign_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = _fill(tmp_path)
    (cache_dir / "notes.md").write_text("mine")
    (cache_dir / "blobs" / "photos").mkdir()
    assert main(["cache", "clean", "--cache", str(cache_dir)]) == 1
    assert "it holds notes.md, blobs/photos" in capsys.readouterr().err
    assert len(Cache(cache_dir).list_entries()) == 4


def test_clean_of_a_missing_or_empty_directory_succeeds(tmp_path: Path) -> None:
    assert main(["cache", "clean", "--cache", str(tmp_path / "absent")]) == 0
    (tmp_path / "empty").mkdir()
    assert main(["cache", "clean", "--cache", str(tmp_path / "empty")]) == 0
    assert not (tmp_path / "empty").exists()


def test_a_damaged_index_json_is_reported_not_taken_for_a_network_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = _fill(tmp_path)
    (cache_dir / "index.json").write_text('{"manifests": "not a list"}')
    # Port 1 on loopback: a pull that reached for the network would fail to connect.
    code = main(["cache", "pull", "--cache", str(cache_dir), "127.0.0.1:1/some/image:1"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{cache_dir / 'index.json'}: manifests is not a list of descriptors" in err
    assert "cannot reach" not in err


def test_a_lock_that_is_a_directory_is_repaired_when_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = _fill(tmp_path)
    lock = cache_dir / ".lock"
    lock.unlink()
    lock.mkdir()
    assert main(["cache", "ls", "--cache", str(cache_dir)]) == 0
    assert lock.is_file()
    assert len(capsys.readouterr().out.splitlines()) == 5
    lock.unlink()
    (lock / "keep").mkdir(parents=True)
    assert main(["cache", "ls", "--cache", str(cache_dir)]) == 1
    assert f"{lock} is a directory, not the cache's lock file" in capsys.readouterr().err


def _layout_tar(tmp_path: Path, edit: Callable[[dict[str, bytes]], None]) -> Path:
    """An exported OCI layout of one image, its members changed by `edit`."""
    cache_dir = _fill(tmp_path)
    out = io.BytesIO()
    export_image(Cache(cache_dir), KEPT[0], AMD64, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    edit(members)
    path = tmp_path / "edited.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _blobs(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in (cache_dir / "blobs" / "sha256").iterdir())


def test_a_failed_import_leaves_no_orphan_blobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def unnamed(members: dict[str, bytes]) -> None:
        index = json.loads(members["index.json"])
        del index["manifests"][0]["annotations"]
        members["index.json"] = json.dumps(index).encode()

    archive = _layout_tar(tmp_path, unnamed)
    target = tmp_path / "target"
    assert main(["cache", "import", "--cache", str(target), str(archive)]) == 1
    assert "names no image" in capsys.readouterr().err
    assert _blobs(target) == []


def test_an_import_keeps_only_blobs_its_images_use(tmp_path: Path) -> None:
    stray = b"not part of any image"
    digest = hashlib.sha256(stray).hexdigest()

    def extra(members: dict[str, bytes]) -> None:
        members[f"blobs/sha256/{digest}"] = stray

    archive = _layout_tar(tmp_path, extra)
    target = tmp_path / "target"
    assert main(["cache", "import", "--cache", str(target), str(archive)]) == 0
    assert digest not in _blobs(target)
    assert len(_blobs(target)) == 3  # manifest, config, layer


def test_a_single_manifest_image_is_only_used_for_its_own_platform(tmp_path: Path) -> None:
    cache = Cache(_fill(tmp_path))
    assert cache.image(KEPT[0], AMD64).config.architecture == "amd64"
    with pytest.raises(CacheError, match=r"is built for linux/amd64, not linux/arm64"):
        cache.image(KEPT[0], Platform.parse("linux/arm64"))
    assert cache.find(KEPT[0], Platform.parse("linux/arm64")) is None


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_timeout_must_be_a_positive_finite_number(
    tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["cache", "pull", "--cache", str(tmp_path), "--timeout", value, "127.0.0.1:1/x"]
    assert main(argv) == 2
    assert "--timeout must be a positive number of seconds" in capsys.readouterr().err
