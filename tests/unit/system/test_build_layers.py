"""Flattening layers (whiteouts, opaque dirs, first-seen wins) and the 2.3 image filters."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from buildfix import MTIME, PLATFORM, F, Images, new_images

from distrokit.errors import CacheError
from distrokit.oci.cache import Cache
from distrokit.oci.flatten import flatten
from distrokit.oci.image import CachedImage, ImageConfigBlob
from distrokit.system.layers import HOSTS, NO_RESOLV, image_entries
from distrokit.tarstream import DEFAULT_MTIME, Entry, Origin, TarWriter


@pytest.fixture
def images(tmp_path: Path) -> Images:
    return new_images(tmp_path)


def _image(images: Images, *layers: list[F]) -> CachedImage:
    images.add("example.org/layers:1", *layers)
    return images.cache.image("example.org/layers:1", PLATFORM)


def _flat(image: CachedImage) -> dict[str, bytes | str | None]:
    """name -> data (files), link target (links) or None (dirs); consumes data in order."""
    out: dict[str, bytes | str | None] = {}
    for entry in flatten(len(image.layers), lambda i: image.open_layer(image.layers[i])):
        info = entry.info
        assert info.name not in out, f"{info.name} emitted twice"
        if info.isreg():
            assert entry.data is not None
            out[info.name] = entry.data.read(info.size)
        elif info.issym() or info.islnk():
            out[info.name] = "->" + info.linkname
        else:
            out[info.name] = None
    return out


def test_top_layer_wins_and_directories_are_not_repeated(images: Images) -> None:
    image = _image(
        images,
        [F("etc", "dir"), F("etc/a", data=b"lower"), F("etc/b", data=b"kept")],
        [F("./etc", "dir"), F("etc/a", data=b"upper")],
    )
    assert _flat(image) == {"etc": None, "etc/a": b"upper", "etc/b": b"kept"}


def test_whiteouts_delete_files_and_directories_of_lower_layers_only(images: Images) -> None:
    image = _image(
        images,
        [
            F("a", data=b"1"),
            F("d", "dir"),
            F("d/x", data=b"2"),
            F("d/sub", "dir"),
            F("d/sub/y", data=b"3"),
            F("keep", data=b"4"),
        ],
        [F(".wh.a"), F("d/.wh.sub"), F("new", data=b"5")],
        [F("a", data=b"re-added above the whiteout")],
    )
    assert _flat(image) == {
        "a": b"re-added above the whiteout",
        "new": b"5",
        "d": None,
        "d/x": b"2",
        "keep": b"4",
    }


def test_opaque_directory_hides_lower_contents_but_keeps_its_own(images: Images) -> None:
    image = _image(
        images,
        [
            F("d", "dir"),
            F("d/old", data=b"old"),
            F("d/sub", "dir"),
            F("d/sub/deep", data=b"x"),
            F("other", data=b"o"),
        ],
        [F("d", "dir", mode=0o700), F("d/.wh..wh..opq"), F("d/new", data=b"new")],
    )
    flat = _flat(image)
    assert flat == {"d": None, "d/new": b"new", "other": b"o"}


def test_file_in_upper_layer_hides_lower_directory_tree(images: Images) -> None:
    image = _image(images, [F("x", "dir"), F("x/inner", data=b"i")], [F("x", data=b"file")])
    assert _flat(image) == {"x": b"file"}


def _filtered(image: CachedImage, prefix: str, resolv_symlink: bool) -> list[Entry]:
    flat = flatten(len(image.layers), lambda i: image.open_layer(image.layers[i]))
    origin = Origin("example.org/layers:1", "onboot[0]")
    out = []
    for entry in image_entries(flat, prefix, origin, resolv_symlink=resolv_symlink):
        data = entry.data.read(entry.info.size) if entry.data is not None else None
        out.append(Entry(entry.info, io.BytesIO(data) if data is not None else None))
    return out


def test_image_filters_drop_replace_and_ensure(images: Images) -> None:
    image = _image(
        images,
        [
            F(".dockerenv"),
            F("Dockerfile", data=b"FROM x"),
            F("dev", "dir"),
            F("dev/console", "chr"),
            F("dev/pts", "dir"),
            F("dev/shm", "dir"),
            F("etc", "dir"),
            F("etc/hostname", data=b"h"),
            F("etc/hosts", data=b"1.2.3.4 x", mode=0o600),
            F("bin", "dir"),
            F("bin/sh", data=b"sh", mode=0o755, uid=5, gid=6),
            F("bin/ash", "link", target="bin/sh"),
        ],
    )
    entries = _filtered(image, "p/lower/", resolv_symlink=False)
    names = [e.info.name for e in entries]
    for dropped in (
        ".dockerenv",
        "Dockerfile",
        "dev/console",
        "dev/pts",
        "dev/shm",
        "etc/hostname",
    ):
        assert "p/lower/" + dropped not in names[: names.index("p/lower/bin/ash") + 1]
    # the image's own etc/hosts is replaced where it stands, keeping its mode, with
    # LinuxKit's time; the generated one is appended again after the image
    own_hosts = next(e for e in entries if e.info.name == "p/lower/etc/hosts")
    assert own_hosts.info.mode == 0o600 and own_hosts.info.mtime == DEFAULT_MTIME
    assert own_hosts.data is not None and own_hosts.data.read() == HOSTS
    by_name = {e.info.name: e for e in entries}
    hosts = by_name["p/lower/etc/hosts"]
    assert hosts.info.mode == 0o644
    assert hosts.data is not None and hosts.data.read() == HOSTS
    resolv = by_name["p/lower/etc/resolv.conf"]
    assert resolv.info.isreg() and resolv.data is not None and resolv.data.read() == NO_RESOLV
    mtab = by_name["p/lower/etc/mtab"].info
    assert mtab.linkname == "/proc/mounts" and mtab.mode == 0o755
    # hard link targets are re-prefixed; owners, modes and mtimes are kept
    assert by_name["p/lower/bin/ash"].info.linkname == "p/lower/bin/sh"
    sh = by_name["p/lower/bin/sh"].info
    assert (sh.uid, sh.gid, sh.mode, sh.mtime) == (5, 6, 0o755, MTIME)
    # ensured entries come last, directories always (LinuxKit repeats them)
    ensured = (
        *("dev", "dev/pts", "dev/shm", "etc", "etc/hosts", "etc/mtab", "etc/resolv.conf"),
        *("proc", "sys"),
    )
    assert names[names.index("p/lower/bin/ash") + 1 :] == [f"p/lower/{n}" for n in ensured]
    assert names.count("p/lower/etc") == 2
    for e in entries:
        assert e.info.pax_headers == {
            "LINUXKIT.source": "example.org/layers:1",
            "LINUXKIT.location": "onboot[0]",
        }


def test_init_images_get_a_resolv_conf_symlink(images: Images) -> None:
    image = _image(images, [F("etc", "dir"), F("etc/resolv.conf", data=b"nameserver 1.1.1.1")])
    entries = _filtered(image, "", resolv_symlink=True)
    resolv = [e.info for e in entries if e.info.name == "etc/resolv.conf"]
    # the image's own (replaced in place, its mode kept) and LinuxKit's appended one (0644)
    assert len(resolv) == 2
    assert all(r.issym() and r.linkname == "/run/resolvconf/resolv.conf" for r in resolv)
    assert all(r.mtime == DEFAULT_MTIME for r in resolv)
    assert resolv[1].mode == 0o644


def test_flatten_does_not_keep_file_contents(tmp_path: Path) -> None:
    """A 64 MiB file streams through in pieces from an uncompressed layer."""
    images = new_images(tmp_path)
    big = tmp_path / "big.tar"
    with tarfile.open(big, "w") as tar:
        info = tarfile.TarInfo("big")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(bytes(64 << 20)))
    cache: Cache = images.cache
    cache.add_image("example.org/big:1", [big], ImageConfigBlob(), PLATFORM, compression="none")
    image = cache.image("example.org/big:1", PLATFORM)
    for entry in flatten(1, lambda i: image.open_layer(image.layers[i])):
        assert entry.data is not None
        total = 0
        while piece := entry.data.read(1 << 20):
            total += len(piece)
        assert total == 64 << 20


@pytest.mark.parametrize("where", ["middle", "end"])
def test_corrupt_layer_is_a_cache_error(images: Images, where: str) -> None:
    image = _image(images, [F("a", data=bytes(range(256)) * 400), F("b", data=b"x")])
    blob = image.blob_path(image.layers[0])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2 if where == "middle" else -3] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="is corrupt"):
        _flat(image)


def test_long_names_and_xattr_records_survive_prefixing(tmp_path: Path, images: Images) -> None:
    long = "d/" + "n" * 150
    layer = tmp_path / "pax.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(long)
        info.size = 1
        info.pax_headers = {"SCHILY.xattr.security.capability": "caps"}
        tar.addfile(info, io.BytesIO(b"x"))
    images.cache.add_image("example.org/pax:1", [layer], ImageConfigBlob(), PLATFORM)
    image = images.cache.image("example.org/pax:1", PLATFORM)
    out = io.BytesIO()

    with TarWriter(out) as writer:
        writer.write_all(_filtered(image, "containers/services/x/lower/", resolv_symlink=False))
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        member = tar.getmember("containers/services/x/lower/" + long)
        assert member.pax_headers["SCHILY.xattr.security.capability"] == "caps"
        assert member.pax_headers["LINUXKIT.location"] == "onboot[0]"
