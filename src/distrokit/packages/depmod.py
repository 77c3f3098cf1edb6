"""Module indexes (modules.dep, modules.alias...) made when a package is built, not at boot.

Debian's linux-image .deb carries no modules.dep (its postinst runs depmod on the installed
system), and an archive that keeps only some modules must not list the others anyway. So an
archive with ``depmod: true`` gets the indexes of exactly the modules it keeps: the selected
files are linked into a scratch ``lib/modules/RELEASE`` tree and kmod's ``depmod -b`` runs on
it. kmod's depmod rather than a modules.dep computed here: it writes every index in the
format the readers expect (the text modules.dep/modules.alias/modules.symbols busybox modprobe
reads, the .bin indexes kmod's modprobe in a container needs, modules.softdep and
modules.devname), it resolves dependencies from the modules' symbols as the kernel does, and
on the same inputs it writes the same bytes. It runs without root: it only reads the modules
and writes into the scratch tree. The host's depmod.d configuration is not read (an empty
config directory is passed), so only kmod's version can change the output.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from distrokit.errors import PackageError
from distrokit.host import Host

log = logging.getLogger(__name__)

DEPMOD = "depmod"


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def module_indexes(host: Host, files: Mapping[str, Path], work: Path) -> dict[str, Path]:
    """The indexes kmod's depmod writes for exactly `files`.

    `files` maps a path under a modules directory (``RELEASE/kernel/fs/ext4/ext4.ko``,
    ``RELEASE/modules.order``) to the file on disk. The result maps ``RELEASE/modules.*`` to
    each index depmod wrote (an input index such as modules.dep is replaced by its output).
    """
    releases = sorted({rel.split("/", 1)[0] for rel in files if "/" in rel})
    if not releases:
        raise PackageError(
            "depmod: the archive has no kernel release directory (RELEASE/...) to index"
        )
    tree = work / "lib/modules"
    for rel, src in files.items():
        _link(src, tree / rel)
    config = work / "depmod.d"
    config.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for release in releases:
        proc = host.run([DEPMOD, "-b", work, "-C", config, release], capture=True)
        for line in proc.stderr.decode(errors="replace").splitlines():
            log.debug("%s", line)
        for index in sorted((tree / release).glob("modules.*")):
            if not index.is_file():
                continue
            rel = f"{release}/{index.name}"
            source = files.get(rel)
            if source is None or not index.samefile(source):
                out[rel] = index
    return out
