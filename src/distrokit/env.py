"""What distrokit reads from its environment, in one place: ``SOURCE_DATE_EPOCH`` and where
its own caches live (``XDG_CACHE_HOME``)."""

from __future__ import annotations

import os
from pathlib import Path

from distrokit.errors import UsageError

# LinuxKit's fixed mtime for generated entries: 2017-04-18T16:30:00Z.
LINUXKIT_EPOCH = 1492533000


def source_date_epoch(default: int = LINUXKIT_EPOCH, environ: dict[str, str] | None = None) -> int:
    """``SOURCE_DATE_EPOCH`` from the environment, else `default` (LinuxKit's fixed date for
    system builds; package layers pass their own)."""
    value = (environ if environ is not None else dict(os.environ)).get("SOURCE_DATE_EPOCH")
    if not value:
        return default
    if not value.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds")
    return int(value)


def user_cache_dir(*parts: str) -> Path:
    """distrokit's own cache directory, ``$XDG_CACHE_HOME/distrokit`` (``~/.cache/distrokit``),
    or a folder below it. The image cache is LinuxKit's, elsewhere (`distrokit.oci.cache`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "distrokit", *parts)
