"""LinuxKit's consolidated Alpine package database for init images (section 1.3).

When more than one init image ships ``lib/apk/db/installed``, LinuxKit appends, after the init
images, one database that concatenates them all (each followed by two newlines), so `apk`
inside the system sees every package. The databases are small text files: they are captured
while the init images stream past, and remembered with cached initrd segments (`dump`/`load`)
so a rebuild that reuses those segments still knows them.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Iterator

from distrokit.tarstream import Entry, Origin, regular

APK_DB = "lib/apk/db/installed"
APK_ORIGIN = Origin("LINUXKIT.apkinit", "init")


class ApkDatabases:
    """The apk databases seen per init location, in init order."""

    def __init__(self, locations: Iterable[str]) -> None:
        self.locations = tuple(locations)
        self.found: dict[str, bytes] = {}

    def watch(self, location: str, entries: Iterable[Entry]) -> Iterator[Entry]:
        """Pass `entries` through, keeping a copy of the apk database if one goes by."""
        self.found.pop(location, None)
        for entry in entries:
            if entry.info.name == APK_DB and entry.info.isreg() and entry.data is not None:
                data = entry.data.read(entry.info.size)
                self.found[location] = data
                entry = Entry(entry.info, io.BytesIO(data))
            yield entry

    def merged(self) -> Iterator[Entry]:
        """The consolidated database, when at least two init images have one."""
        dbs = [self.found[loc] for loc in self.locations if loc in self.found]
        if len(dbs) >= 2:
            # LinuxKit leaves this header's time unset: the epoch.
            yield regular(APK_DB, b"".join(db + b"\n\n" for db in dbs), APK_ORIGIN, mtime=0)

    def sidecar(self, location: str) -> ApkSidecar:
        """What a cached segment of `location` must remember."""
        return ApkSidecar(self, location)


class ApkSidecar:
    """Saves and restores one init image's database alongside its cached segment."""

    def __init__(self, dbs: ApkDatabases, location: str) -> None:
        self.dbs, self.location = dbs, location

    def dump(self) -> list[str]:
        """The captured database (if any) as JSON-safe text."""
        data = self.dbs.found.get(self.location)
        return [] if data is None else [base64.b64encode(data).decode()]

    def load(self, saved: list[str]) -> None:
        """Restore what `dump` returned, for a segment taken from the cache."""
        self.dbs.found.pop(self.location, None)
        for text in saved:
            self.dbs.found[self.location] = base64.b64decode(text)
