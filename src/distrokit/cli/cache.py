"""`distrokit cache ls | rm | clean | pull | push | import | export`, LinuxKit's cache commands.

Also renders pull progress: a bar per image on a terminal, one quiet line per image otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from distrokit.cli.registry_flags import registry_flags as _registry_flags
from distrokit.cli.registry_flags import registry_options as _registry_options
from distrokit.config.load import load_config
from distrokit.config.model import Config
from distrokit.errors import CacheError, DistrokitError, RegistryError, UsageError
from distrokit.oci.cache import Cache, check_cache_dir, default_cache_dir
from distrokit.oci.endpoints import RegistryOptions
from distrokit.oci.image import INDEX_TYPES, Platform, host_platform
from distrokit.oci.layout import EXPORT_FORMATS, export_image, import_layout
from distrokit.oci.pull import Progress, PullOptions, pull
from distrokit.oci.push import PushOptions, push
from distrokit.oci.registry import RegistryClient
from distrokit.packages.tag import show_tag
from distrokit.reference import parse_reference


def _cache_flag(p: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    # Accepted before or after the subcommand, like LinuxKit's persistent flag; SUPPRESS keeps
    # a subcommand's parser from overwriting a value given before it.
    p.add_argument(
        "--cache",
        type=Path,
        default=default,
        help="image cache directory (default $LINUXKIT_CACHE or ~/.linuxkit/cache)",
    )


def register(subparsers: Any) -> None:
    """Add `cache` and its subcommands."""
    cache = subparsers.add_parser("cache", help="manage the local image cache")
    _cache_flag(cache, default=None)
    sub = cache.add_subparsers(dest="cache_command", metavar="SUBCOMMAND", required=True)
    _register_local(sub)
    _register_remote(sub)


def _register_local(sub: Any) -> None:
    """Subcommands that only touch the cache (plus a registry check for --published-only)."""
    ls = sub.add_parser("ls", help="list images in the cache with their sizes")
    _cache_flag(ls)
    ls.set_defaults(func=_cmd_ls)

    rm = sub.add_parser("rm", help="remove images from the cache")
    _cache_flag(rm)
    _registry_flags(rm)
    rm.add_argument("images", nargs="+", metavar="IMAGE")
    rm.add_argument(
        "--published-only", action="store_true", help="only remove images the registry has"
    )
    rm.set_defaults(func=_cmd_rm)

    clean = sub.add_parser("clean", help="empty the cache")
    _cache_flag(clean)
    _registry_flags(clean)
    clean.add_argument(
        "--published-only", action="store_true", help="only remove images the registry has"
    )
    clean.add_argument(
        "--keep", action="append", default=[], type=Path, metavar="FILE.yml",
        help="keep images named in this YAML configuration (repeatable)",
    )  # fmt: skip
    clean.set_defaults(func=_cmd_clean)

    im = sub.add_parser("import", help="import an OCI layout tar into the cache")
    _cache_flag(im)
    im.add_argument("tar", help="OCI layout tar file, or - for stdin")
    im.set_defaults(func=_cmd_import)

    ex = sub.add_parser("export", help="export an image from the cache as a tar")
    _cache_flag(ex)
    ex.add_argument("image", metavar="IMAGE")
    ex.add_argument(
        "--format",
        default="oci",
        choices=sorted(EXPORT_FORMATS),
        help="; ".join(f"{f.name}: {f.description}" for f in EXPORT_FORMATS.values()),
    )
    ex.add_argument("--platform", help="os/arch to export (default: the host's)")
    ex.add_argument("--outfile", default="-", help="output file (default: stdout)")
    ex.add_argument("--name", help="image name to record in the tar")
    ex.set_defaults(func=_cmd_export)


def _register_remote(sub: Any) -> None:
    """Subcommands that talk to registries."""
    pl = sub.add_parser("pull", help="pull images into the cache")
    _cache_flag(pl)
    _registry_flags(pl)
    pl.add_argument("images", nargs="+", metavar="IMAGE")
    pl.add_argument("--arch", help="architecture to pull (default: the host's)")
    pl.add_argument("--platform", help="os/arch[/variant] to pull (overrides --arch)")
    pl.add_argument("--pull", "--force", dest="always", action="store_true",
                    help="ask the registry even if the cache has the image")  # fmt: skip
    pl.set_defaults(func=_cmd_pull)

    ps = sub.add_parser("push", help="push images from the cache to their registry")
    _cache_flag(ps)
    _registry_flags(ps)
    ps.add_argument("images", nargs="+", metavar="IMAGE")
    ps.add_argument("--remote-name", help="push under this name (one image only)")
    ps.add_argument("--with-arch-tags", action="store_true", help="also push <tag>-<arch>")
    ps.add_argument(
        "--override", action="store_true", help="push even if the registry has the same image"
    )
    ps.set_defaults(func=_cmd_push)


def _open_cache(args: argparse.Namespace) -> Cache:
    return Cache(args.cache or default_cache_dir())


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _cmd_ls(args: argparse.Namespace) -> int:
    entries = _open_cache(args).list_entries()
    rows = [(e.name, e.descriptor.digest, _human(e.size)) for e in entries]
    width = max([len("IMAGE"), *(len(r[0]) for r in rows)])
    print(f"{'IMAGE':<{width}}  {'ROOT MANIFEST':<71}  SIZE")
    for name, digest, size in sorted(rows):
        print(f"{name:<{width}}  {digest:<71}  {size}")
    return 0


def _published(args: argparse.Namespace, cache: Cache, name: str) -> bool:
    """Whether the registry has the same root digest the cache has for `name`."""
    ref = parse_reference(name)
    root = cache.lookup(ref)
    with RegistryClient(RegistryOptions(**_registry_options(args))) as client:
        ep = next(e for e in client.endpoints(ref.domain) if not e.mirror)
        try:
            _, body = client.get_manifest(ep, ref, ref.identifier)
        except RegistryError:
            return False
    return root is not None and "sha256:" + hashlib.sha256(body).hexdigest() == root.digest


def _cmd_rm(args: argparse.Namespace) -> int:
    cache = _open_cache(args)
    names = args.images
    if args.published_only:
        names = [n for n in names if _published(args, cache, n)]
    for name in cache.remove(names):
        print(f"removed {name}")
    return 0


def _kept_images(paths: list[Path]) -> set[str]:
    """Expanded references of every image the configurations name (kernel, init, ...)."""
    names: set[str] = set()
    for path in paths:
        config = load_config([str(path)], resolve_pkg=show_tag)
        names.update(str(parse_reference(image)) for image in _config_images(config))
    return names


def _config_images(config: Config) -> Iterator[str]:
    if config.kernel.image:
        yield config.kernel.image
    yield from config.init
    for entry in (*config.onboot, *config.onshutdown, *config.services):
        yield entry.image
    for volume in config.volumes:
        if volume.image:
            yield volume.image


def _cmd_clean(args: argparse.Namespace) -> int:
    root = args.cache or default_cache_dir()
    if not args.keep and not args.published_only:
        # LinuxKit removes the whole directory, whatever it holds; we first check it is a cache.
        check_cache_dir(root)
        try:
            shutil.rmtree(root)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise CacheError(f"cannot remove image cache {root}: {err}") from err
        print(f"removed cache {root}")
        return 0
    cache = Cache(root)
    keep = _kept_images(args.keep) if args.keep else set()
    names = [e.name for e in cache.list_entries()]
    names = [n for n in names if n not in keep and n.rsplit("-", 1)[0] not in keep]
    if args.published_only:
        names = [n for n in names if _published(args, cache, n)]
    for name in cache.remove(names):
        print(f"removed {name}")
    return 0


class _ProgressPrinter:
    """One bar per image on a terminal (redrawn in place), one line per image otherwise."""

    def __init__(self, out: IO[str], quiet: bool) -> None:
        self.out, self.quiet = out, quiet
        self.tty = out.isatty()

    def __call__(self, p: Progress) -> None:
        if self.quiet:
            return
        if p.finished:
            state = "cached" if p.cached else f"pulled {_human(p.done)}"
            end = "\r\033[K" if self.tty else ""
            self.out.write(f"{end}{p.image}: {state}\n")
        elif self.tty and p.total:
            width = 30
            filled = int(width * p.done / p.total)
            bar = "#" * filled + "-" * (width - filled)
            self.out.write(f"\r\033[K{p.image} [{bar}] {_human(p.done)}/{_human(p.total)}")
        self.out.flush()


def _platform(args: argparse.Namespace) -> Platform:
    if getattr(args, "platform", None):
        return Platform.parse(args.platform)
    if getattr(args, "arch", None):
        return Platform.parse(f"linux/{args.arch}")
    return host_platform()


def _cmd_pull(args: argparse.Namespace) -> int:
    cache = _open_cache(args)
    options = PullOptions(always=args.always, **_registry_options(args))
    platform = _platform(args)
    images = pull(cache, args.images, platform, options=options,
                  progress=_ProgressPrinter(sys.stderr, args.quiet))  # fmt: skip
    for image in images:
        # Like LinuxKit's cache pull: an index also gets the name <ref>-<arch>.
        ref = parse_reference(image.reference)
        root = cache.lookup(ref)
        if ref.tag and not ref.digest and root is not None and root.media_type in INDEX_TYPES:
            arch_ref = ref.with_tag(f"{ref.tag}-{platform.architecture}")
            cache.record(arch_ref, image.manifest)
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    if args.remote_name and len(args.images) > 1:
        raise UsageError("--remote-name can only be used with a single image")
    cache = _open_cache(args)
    options = PushOptions(
        with_arch_tags=args.with_arch_tags, override=args.override, **_registry_options(args)
    )
    for image in args.images:
        digest = push(cache, image, remote_name=args.remote_name, options=options)
        print(f"pushed {args.remote_name or parse_reference(image)} {digest}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    cache = _open_cache(args)
    if args.tar == "-":
        names = import_layout(cache, sys.stdin.buffer, source="standard input")
    else:
        try:
            with Path(args.tar).open("rb") as f:
                names = import_layout(cache, f, source=args.tar)
        except OSError as err:
            raise UsageError(f"cannot read {args.tar}: {err.strerror}") from err
    for name in names:
        print(f"imported {name}")
    return 0


@contextlib.contextmanager
def _output(path: str) -> Iterator[IO[bytes]]:
    """stdout, or a temp file renamed to `path` only when writing succeeded."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or Path(), prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cmd_export(args: argparse.Namespace) -> int:
    cache = _open_cache(args)
    try:
        with _output(args.outfile) as out:
            export_image(cache, args.image, _platform(args), out, fmt=args.format, name=args.name)
    except OSError as err:
        raise DistrokitError(f"cannot write {args.outfile}: {err}") from err
    return 0
