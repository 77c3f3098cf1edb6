"""The ``tar`` format: the whole root tree as one PAX tar (``NAME.tar``), streamable."""

from __future__ import annotations

from distrokit.formats.outputs import Outputs
from distrokit.formats.registry import BuildSettings, Format, register
from distrokit.system.assemble import System, all_entries
from distrokit.tarstream import TarWriter


def tar_files(name: str) -> tuple[str, ...]:
    """Output file names."""
    return (f"{name}.tar",)


def build_tar(system: System, outputs: Outputs, settings: BuildSettings) -> None:
    """Stream every entry of `system` into ``NAME.tar``."""
    out = outputs.open(tar_files(outputs.name)[0])
    with TarWriter(out) as tar:
        tar.write_all(all_entries(system.parts, settings.progress))


register(
    Format(
        name="tar",
        files=tar_files,
        build=build_tar,
        streamable=True,
        help="root filesystem as a PAX tar (NAME.tar)",
    )
)
