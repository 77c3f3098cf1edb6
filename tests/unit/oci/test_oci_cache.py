"""The image cache on real files: layout, determinism, verification, platforms, removal."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from registry import make_layer

from distrokit.errors import CacheError
from distrokit.oci.cache import Cache, default_cache_dir
from distrokit.oci.image import (
    OCI_INDEX,
    REF_NAME,
    ImageConfigBlob,
    Platform,
    digest_hex,
)
from distrokit.oci.layout import export_image, import_layout

AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64")


def _config() -> ImageConfigBlob:
    return ImageConfigBlob(
        entrypoint=("/bin/sh",), cmd=("-c", "true"), env=("A=1",), labels={"k": "v"}
    )


def test_new_cache_is_an_oci_layout(tmp_path: Path) -> None:
    Cache(tmp_path / "c")
    assert json.loads((tmp_path / "c/oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "c/index.json").read_text())
    assert index["mediaType"] == OCI_INDEX
    assert index["manifests"] == []
    assert (tmp_path / "c/blobs/sha256").is_dir()


def test_default_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LINUXKIT_CACHE", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("LINUXKIT_CACHE")
    assert default_cache_dir() == Path.home() / ".linuxkit" / "cache"


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_add_image_is_deterministic_and_readable(tmp_path: Path, compression: str) -> None:
    layer = make_layer(tmp_path / "l.tar", seed=1, size=300_000)
    digests = []
    for name in ("a", "b"):
        cache = Cache(tmp_path / name)
        digests.append(
            cache.add_image("alpine:3", [layer], _config(), AMD64, compression=compression)
        )
    assert digests[0] == digests[1]
    image = Cache(tmp_path / "a").image("docker.io/library/alpine:3", AMD64)
    assert image.digest == digests[0]
    assert image.reference == "docker.io/library/alpine:3"
    assert image.config.entrypoint == ("/bin/sh",)
    assert image.config.labels == {"k": "v"}
    assert image.config.architecture == "amd64"
    with image.open_layer(image.layers[0]) as stream:
        assert stream.read() == layer.read_bytes()
    entry = json.loads((tmp_path / "a/index.json").read_text())["manifests"][0]
    assert entry["annotations"] == {REF_NAME: "docker.io/library/alpine:3"}
    assert entry["digest"] == digests[0]


def test_corrupt_layer_names_image_and_blob_and_is_dropped(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cache.add_image("x/y:1", [make_layer(tmp_path / "l.tar", seed=2)], _config(), AMD64)
    image = cache.image("x/y:1", AMD64)
    blob = image.blob_path(image.layers[0])
    raw = bytearray(blob.read_bytes())
    raw[-10] ^= 0xFF  # inside the gzip trailer/body: same size, different content
    blob.write_bytes(bytes(raw))
    with pytest.raises(CacheError) as err, image.open_layer(image.layers[0]) as stream:
        while stream.read(65536):
            pass
    assert "docker.io/x/y:1" in str(err.value)
    assert image.layers[0].digest in str(err.value)
    assert not blob.exists()
    assert cache.find("x/y:1", AMD64) is None


def test_missing_image_and_missing_layer_are_named(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    with pytest.raises(CacheError, match=r"docker.io/library/nope:1 is not in the cache"):
        cache.image("nope:1", AMD64)
    cache.add_image("x/y:1", [make_layer(tmp_path / "l.tar", seed=3)], _config(), AMD64)
    layer = cache.image("x/y:1", AMD64).layers[0]
    cache.blob_path(layer.digest).unlink()
    with pytest.raises(CacheError, match=r"image docker.io/x/y:1 is incomplete"):
        cache.image("x/y:1", AMD64)


def test_index_selects_platform_like_linuxkit(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    manifests = []
    for seed, plat in ((4, AMD64), (5, Platform("linux", "arm64", "v8"))):
        tag = f"x/y:1-{plat.architecture}"
        cache.add_image(tag, [make_layer(tmp_path / f"{seed}.tar", seed=seed)], _config(), plat)
        root = cache.lookup(tag)
        assert root is not None
        manifests.append(root)
    cache.add_index("x/y:1", manifests)
    # Variant ignored unless requested: arm64 matches arm64/v8.
    assert cache.image("x/y:1", ARM64).config.architecture == "arm64"
    assert cache.image("x/y:1", Platform("linux", "arm64", "v8")).digest == manifests[1].digest
    assert cache.find("x/y:1", Platform("linux", "arm64", "v7")) is None
    with pytest.raises(CacheError, match=r"does not contain target platform linux/riscv64"):
        cache.image("x/y:1", Platform.parse("linux/riscv64"))


def test_remove_keeps_blobs_other_images_use(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    shared = make_layer(tmp_path / "s.tar", seed=6)
    own = make_layer(tmp_path / "o.tar", seed=7)
    cache.add_image("x/a:1", [shared, own], _config(), AMD64)
    cache.add_image("x/b:1", [shared], _config(), AMD64)
    a = cache.image("x/a:1", AMD64)
    assert cache.remove(["x/a:1"]) == ["docker.io/x/a:1"]
    assert cache.find("x/a:1", AMD64) is None
    assert not cache.blob_path(a.layers[1].digest).exists()
    b = cache.image("x/b:1", AMD64)
    with b.open_layer(b.layers[0]) as s:
        assert s.read() == shared.read_bytes()
    sizes = {e.name: e.size for e in cache.list_entries()}
    assert set(sizes) == {"docker.io/x/b:1"}
    assert sizes["docker.io/x/b:1"] > 4096


def test_export_import_round_trip(tmp_path: Path) -> None:
    src = Cache(tmp_path / "src")
    layer = make_layer(tmp_path / "l.tar", seed=8)
    digest = src.add_image("x/y:2", [layer], _config(), AMD64)
    buf = io.BytesIO()
    assert export_image(src, "x/y:2", AMD64, buf) == digest
    second = io.BytesIO()
    export_image(src, "x/y:2", AMD64, second)
    assert buf.getvalue() == second.getvalue()  # deterministic tar
    buf.seek(0)
    dst = Cache(tmp_path / "dst")
    assert import_layout(dst, buf) == ["docker.io/x/y:2"]
    image = dst.image("x/y:2", AMD64)
    assert image.digest == digest
    with image.open_layer(image.layers[0]) as s:
        assert s.read() == layer.read_bytes()


def test_import_rejects_a_blob_whose_name_lies(tmp_path: Path) -> None:
    buf = io.BytesIO()
    fake = "sha256:" + "0" * 64
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(f"blobs/sha256/{digest_hex(fake)}")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    buf.seek(0)
    cache = Cache(tmp_path / "c")
    with pytest.raises(CacheError, match="expected " + fake):
        import_layout(cache, buf, source="bad.tar")
    assert list((tmp_path / "c/blobs/sha256").iterdir()) == []


def test_import_without_index_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w"):
        pass
    buf.seek(0)
    with pytest.raises(CacheError, match=r"no index\.json"):
        import_layout(Cache(tmp_path / "c"), buf, source="empty.tar")


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return path


def test_export_filesystem_applies_whiteouts(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    lower = _tar(tmp_path / "lower.tar", {"a/one": b"1", "a/two": b"2", "b": b"old"})
    upper = _tar(tmp_path / "upper.tar", {"a/.wh.one": b"", "b": b"new"})
    cache.add_image("x/fs:1", [lower, upper], _config(), AMD64, compression="zstd")
    buf = io.BytesIO()
    export_image(cache, "x/fs:1", AMD64, buf, fmt="filesystem")
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        files = {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }
    assert files == {"a/two": b"2", "b": b"new"}


def test_export_docker_format_has_manifest_json(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cache.add_image("x/d:1", [make_layer(tmp_path / "l.tar", seed=9)], _config(), AMD64)
    buf = io.BytesIO()
    export_image(cache, "x/d:1", AMD64, buf, fmt="docker", name="other/name:2")
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    image = cache.image("x/d:1", AMD64)
    assert manifest == [
        {
            "Config": f"blobs/sha256/{image.config_descriptor.hex}",
            "RepoTags": ["docker.io/other/name:2"],
            "Layers": [f"blobs/sha256/{image.layers[0].hex}"],
        }
    ]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == (
        "docker.io/other/name:2"
    )
