"""The ``docker`` format: the root tree plus a ``Dockerfile`` (``NAME.docker``), streamable.

The result can be given to ``docker build -`` / ``docker import``: a scratch image whose
entrypoint is LinuxKit's ``rc.init``.
"""

from __future__ import annotations

from distrokit.formats.outputs import Outputs
from distrokit.formats.registry import BuildSettings, Format, register
from distrokit.system.assemble import SBOM_LOCATION, System, all_entries
from distrokit.tarstream import Origin, TarWriter, regular

DOCKERFILE = b"""FROM scratch
COPY . ./
RUN rm -f Dockerfile
ENTRYPOINT ["/bin/rc.init"]
"""
DOCKERFILE_ORIGIN = Origin("linuxkit.dockerfile", "dockerfile")


def docker_files(name: str) -> tuple[str, ...]:
    """Output file names."""
    return (f"{name}.docker",)


def build_docker(system: System, outputs: Outputs, settings: BuildSettings) -> None:
    """The tar of `system` with the Dockerfile entry after the tree (before the SBOM, which
    LinuxKit writes last)."""
    out = outputs.open(docker_files(outputs.name)[0])
    tree = [p for p in system.parts if p.location != SBOM_LOCATION]
    sbom = [p for p in system.parts if p.location == SBOM_LOCATION]
    with TarWriter(out) as tar:
        tar.write_all(all_entries(tree, settings.progress))
        tar.write(regular("Dockerfile", DOCKERFILE, DOCKERFILE_ORIGIN, mode=0o644))
        tar.write_all(all_entries(sbom, settings.progress))


register(
    Format(
        name="docker",
        files=docker_files,
        build=build_docker,
        streamable=True,
        help="root filesystem tar with a Dockerfile (NAME.docker)",
    )
)
