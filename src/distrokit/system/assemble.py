"""The build pipeline: a validated `Config` plus cached images -> the parts of the root tree.

Order and layout are LinuxKit's (sections 2.2 and 2.4): kernel, init images, volumes, onboot,
onshutdown and service bundles, then ``files:``. The result is a list of `Part`s, each a lazy
stream of tar entries; output formats consume them in order. Parts derived only from an image
carry a content `key` so formats can reuse earlier work (the initrd segment cache); generated
parts (config.json, files) are cheap and always regenerated.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from distrokit.config.model import Config, Image, Volume
from distrokit.errors import BuildError, ConfigError
from distrokit.oci.cache import Cache
from distrokit.oci.flatten import flatten
from distrokit.oci.image import CachedImage
from distrokit.reference import expand
from distrokit.system import kernel as kernel_mod
from distrokit.system.apk import ApkDatabases, ApkSidecar
from distrokit.system.container import ContainerSpec, allocate_ids, container_spec
from distrokit.system.files import file_entries
from distrokit.system.layers import image_entries, prefix_dirs
from distrokit.system.ocispec import config_json, dumps, rootfs_mounts, runtime_json
from distrokit.system.ocivolume import oci_layout_entries
from distrokit.system.sbom import ImageUse, SbomOptions, sbom_entries
from distrokit.tarstream import Entry, Origin, directory, generated_mtime, regular

VOLUMES_SOURCE = "linuxkit.volumes"
EMPTY_SOURCE = "empty"
SBOM_LOCATION = "sbom"
SECTIONS = (
    ("onboot", "Add onboot containers:"),
    ("onshutdown", "Add onshutdown containers:"),
    ("services", "Add service containers:"),
)


PartKind = Literal["boot", "image", "generated"]


@dataclass(frozen=True)
class Part:
    """A run of entries of the root tree.

    `kind` is ``boot`` (boot/ with kernel, cmdline, ucode), ``image`` (derived from one image
    only; `key` identifies its content) or ``generated``. `messages` are LinuxKit's progress
    lines, printed when the part starts.
    """

    kind: PartKind
    location: str
    entries: Callable[[], Iterable[Entry]]
    key: str | None = None
    messages: tuple[str, ...] = ()
    # Small data captured while the part streams, kept with its cached segment.
    sidecar: ApkSidecar | None = None


@dataclass(frozen=True)
class System:
    """Everything an output format needs."""

    parts: tuple[Part, ...]
    kernel: kernel_mod.KernelParts | None
    cmdline: str


def _flat(image: CachedImage) -> Iterator[Entry]:
    return flatten(len(image.layers), lambda i: image.open_layer(image.layers[i]))


def _need(images: Mapping[str, CachedImage], ref: str) -> CachedImage:
    try:
        return images[ref]
    except KeyError:
        raise BuildError(f"image {ref} was not provided to the build") from None


def _nothing() -> Iterator[Entry]:
    return iter(())


def _image_part(
    image: CachedImage,
    ref: str,
    prefix: str,
    location: str,
    *,
    resolv_symlink: bool,
    messages: tuple[str, ...] = (),
) -> Part:
    origin = Origin(expand(ref), location)

    def entries() -> Iterator[Entry]:
        yield from prefix_dirs(prefix, origin)
        yield from image_entries(_flat(image), prefix, origin, resolv_symlink=resolv_symlink)

    key = f"image:{image.digest}:{prefix}:{resolv_symlink}:{generated_mtime()}"
    return Part("image", location, entries, key, messages)


def _kernel_parts(
    config: Config,
    images: Mapping[str, CachedImage],
    workdir: Path,
    store: Path | None,
    decompress: bool,
) -> tuple[list[Part], kernel_mod.KernelParts | None]:
    k = config.kernel
    if k.image is None:
        return [], None
    image = _need(images, k.image)
    tar = kernel_mod.tar_name(k.tar)
    ident = f"v2:{image.digest}:{k.binary}:{k.ucode}:{tar}"
    cached_dir = None
    if store is not None:
        cached_dir = store / hashlib.sha256(ident.encode()).hexdigest()
    found = kernel_mod.load_parts(cached_dir) if cached_dir is not None else None
    if found is None:
        found = kernel_mod.extract_files(image, k.binary, k.ucode, workdir, tar)
        if cached_dir is not None:
            _save_kernel(found, cached_dir)
    if decompress:
        found = replace(found, binary=kernel_mod.decompress_file(found.binary, workdir))
    origin = Origin(expand(k.image), "kernel")
    cmdline = k.cmdline or ""
    message = (f"Extract kernel image: {expand(k.image)}",)
    out: list[Part] = []
    boot_made = False
    # LinuxKit writes the kernel, the module tar and the microcode where the image has them;
    # boot/ comes with the first of kernel and microcode. Generated times are LinuxKit's.
    for item in found.order:
        if item == "tar" and tar is not None:
            out.append(_module_part(image, tar, origin))
        elif item in ("kernel", "ucode"):
            entries = _boot_entries(item, found, cmdline, origin, with_dir=not boot_made)
            boot_made = True
            out.append(Part("boot", "kernel", entries, None))
    if tar is not None and "tar" not in found.order:
        raise BuildError(f"did not find kernel tar {tar} in kernel image {expand(k.image)}")
    first = out[0]
    out[0] = replace(first, messages=message)
    return out, found


def _module_part(image: CachedImage, tar: str, origin: Origin) -> Part:
    return Part(
        "image",
        "kernel",
        lambda: kernel_mod.module_entries(image, tar, origin),
        f"kernel-tar:v2:{image.digest}:{tar}",
    )


def _boot_entries(
    item: str, found: kernel_mod.KernelParts, cmdline: str, origin: Origin, *, with_dir: bool
) -> Callable[[], Iterator[Entry]]:
    def entries() -> Iterator[Entry]:
        if with_dir:
            yield directory("boot", origin)
        if item == "kernel":
            yield regular("boot/cmdline", cmdline.encode(), origin, mode=0o644)
        f = found.binary if item == "kernel" else found.ucode
        assert f is not None
        with f.path.open("rb") as stream:
            name = "boot/kernel" if item == "kernel" else "boot/ucode.cpio"
            entry = regular(name, b"", origin, mode=f.mode)
            entry.info.size = f.size
            yield Entry(entry.info, stream)

    return entries


def _save_kernel(found: kernel_mod.KernelParts, dest: Path) -> None:
    """Store the kernel binary/ucode in the cache atomically (a temp dir renamed into place)."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".kernel-"))
    except OSError:
        return  # an unwritable cache only costs speed
    try:
        kernel_mod.save_parts(found, tmp / "d")
        (tmp / "d").replace(dest)
    except OSError:
        pass  # another build stored it first, or the cache is read-only: not fatal
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _init_parts(config: Config, images: Mapping[str, CachedImage]) -> list[Part]:
    parts: list[Part] = []
    dbs = ApkDatabases(f"init[{i}]" for i in range(len(config.init)))
    for i, ref in enumerate(config.init):
        head = ("Add init containers:",) if i == 0 else ()
        plain = _image_part(
            _need(images, ref),
            ref,
            "",
            f"init[{i}]",
            resolv_symlink=True,
            messages=(*head, f"Process init image: {expand(ref)}"),
        )
        parts.append(
            replace(
                plain,
                entries=_watched(dbs, plain),
                sidecar=dbs.sidecar(plain.location),
            )
        )
    if not parts:
        parts.append(Part("generated", "init", _nothing, None, ("Add init containers:",)))
    parts.append(Part("generated", "init", dbs.merged))
    return parts


