"""Building a package into the image cache: from Debian packages, or a Dockerfile via buildah.

A `debian:` package is assembled without any container engine: the listed .debs are unpacked
into a staging tree, the selected files (binaries with their library closure, paths, archives,
files from the package directory, kernels compiled from a source package) are planned, and
one deterministic layer tar is written and stored with `Cache.add_image` as ``<tag>-<arch>``
plus an index ``<tag>`` (LinuxKit's layout).
The same inputs always give the same digests.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from distrokit.env import source_date_epoch
from distrokit.errors import PackageError
from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.oci.image import ImageConfigBlob, Platform, host_platform
from distrokit.packages import debian
from distrokit.packages.buildyml import DebianSpec
from distrokit.packages.kernelbuild import build_kernel
from distrokit.packages.layer import write_tar
from distrokit.packages.plan import plan_debian_image
from distrokit.packages.tag import PackageInfo
from distrokit.system.sbom import DEBIAN_VERSIONS_LABEL

log = logging.getLogger(__name__)

MOBY_CONFIG_LABEL = "org.mobyproject.config"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """What `pkg build` was asked to do (LinuxKit's flags that matter without buildkit)."""

    force: bool = False
    platforms: tuple[Platform, ...] = ()
    deb_cache: Path = field(default_factory=debian.default_cache_dir)


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """One built (or already cached) package."""

    tag: str
    digest: str
    platforms: tuple[Platform, ...]
    built: bool


def platforms_for(pkg: PackageInfo, options: BuildOptions) -> tuple[Platform, ...]:
    """The platforms to build: --platforms, else the host's if build.yml's arches allow it."""
    if options.platforms:
        wanted = options.platforms
    else:
        wanted = tuple(p for p in [host_platform()] if p.architecture in pkg.spec.arches)
        if not wanted:
            raise PackageError(
                f"{pkg.path}: build.yml arches {list(pkg.spec.arches)} exclude this host "
                f"({host_platform()})",
                hint="pass --platforms",
            )
    host_arch = host_platform().architecture
    foreign = [p for p in wanted if p.architecture != host_arch]
    if foreign and pkg.spec.debian is not None:
        raise PackageError(
            f"{pkg.path}: Debian-based packages are built for the host architecture only "
            f"({host_arch}); {', '.join(map(str, foreign))} requested"
        )
    return wanted


def build_package(
    pkg: PackageInfo,
    cache: Cache,
    host: Host,
    options: BuildOptions,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build `pkg` into `cache` unless it is already there (or `options.force`)."""
    say = progress or (lambda _msg: None)
    plats = platforms_for(pkg, options)
    existing = cache.lookup(pkg.tag)
    if existing is not None and not options.force:
        say(f"{pkg.tag}: already in the cache")
        return BuildResult(tag=pkg.tag, digest=existing.digest, platforms=plats, built=False)
    if pkg.spec.debian is not None:
        digest = _build_debian(
            pkg,
            spec=pkg.spec.debian,
            cache=cache,
            host=host,
            options=options,
            platform=plats[0],
            say=say,
        )
    elif (pkg.path / pkg.spec.dockerfile).is_file():
        from distrokit.packages.dockerfile import build_dockerfile

        digest = build_dockerfile(pkg, cache, host, plats, say)
    else:
        raise PackageError(
            f"{pkg.path}: nothing to build: no debian: block in build.yml and no "
            f"{pkg.spec.dockerfile}"
        )
    return BuildResult(tag=pkg.tag, digest=digest, platforms=plats, built=True)


def image_config(pkg: PackageInfo, versions: list[str], platform: Platform) -> ImageConfigBlob:
    """The image config of a Debian-built package: labels, PATH, platform; no timestamps."""
    labels: dict[str, str] = {}
    if pkg.spec.config_json is not None:
        labels[MOBY_CONFIG_LABEL] = pkg.spec.config_json
    if versions:
        labels[DEBIAN_VERSIONS_LABEL] = " ".join(versions)
    return ImageConfigBlob(
        env=(DEFAULT_PATH,),
        labels=labels,
        architecture=platform.architecture,
        os=platform.os,
        variant=platform.variant,
    )


def _build_debian(
    pkg: PackageInfo,
    *,
    spec: DebianSpec,
    cache: Cache,
    host: Host,
    options: BuildOptions,
    platform: Platform,
    say: Callable[[str], None],
) -> str:
    depmod = ["depmod"] if any(a.depmod for a in spec.archives) else []
    host.check_tools(["apt-cache", "apt-get", "dpkg-deb", *depmod])
    infos = debian.resolve_packages(host, spec.packages, spec.metapackages)
    debs = [debian.fetch(host, info, options.deb_cache) for info in infos]
    versions = [f"{i.name}={i.version}" for i in infos]
    say(f"{pkg.tag}: building from {', '.join(versions) or 'package files only'}")
    with tempfile.TemporaryDirectory(prefix="distrokit-pkg-") as tmp:
        work = Path(tmp)
        staging = work / "root"
        staging.mkdir()
        for deb in debs:
            debian.unpack(host, deb, staging)
        built = _compile_kernels(pkg, spec, staging=staging, work=work, host=host, say=say)
        layer = work / "layer.tar"
        plan_debian_image(
            pkg,
            spec=spec,
            staging=staging,
            work=work,
            versions=versions,
            layer=layer,
            host=host,
            built=built,
        )
        arch_tag = f"{pkg.tag}-{platform.architecture}"
        cache.add_image(arch_tag, [layer], image_config(pkg, versions, platform), platform)
        manifest = cache.lookup(arch_tag)
        if manifest is None:
            raise PackageError(f"{arch_tag} vanished from the cache right after it was added")
        digest = cache.add_index(pkg.tag, [manifest])
    log.debug("built %s as %s (%s)", pkg.tag, digest, os.fspath(layer))
    return digest


def _compile_kernels(
    pkg: PackageInfo,
    spec: DebianSpec,
    *,
    staging: Path,
    work: Path,
    host: Host,
    say: Callable[[str], None],
) -> dict[str, Path]:
    """Each of `spec.kernels` compiled: image path -> file (the kernel, its empty module tar)."""
    built: dict[str, Path] = {}
    epoch = source_date_epoch(default=0)
    for index, kernel in enumerate(spec.kernels):
        found = sorted(staging.glob(kernel.source.lstrip("/")))
        if len(found) != 1:
            raise PackageError(
                f"debian.kernels: {kernel.source} matches {len(found)} files of the unpacked "
                "packages; it must match one source tarball"
            )
        built[kernel.dst] = build_kernel(
            host,
            tarball=found[0],
            fragment=pkg.path / kernel.config,
            work=work / f"kernel-{index}",
            epoch=epoch,
            say=lambda msg: say(f"{pkg.tag}: {msg}"),
        )
        if kernel.tar is not None:
            # everything is built in: LinuxKit's layout still has a module tar, empty
            empty = work / f"kernel-{index}.tar"
            with empty.open("wb") as f:
                write_tar({}, f, epoch)
            built[kernel.tar] = empty
    return built
