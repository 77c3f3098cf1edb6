"""``--input-tar``: LinuxKit's incremental build, reusing parts of a previous tar build.

As in LinuxKit, it works only when the configuration writes a ``metadata:`` file: the previous
configuration is read back from that file in the input tar, and every part whose YAML is
unchanged (the kernel image, the init image at the same index, the container at the same index
of its section, compared with image references expanded) is copied from the input tar, entry
by entry, by its ``LINUXKIT.source``/``LINUXKIT.location`` records, instead of being unpacked
from the image again. Volumes are always rebuilt (LinuxKit looks them up under a location it
never writes, so it loses their contents; see docs/compatibility.md). A copied part is
byte-identical to a fresh one when the images are unchanged.
"""

from __future__ import annotations

import dataclasses
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from distrokit.config.load import load_config
from distrokit.config.model import Config, Image
from distrokit.errors import BuildError, ConfigError
from distrokit.reference import expand
from distrokit.system.assemble import SECTIONS, Part, System
from distrokit.tarstream import LOCATION, SOURCE, Entry, VerbatimInfo, verbatim_name


def metadata_path(config: Config) -> str | None:
    """Where the configuration writes its metadata file (the last one, as LinuxKit)."""
    found = [f.path.lstrip("/") for f in config.files if f.metadata is not None]
    return found[-1] if found else None


def _read_member(tar_path: Path, name: str) -> bytes | None:
    try:
        with tarfile.open(tar_path, mode="r|") as tar:
            for member in tar:
                if member.name.lstrip("/") == name and member.isreg():
                    reader = tar.extractfile(member)
                    return reader.read() if reader is not None else None
    except (OSError, tarfile.TarError) as err:
        raise BuildError(f"failed to read input tar {tar_path}: {err}") from err
    return None


def previous_config(tar_path: Path, config: Config) -> Config | None:
    """The configuration the input tar was built from, or None without a metadata file."""
    where = metadata_path(config)
    if where is None:
        return None
    data = _read_member(tar_path, where)
    if data is None:
        return None
    with tempfile.TemporaryDirectory(prefix="distrokit-input-tar-") as tmp:
        path = Path(tmp) / "previous.yml"
        path.write_bytes(data)
        try:
            return load_config([str(path)])
        except ConfigError as err:
            raise BuildError(
                f"invalid config in existing tar file {tar_path}: {err.problems[0]}"
            ) from err


def _canonical(image: Image) -> Image:
    return dataclasses.replace(image, image=expand(image.image))


def reusable(old: Config, new: Config) -> dict[str, str]:
    """Location -> source (expanded image) of every part the old build can supply."""
    out: dict[str, str] = {}
    if (
        new.kernel.image
        and old.kernel.image
        and expand(old.kernel.image) == expand(new.kernel.image)
    ):
        out["kernel"] = expand(new.kernel.image)
    for i, (was, now) in enumerate(zip(old.init, new.init, strict=False)):
        if expand(was) == expand(now):
            out[f"init[{i}]"] = expand(now)
    for section, _ in SECTIONS:
        olds: tuple[Image, ...] = getattr(old, section)
        news: tuple[Image, ...] = getattr(new, section)
        for i, (a, b) in enumerate(zip(olds, news, strict=False)):
            if _canonical(a) == _canonical(b):
                out[f"{section}[{i}]"] = expand(b.image)
    return out


def copied_entries(tar_path: Path, source: str, location: str) -> Iterator[Entry]:
    """The entries of the input tar recorded as `source` at `location`, in order."""
    try:
        with tarfile.open(tar_path, mode="r|", tarinfo=VerbatimInfo) as tar:
            for member in tar:
                records = member.pax_headers
                if records.get(SOURCE) != source or records.get(LOCATION) != location:
                    continue
                member.name = verbatim_name(member)
                yield Entry(member, tar.extractfile(member) if member.isreg() else None)
    except (OSError, tarfile.TarError) as err:
        raise BuildError(f"failed to read input tar {tar_path}: {err}") from err


def _copy(part: Part, tar_path: Path, source: str, location: str) -> Callable[[], Iterable[Entry]]:
    def entries() -> Iterable[Entry]:
        copied = copied_entries(tar_path, source, location)
        if part.sidecar is not None:  # init images: the apk database is still collected
            return part.sidecar.dbs.watch(location, copied)
        return copied

    return entries


def _nothing() -> Iterator[Entry]:
    return iter(())


def reuse_from_tar(system: System, config: Config, tar_path: Path) -> System:
    """`system` with every unchanged part taken from the input tar `tar_path`."""
    if not tar_path.is_file():
        raise BuildError(f"failed to open input tar: {tar_path} is not a file")
    old = previous_config(tar_path, config)
    if old is None:
        return system
    sources = reusable(old, config)
    parts: list[Part] = []
    done: set[str] = set()
    for part in system.parts:
        source = sources.get(part.location)
        if source is None:
            parts.append(part)
        elif part.location in done:
            parts.append(dataclasses.replace(part, entries=_nothing, key=None, messages=()))
        else:
            done.add(part.location)
            headers = tuple(m for m in part.messages if m.startswith("Add "))
            message = f"Copy {part.location} files from input tar: {source}"
            parts.append(
                dataclasses.replace(
                    part,
                    # the kernel's copy holds boot/ files, which an initrd leaves out
                    kind="boot" if part.location == "kernel" else "generated",
                    entries=_copy(part, tar_path, source, part.location),
                    key=None,
                    messages=(*headers, message),
                )
            )
    return dataclasses.replace(system, parts=tuple(parts))