def _watched(dbs: ApkDatabases, part: Part) -> Callable[[], Iterable[Entry]]:
    return lambda: dbs.watch(part.location, part.entries())


def _volume_parts(
    config: Config, images: Mapping[str, CachedImage], cache: Cache | None
) -> list[Part]:
    parts: list[Part] = [Part("generated", "volumes", _nothing, None, ("Add volumes:",))]
    for i, vol in enumerate(config.volumes):
        parts.extend(_volume(vol, i, images, cache))
    return parts


def _volume(
    vol: Volume, index: int, images: Mapping[str, CachedImage], cache: Cache | None
) -> list[Part]:
    location = f"volume[{index}]"
    base = f"containers/volumes/{vol.name}/"
    message = (f"Process volume image: {vol.name}",)
    parts: list[Part] = []
    if vol.image is None:
        # LinuxKit names the missing image "empty" in the records of the lower directory.
        empty = Origin(EMPTY_SOURCE, location)
        parts.append(
            Part("generated", location, lambda: prefix_dirs(base + "lower/", empty), None, message)
        )
    elif vol.format == "oci":
        if cache is None:
            raise BuildError(f"volume {vol.name}: format oci needs the image cache")
        ref, platforms = vol.image, vol.platforms
        src = cache

        def layout() -> Iterator[Entry]:
            origin = Origin(expand(ref), location)
            yield from prefix_dirs(base + "lower/", origin)
            yield from oci_layout_entries(src, ref, platforms, base + "lower/", location)

        parts.append(Part("generated", location, layout, None, message))
    else:
        parts.append(
            _image_part(
                _need(images, vol.image),
                vol.image,
                base + "lower/",
                location,
                resolv_symlink=True,
                messages=message,
            )
        )
    origin = Origin(VOLUMES_SOURCE, location)

    def rest() -> Iterator[Entry]:
        for sub in ("tmp/", "merged/"):
            entry = directory(base + sub, origin)
            entry.info.name = base + sub  # LinuxKit writes these with a trailing slash
            yield entry

    parts.append(Part("generated", location, rest, None))
    return parts


