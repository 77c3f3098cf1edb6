"""One build from start to end: check formats, pull missing images, assemble, write outputs.

Every requested format is checked (known, tools present, arch, streaming rules) before any
image is pulled or any file written; outputs appear only when every format succeeded.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from distrokit.config.model import Config
from distrokit.env import user_cache_dir
from distrokit.formats.initrd import Compression, SegmentCache
from distrokit.formats.outputs import Outputs
from distrokit.formats.registry import BuildSettings, Format, check_request
from distrokit.host import Host
from distrokit.leftovers import sweep, temp_prefix
from distrokit.oci.cache import Cache
from distrokit.oci.image import Platform
from distrokit.oci.pull import PullOptions, pull
from distrokit.system.assemble import assemble, image_refs
from distrokit.system.inputtar import reuse_from_tar
from distrokit.system.sbom import SbomOptions


def default_build_cache() -> Path:
    """Where reusable build products live: ``$XDG_CACHE_HOME/distrokit/build``."""
    return user_cache_dir("build")


@dataclass(frozen=True)
class BuildRequest:
    """What to build and where."""

    formats: tuple[str, ...]
    name: str
    directory: Path = Path()
    single_output: str | None = None
    platform: Platform = field(default_factory=lambda: Platform("linux", "amd64"))
    compression: Compression = field(default_factory=Compression)
    # None disables reuse of converted segments (every build starts cold).
    build_cache: Path | None = None
    size_mb: int = 1024
    decompress_kernel: bool = False
    input_tar: Path | None = None
    # None: no SBOM (library callers); the command line passes LinuxKit's default (one).
    sbom: SbomOptions | None = None


@dataclass(frozen=True)
class Built:
    """What a build made: the formats (checked once, in request order) and the files written
    (none for stdout)."""

    formats: tuple[Format, ...]
    written: tuple[Path, ...]


def build(
    config: Config,
    cache: Cache,
    request: BuildRequest,
    *,
    pull_options: PullOptions | None = None,
    host: Host | None = None,
    progress: Callable[[str], None] | None = None,
) -> Built:
    """Build `request.formats` for `config`. Every format is checked (known, tools, arch,
    streaming rules) here, once, before any image is pulled."""
    host = host or Host()
    chosen = check_request(
        request.formats,
        single_output=request.single_output,
        arch=request.platform.architecture,
        host=host,
    )
    refs = image_refs(config)
    pulled = pull(cache, refs, request.platform, options=pull_options) if refs else []
    images = dict(zip(refs, pulled, strict=True))
    store = request.build_cache
    segments = SegmentCache(store / "segments") if store is not None else None
    # The build directory of a killed build (its pid is in the name) goes first.
    sweep(Path(tempfile.gettempdir()), "distrokit-build-")
    with tempfile.TemporaryDirectory(prefix=temp_prefix("distrokit-build-")) as tmp:
        system = assemble(
            config,
            images,
            Path(tmp),
            store / "kernels" if store else None,
            cache,
            decompress_kernel=request.decompress_kernel,
            sbom=request.sbom,
        )
        if request.input_tar is not None:
            system = reuse_from_tar(system, config, request.input_tar)
        settings = BuildSettings(
            compression=request.compression,
            segment_cache=segments,
            progress=progress,
            host=host,
            arch=request.platform.architecture,
            size_mb=request.size_mb,
            workdir=Path(tmp),
        )
        with Outputs(request.directory, request.name, request.single_output) as outputs:
            for fmt in chosen:
                fmt.build(system, outputs, settings)
    if segments is not None:
        segments.prune()
    return Built(tuple(chosen), tuple(outputs.written))
