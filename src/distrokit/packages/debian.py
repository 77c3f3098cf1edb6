"""Debian packages: look up, download (with a verified cache) and unpack without installing.

Versions come from the host's apt lists (`apt-cache show`, candidate version, or an exact
``name=version``). Downloads go through `apt-get download` into a cache directory (default
``~/.cache/distrokit/debs``), are verified against the SHA-256 the archive index records, and
are reused on later builds. Unpacking is `dpkg-deb -x`: no maintainer scripts run, nothing is
installed on the host.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from distrokit.env import user_cache_dir
from distrokit.errors import CommandError, PackageError
from distrokit.host import Host

log = logging.getLogger(__name__)

# apt-get refuses to download as root into a directory the _apt user cannot write; the files
# are verified against the index's SHA-256 here, so the sandbox adds nothing.
_APT_OPTIONS = ("-o", "APT::Sandbox::User=root", "-q")


@dataclass(frozen=True, kw_only=True)
class DebInfo:
    """One binary package version as the apt index describes it."""

    name: str
    version: str
    architecture: str
    sha256: str
    depends: str = ""

    @property
    def file_name(self) -> str:
        """Cache file name (the epoch's ':' escaped as apt-get download does)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.architecture}.deb"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/distrokit/debs`` (``~/.cache/distrokit/debs``)."""
    return user_cache_dir("debs")


def _fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith((" ", "\t")) and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def lookup(host: Host, spec: str) -> DebInfo:
    """The version apt would download for `spec` (``name`` or ``name=version``)."""
    try:
        out = host.output(["apt-cache", "show", "--no-all-versions", spec])
    except CommandError as err:
        raise PackageError(
            f"Debian package '{spec}' is not known to apt",
            hint="check the name; run 'apt-get update' (scripts/setup does) to refresh the lists",
        ) from err
    fields = _fields(out.split("\n\n")[0])
    if "Package" not in fields or "SHA256" not in fields:
        raise PackageError(f"Debian package '{spec}' has no downloadable version")
    return DebInfo(
        name=fields["Package"],
        version=fields["Version"],
        architecture=fields["Architecture"],
        sha256=fields["SHA256"],
        depends=fields.get("Depends", "")
        + ("," + fields["Pre-Depends"] if "Pre-Depends" in fields else ""),
    )


def direct_depends(info: DebInfo) -> list[str]:
    """Names of a package's direct dependencies (first alternative of each, no versions)."""
    names = []
    for clause in info.depends.split(","):
        first = clause.split("|")[0].strip()
        name = re.split(r"[\s(:]", first, maxsplit=1)[0]
        if name:
            names.append(name)
    return names


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(host: Host, info: DebInfo, cache_dir: Path) -> Path:
    """The verified .deb of `info` in `cache_dir`, downloaded with apt-get when missing."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / info.file_name
    if target.exists():
        if _sha256(target) == info.sha256:
            return target
        log.warning("%s does not match its SHA-256; downloading it again", target)
        target.unlink()
    log.info("downloading %s %s", info.name, info.version)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        spec = f"{info.name}={info.version}"
        host.run(["apt-get", *_APT_OPTIONS, "download", spec], cwd=tmp, capture=True)
        debs = list(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            raise PackageError(f"apt-get download {spec} gave {len(debs)} files, expected one")
        got = _sha256(debs[0])
        if got != info.sha256:
            raise PackageError(
                f"{info.name} {info.version}: SHA-256 {got} does not match the index "
                f"({info.sha256})",
                hint="run 'apt-get update' and retry",
            )
        debs[0].rename(target)
    return target


def unpack(host: Host, deb: Path, dest: Path) -> None:
    """Extract the data of `deb` into `dest` (no maintainer scripts, nothing installed)."""
    dest.mkdir(parents=True, exist_ok=True)
    host.run(["dpkg-deb", "-x", str(deb), str(dest)])


def resolve_packages(
    host: Host, packages: Iterable[str], metapackages: Iterable[str]
) -> list[DebInfo]:
    """Look up the listed packages plus the direct dependencies of each metapackage."""
    infos = [lookup(host, p) for p in packages]
    for meta in metapackages:
        infos.extend(lookup(host, dep) for dep in direct_depends(lookup(host, meta)))
    unique = {i.name: i for i in infos}
    return [unique[n] for n in sorted(unique)]
