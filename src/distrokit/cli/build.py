"""``distrokit build``: LinuxKit's build command line (every flag), ``--dry-run`` and the build.

Flags that only depend on each other are checked here, before any YAML is read, with LinuxKit's
messages; each flag is parsed once. Format names, tools and streaming rules are checked once,
by the pipeline, before any image is pulled.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from distrokit.arch import oci_arch
from distrokit.cli.registry_flags import positive_seconds, timeout_flag
from distrokit.cli.validate import host_files_flag, load_inputs, report_problems
from distrokit.config.dump import dump_yaml
from distrokit.config.model import Config
from distrokit.errors import ConfigError, UsageError
from distrokit.formats import registry
from distrokit.formats.disk import parse_size_mib
from distrokit.formats.initrd import Compression
from distrokit.oci.cache import Cache, default_cache_dir
from distrokit.oci.endpoints import parse_mirrors
from distrokit.oci.image import Platform, host_platform
from distrokit.oci.pull import PullOptions
from distrokit.pipeline import BuildRequest, build, default_build_cache
from distrokit.system.sbom import SbomOptions

DEFAULT_FORMAT = "kernel+initrd"
STREAM_DEFAULT_FORMAT = "tar"
DEFAULT_SIZE = "1024M"
DEFAULT_SBOM = "sbom.spdx.json"
COMPRESSIONS = ("gzip", "zstd", "none")


def requested_formats(args: argparse.Namespace, config: Config) -> tuple[str, ...]:
    """Formats from ``-f`` (repeatable, comma lists), else the YAML's legacy ``outputs:``,
    else LinuxKit's default (``tar`` when writing a single stream with ``--o``)."""
    named = [f.strip() for value in args.format or () for f in value.split(",") if f.strip()]
    if named:
        return tuple(dict.fromkeys(named))
    if config.default_formats:
        return config.default_formats
    return (STREAM_DEFAULT_FORMAT if args.output else DEFAULT_FORMAT,)


def output_name(args: argparse.Namespace) -> str:
    """``--name``, else the first YAML's base name without extension (``moby`` for stdin)."""
    if args.name:
        return str(args.name)
    first = args.files[0]
    if first == "-":
        return "moby"
    base = Path(first.rstrip("/")).name
    for suffix in (".yml", ".yaml"):
        base = base.removesuffix(suffix)
    return base


def check_flags(args: argparse.Namespace) -> None:
    """Combinations LinuxKit refuses before reading any YAML."""
    if args.output and (args.name or args.dir):
        raise UsageError("the --o option cannot be specified with --name or --dir")
    if args.input_tar and args.pull:
        raise UsageError("cannot use --input-tar and --pull together")
    if args.input_tar and args.output and Path(args.input_tar) == Path(args.output):
        raise UsageError("input-tar and output file cannot be the same")


def check_formats(args: argparse.Namespace, formats: tuple[str, ...]) -> None:
    """Format-count rules that do not need the registry."""
    if args.output and len(formats) > 1:
        raise UsageError(
            "the --o option can only be specified when generating a single output format"
        )


def _build(args: argparse.Namespace, config: Config, size_mb: int, platform: Platform) -> int:
    """Build the requested outputs (provided by the build layer)."""
    request = _build_request(args, config, size_mb, platform)
    cache = Cache(Path(args.cache).expanduser() if args.cache else default_cache_dir())
    options = PullOptions(
        always=args.pull,
        mirrors=parse_mirrors(args.mirror or _env_mirrors()),
        cert_files=tuple(Path(c) for c in args.cert_file),
        timeout=positive_seconds(args),
    )
    with _terminate_as_interrupt():
        built = build(config, cache, request, pull_options=options, progress=_log.info)
    _log.info("Create outputs:")
    for fmt in built.formats:
        _log.info("  %s", " ".join(fmt.files(request.name)))
    return 0


_log = logging.getLogger("distrokit.cli.build")


def _build_request(
    args: argparse.Namespace, config: Config, size_mb: int, platform: Platform
) -> BuildRequest:
    return BuildRequest(
        formats=requested_formats(args, config),
        name=output_name(args),
        directory=Path(args.dir or "."),
        single_output=args.output,
        platform=platform,
        compression=Compression(args.compress or "gzip"),
        build_cache=default_build_cache(),
        size_mb=size_mb,
        decompress_kernel=args.decompress_kernel,
        input_tar=Path(args.input_tar) if args.input_tar else None,
        sbom=SbomOptions(
            enabled=not args.no_sbom, path=args.sbom_output, current_time=args.sbom_current_time
        ),
    )


def _env_mirrors() -> list[str]:
    """``LINUXKIT_MIRROR`` (space or comma separated), used when no --mirror is given."""
    return os.environ.get("LINUXKIT_MIRROR", "").replace(",", " ").split()


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM during a build unwinds like Ctrl-C, so partial outputs are removed."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (tests): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    check_flags(args)
    size_mb = parse_size_mib(args.size)
    platform = Platform("linux", oci_arch(args.arch)) if args.arch else host_platform()
    try:
        config = load_inputs(args.files, host_files=args.allow_host_files)
    except ConfigError as err:
        return report_problems(err)
    check_formats(args, requested_formats(args, config))
    if args.dry_run:
        sys.stdout.write(dump_yaml(config))
        return 0
    return _build(args, config, size_mb, platform)


def _add_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "-f",
        "--format",
        action="append",
        metavar="FORMAT",
        help=f"output format, repeatable or comma separated (default {DEFAULT_FORMAT})",
    )
    add("--name", help="base name of the outputs (default: the first YAML's name)")
    add("--dir", help="directory for the outputs (default: current directory)")
    add(
        "-o",
        "--o",
        "--output",
        dest="output",
        metavar="FILE",
        help="write a single output to FILE ('-' for stdout)",
    )
    add("--size", default=DEFAULT_SIZE, help=f"disk size for disk formats (default {DEFAULT_SIZE})")
    add("--pull", action="store_true", help="always fetch images from the registry")
    add("--docker", action="store_true", help="accepted for compatibility; there is no daemon")
    add("--decompress-kernel", action="store_true", help="store the kernel uncompressed")
    add(
        "--arch",
        help="target architecture, amd64/x86_64 or arm64/aarch64 (default: this machine's)",
    )
    add("--cache", help="image cache directory")
    add("--input-tar", metavar="TAR", help="reuse unchanged parts of a previous tar build")
    add("--no-sbom", action="store_true", help="do not add an SBOM")
    add("--sbom-output", default=DEFAULT_SBOM, help=f"SBOM path in the image ({DEFAULT_SBOM})")
    add("--sbom-current-time", action="store_true", help="use the current time in the SBOM")
    add("--dry-run", action="store_true", help="print the merged configuration and exit")
    add("--compress", choices=COMPRESSIONS, help="initrd compression (default gzip)")
    add(
        "--mirror",
        action="append",
        default=[],
        metavar="[REGISTRY=]URL",
        help="registry mirror, repeatable",
    )
    timeout_flag(parser)
    add(
        "--cert-file",
        action="append",
        default=[],
        metavar="FILE",
        help="extra CA certificate for registries, repeatable",
    )
    add("files", nargs="+", metavar="FILE", help="YAML file, '-' or URL")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``build`` command."""
    parser = subparsers.add_parser(
        "build",
        help="build a system from LinuxKit YAML",
        description="Build outputs from one or more LinuxKit YAML files (merged in order).",
        epilog="output formats:\n" + registry.help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_flags(parser)
    host_files_flag(parser)
    parser.set_defaults(func=_run)