def _bundle_dir(section: str, index: int, name: str) -> str:
    if section == "services":
        return f"containers/services/{name}"
    return f"containers/{section}/{index:03d}-{name}"


def _container_parts(
    section: str,
    index: int,
    entry: Image,
    *,
    spec: ContainerSpec,
    image: CachedImage,
    unpacked: dict[str, str],
) -> list[Part]:
    """LinuxKit's ImageBundle (2.4): image unpacked once, config.json, tmp/, rootfs/,
    runtime.json."""
    location = f"{section}[{index}]"
    bundle = _bundle_dir(section, index, entry.name)
    origin = Origin(expand(entry.image), location)
    message = (f"  Create OCI config for {entry.image}",)
    ref = expand(entry.image)
    parts: list[Part] = []
    first = ref not in unpacked
    if first:
        root = f"{bundle}/{'rootfs' if spec.readonly else 'lower'}"
        parts.append(
            _image_part(
                image, entry.image, root + "/", location, resolv_symlink=False, messages=message
            )
        )
        unpacked[ref] = root
    root = unpacked[ref]
    config = dumps(config_json(spec))
    runtime = dumps(
        runtime_json(spec.runtime, rootfs_mounts(f"/{bundle}", f"/{root}", spec.readonly))
    )

    def generated() -> Iterator[Entry]:
        if not first:
            yield from prefix_dirs(bundle + "/", origin)
        yield regular(f"{bundle}/config.json", config, origin, mode=0o644)
        if not spec.readonly:
            yield directory(f"{bundle}/tmp", origin)
            yield directory(f"{bundle}/rootfs", origin)
        elif not first:
            yield directory(f"{bundle}/rootfs", origin)
        yield regular(f"{bundle}/runtime.json", runtime, origin, mode=0o644)

    parts.append(Part("generated", location, generated, None, () if first else message))
    return parts


def _all_containers(
    config: Config,
    images: Mapping[str, CachedImage],
    ids: Mapping[str, int],
    unpacked: dict[str, str],
) -> list[Part]:
    """Every container's parts; `unpacked` gets where each image is unpacked."""
    volumes = {v.name: v for v in config.volumes}
    parts: list[Part] = []
    problems: list[str] = []
    for section, header in SECTIONS:
        parts.append(Part("generated", section, _nothing, None, (header,)))
        entries: tuple[Image, ...] = getattr(config, section)
        for index, entry in enumerate(entries):
            image = _need(images, entry.image)
            try:
                spec = container_spec(entry, image, ids, volumes)
            except ConfigError as err:
                problems.extend(err.problems)
                continue
            parts.extend(
                _container_parts(section, index, entry, spec=spec, image=image, unpacked=unpacked)
            )
    if problems:
        raise ConfigError(problems)
    return parts


def _files_part(config: Config, ids: Mapping[str, int]) -> Part:
    names = tuple(f"  {f.path.lstrip('/')}" for f in config.files)
    return Part(
        "generated", "files", lambda: file_entries(config, ids), None, ("Add files:", *names)
    )


def _sbom_part(uses: list[ImageUse], cache: Cache | None, options: SbomOptions) -> Part:
    return Part("generated", SBOM_LOCATION, lambda: sbom_entries(uses, cache, options), None)


def image_uses(
    config: Config, images: Mapping[str, CachedImage], unpacked: Mapping[str, str]
) -> list[ImageUse]:
    """Every image of the build once, in build order, with its place in the tree (`unpacked`:
    where containers unpacked each image) and the YAML locations using it."""
    found: dict[str, tuple[str, list[str], str]] = {}

    def add(ref: str, location: str, prefix: str) -> None:
        name = expand(ref)
        if name not in found:
            found[name] = (ref, [], prefix)
        found[name][1].append(location)

    if config.kernel.image:
        add(config.kernel.image, "kernel", "")
    for i, ref in enumerate(config.init):
        add(ref, f"init[{i}]", "")
    for i, vol in enumerate(config.volumes):
        if vol.image:
            add(vol.image, f"volume[{i}]", f"containers/volumes/{vol.name}/lower")
    for section, _ in SECTIONS:
        for i, entry in enumerate(getattr(config, section)):
            root = unpacked.get(expand(entry.image), _bundle_dir(section, i, entry.name))
            add(entry.image, f"{section}[{i}]", root)
    return [
        ImageUse(name, _need(images, ref), prefix, tuple(locations))
        for name, (ref, locations, prefix) in found.items()
    ]


def image_refs(config: Config) -> list[str]:
    """Every image reference the build needs, in build order, without repeats."""
    refs = [config.kernel.image] if config.kernel.image else []
    refs += list(config.init)
    refs += [v.image for v in config.volumes if v.image]
    refs += [e.image for s, _ in SECTIONS for e in getattr(config, s)]
    return list(dict.fromkeys(refs))


def assemble(
    config: Config,
    images: Mapping[str, CachedImage],
    workdir: Path,
    kernel_store: Path | None = None,
    cache: Cache | None = None,
    *,
    decompress_kernel: bool = False,
    sbom: SbomOptions | None = None,
) -> System:
    """Plan the root tree of `config` from `images` (keyed by the references in the YAML).

    The kernel binary/microcode are copied into `workdir` (or reused from `kernel_store`);
    `cache` is read for volumes written as OCI layouts (their index and blobs);
    `decompress_kernel` stores the kernel uncompressed (``--decompress-kernel``); with `sbom`
    enabled, the SBOM of every image used is the last entry;
    everything else is read lazily when a format consumes the parts. Container specs are
    resolved here, so bad labels fail before any output is written.
    """
    kernel_parts, kernel = _kernel_parts(config, images, workdir, kernel_store, decompress_kernel)
    ids = allocate_ids(config)  # one uid/gid per container, shared by containers and files
    unpacked: dict[str, str] = {}  # image -> where its first container unpacks it
    parts = [
        *kernel_parts,
        *_init_parts(config, images),
        *_volume_parts(config, images, cache),
        *_all_containers(config, images, ids, unpacked),
        _files_part(config, ids),
    ]
    if sbom is not None and sbom.enabled:
        parts.append(_sbom_part(image_uses(config, images, unpacked), cache, sbom))
    return System(tuple(parts), kernel, config.kernel.cmdline or "")


def all_entries(
    parts: Iterable[Part], progress: Callable[[str], None] | None = None
) -> Iterator[Entry]:
    """Every entry of `parts` in order, reporting each part's messages first."""
    for part in parts:
        for message in part.messages:
            if progress is not None:
                progress(message)
        yield from part.entries()
