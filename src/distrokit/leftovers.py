"""Temporary files a killed run leaves behind, named so that the next run can remove them.

A temporary name made with `temp_prefix` carries the pid namespace and process id of the
process that made it. `sweep` removes the entries of a directory with a given prefix whose
maker, in this pid namespace, is no longer running. Nothing is removed by guessing: an entry
made in another pid namespace (another container sharing the directory), by a live process, or
without such a tag stays where it is.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
from pathlib import Path

_TAG = re.compile(r"(\d+)\.(\d+)-")


@functools.cache
def _pid_namespace() -> str:
    try:
        link = str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        return "0"
    digits = re.sub(r"\D", "", link)
    return digits or "0"


def temp_prefix(base: str) -> str:
    """`base` followed by this process's tag, for tempfile's ``prefix=``."""
    return f"{base}{_pid_namespace()}.{os.getpid()}-"


def untagged(name: str) -> str:
    """`name` up to this namespace's tag: for a temp name made next to a temp name (a staged
    tree next to a temp output), what the next run's own names share with it."""
    match = re.search(rf"{_pid_namespace()}\.\d+-", name)
    return name[: match.start()] if match else name


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def sweep(directory: Path, base: str) -> list[Path]:
    """Remove what dead processes of this pid namespace left as `base`<tag>*; return it."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(base):
            continue
        match = _TAG.match(entry.name, len(base))
        if match is None or match.group(1) != _pid_namespace():
            continue
        pid = int(match.group(2))
        if pid == os.getpid() or _running(pid):
            continue
        path = Path(entry.path)
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed
