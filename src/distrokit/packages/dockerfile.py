"""Packages with a Dockerfile, built by buildah (no daemon) and imported into the image cache.

distrokit does not interpret Dockerfiles: when buildah is absent the build stops with a clear
error. buildah runs with the vfs storage driver and chroot isolation so it works without
overlayfs or user namespaces; the result is exported as an OCI layout and its layers are stored
in the cache as ``<tag>-<arch>`` plus an index ``<tag>``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distrokit.errors import PackageError
from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.oci.image import (
    Descriptor,
    ImageConfigBlob,
    Platform,
    decompressing_reader,
)
from distrokit.packages.tag import PackageInfo

_BUILDAH = ("buildah", "--storage-driver", "vfs")


def build_dockerfile(
    pkg: PackageInfo,
    cache: Cache,
    host: Host,
    platforms: Sequence[Platform],
    say: Callable[[str], None],
) -> str:
    """Build `pkg`'s Dockerfile for each platform with buildah; return the index digest."""
    if not host.has("buildah"):
        raise PackageError(
            f"{pkg.path}: this package has a Dockerfile and no OCI builder is installed",
            hint="install buildah (apt-get install buildah), or describe the package with a "
            "debian: block in build.yml",
        )
    manifests: list[Descriptor] = []
    for platform in platforms:
        arch_tag = f"{pkg.tag}-{platform.architecture}"
        say(f"{arch_tag}: building {pkg.spec.dockerfile} with buildah")
        with tempfile.TemporaryDirectory(prefix="distrokit-buildah-") as tmp:
            layout = Path(tmp) / "layout"
            _buildah_build(pkg, host, platform, layout)
            import_oci_layout(cache, layout, arch_tag, platform, Path(tmp))
        found = cache.lookup(arch_tag)
        if found is None:
            raise PackageError(f"{arch_tag} vanished from the cache right after it was added")
        manifests.append(found)
    return cache.add_index(pkg.tag, manifests)


def _buildah_build(pkg: PackageInfo, host: Host, platform: Platform, layout: Path) -> None:
    # chroot isolation cannot create a network namespace, so build.yml's `network: false` is
    # not enforced here (documented in docs/compatibility.md).
    local = f"localhost/distrokit-build/{pkg.spec.image}:{pkg.hash or 'latest'}"
    argv = [
        *_BUILDAH,
        "bud",
        "--isolation",
        "chroot",
        "--platform",
        str(platform),
        "-f",
        str(pkg.path / pkg.spec.dockerfile),
        "-t",
        local,
    ]
    if pkg.spec.config_json is not None:
        argv += ["--label", f"org.mobyproject.config={pkg.spec.config_json}"]
    for arg in pkg.spec.build_args:
        argv += ["--build-arg", arg]
    host.run([*argv, str(pkg.path)], capture=True)
    try:
        host.run([*_BUILDAH, "push", local, f"oci:{layout}"], capture=True)
    finally:
        host.run([*_BUILDAH, "rmi", local], check=False, capture=True)


def _read_json(layout: Path, digest: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_blob(layout, digest).read_bytes())
    return data


def _blob(layout: Path, digest: str) -> Path:
    algo, _, hexpart = digest.partition(":")
    return layout / "blobs" / algo / hexpart


def import_oci_layout(cache: Cache, layout: Path, ref: str, platform: Platform, work: Path) -> str:
    """Store the single image of an OCI layout directory in `cache` as `ref`."""
    index = json.loads((layout / "index.json").read_text())
    manifests = index.get("manifests") or []
    if len(manifests) != 1:
        raise PackageError(f"{layout}: expected one image in the OCI layout, got {len(manifests)}")
    manifest = _read_json(layout, manifests[0]["digest"])
    config = ImageConfigBlob.from_bytes(_blob(layout, manifest["config"]["digest"]).read_bytes())
    tars: list[Path] = []
    for i, layer in enumerate(manifest.get("layers") or []):
        out = work / f"layer-{i}.tar"
        with _blob(layout, layer["digest"]).open("rb") as raw, out.open("wb") as dst:
            reader = decompressing_reader(str(layer.get("mediaType", "")), raw)
            shutil.copyfileobj(reader, dst, 1 << 20)
        tars.append(out)
    return cache.add_image(ref, tars, config, platform)
