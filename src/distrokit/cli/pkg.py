"""`distrokit pkg build | push | show-tag DIR...`: LinuxKit's package commands, no Docker."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from distrokit.errors import PackageError
from distrokit.host import Host
from distrokit.oci.cache import Cache, default_cache_dir
from distrokit.oci.image import Platform
from distrokit.packages.builder import BuildOptions, BuildResult, build_package
from distrokit.packages.debian import default_cache_dir as default_deb_cache
from distrokit.packages.tag import PackageInfo, TagOptions, package_info


def _tag_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR", help="package directories")
    p.add_argument("--org", default=os.environ.get("LINUXKIT_PKG_ORG"), help="override org")
    p.add_argument("--hash", help="override the git tree hash")
    p.add_argument("--hash-commit", default="HEAD", help="commit to take the hash from")
    p.add_argument("--hash-path", type=Path, help="path to compute the hash of")
    p.add_argument("--force-dirty", action="store_true", help="mark the package dirty")
    p.add_argument("--dev", action="store_true", help="org=$USER and hash=dev")
    p.add_argument("--build-yml", default="build.yml", help="name of the build file")


def _build_flags(p: argparse.ArgumentParser) -> None:
    _tag_flags(p)
    p.add_argument("--force", action="store_true", help="build even if already in the cache")
    p.add_argument("--platforms", help="comma-separated os/arch list (default: the host's)")
    p.add_argument("--cache", type=Path, default=None, help="image cache directory")
    p.add_argument("--deb-cache", type=Path, default=None, help="downloaded .deb directory")


def register(subparsers: Any) -> None:
    """Add `pkg` and its subcommands."""
    pkg = subparsers.add_parser("pkg", help="build, push and tag packages")
    sub = pkg.add_subparsers(dest="pkg_command", metavar="SUBCOMMAND", required=True)
    build = sub.add_parser("build", help="build packages into the image cache")
    _build_flags(build)
    build.set_defaults(func=_cmd_build)
    push = sub.add_parser("push", help="build (if needed) and push packages to their registry")
    _build_flags(push)
    push.add_argument("--with-arch-tags", action="store_true", help="also push <tag>-<arch>")
    push.set_defaults(func=_cmd_push)
    show = sub.add_parser("show-tag", help="print the tag of each package")
    _tag_flags(show)
    show.add_argument("--canonical", action="store_true", help="print the expanded reference")
    show.set_defaults(func=_cmd_show_tag)


def _packages(args: argparse.Namespace, host: Host) -> list[PackageInfo]:
    options = TagOptions(
        org=args.org,
        hash=args.hash,
        hash_commit=args.hash_commit,
        hash_path=args.hash_path,
        force_dirty=args.force_dirty,
        dev=args.dev,
        build_yml=args.build_yml,
    )
    return [package_info(Path(d), host, options) for d in args.dirs]


def _cmd_show_tag(args: argparse.Namespace) -> int:
    for info in _packages(args, Host(debug=args.debug)):
        print(info.canonical if args.canonical else info.tag)
    return 0


def _build_all(
    args: argparse.Namespace, *, refuse_dirty: bool = False
) -> tuple[Cache, list[BuildResult]]:
    host = Host(debug=args.debug)
    infos = _packages(args, host)
    dirty = [i.tag for i in infos if i.dirty]
    if refuse_dirty and dirty:
        raise PackageError(
            f"refusing to push dirty package(s): {', '.join(dirty)}",
            hint="commit the package directories first",
        )
    platforms = tuple(Platform.parse(p) for p in (args.platforms or "").split(",") if p.strip())
    options = BuildOptions(
        force=args.force,
        platforms=platforms,
        deb_cache=args.deb_cache or default_deb_cache(),
    )
    cache = Cache(args.cache or default_cache_dir())
    results = [build_package(i, cache, host, options, progress=print) for i in infos]
    return cache, results


def _cmd_build(args: argparse.Namespace) -> int:
    _cache, results = _build_all(args)
    for r in results:
        state = "built" if r.built else "cached"
        print(f"{r.tag} {r.digest} ({state})")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from distrokit.oci.push import PushOptions, push

    cache, results = _build_all(args, refuse_dirty=True)
    for r in results:
        digest = push(cache, r.tag, options=PushOptions(with_arch_tags=args.with_arch_tags))
        print(f"pushed {r.tag} {digest}")
    return 0
