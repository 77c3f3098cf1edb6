"""`build.yml`: LinuxKit's package description plus distrokit's `debian:` extension.

LinuxKit fields (strict: unknown keys are rejected with file:line): `image` (required), `org`
(default `linuxkit`), `tag` (default `{{.Hash}}`), `dockerfile`, `arches`, `extra-sources`,
`gitrepo`, `network`, `disable-cache`, `config` (-> label `org.mobyproject.config`), `buildArgs`,
`depends`.

The `debian:` block builds the image without any container engine, from Debian packages
unpacked (never installed) plus files of the package directory::

    debian:
      packages: [busybox-static]          # downloaded with apt-get, unpacked with dpkg-deb
      metapackages: [linux-image-amd64]   # their direct Depends are downloaded instead
      binaries: [/bin/busybox]            # copied with their shared-library closure
      paths: [/etc/ssl, {src: "/boot/vmlinuz-*", dst: /kernel}]   # files/trees copied as-is
      archives: [{src: /lib/modules, dst: /kernel.tar, include: ["*/kernel/drivers/virtio/*"]}]
      # archives[].depmod: true adds modules.dep & co. for exactly the included modules
      copy: [{src: rc.init, dst: /etc/rc.init, mode: "0755"}]      # from the package dir
      symlinks: {/bin/sh: busybox}
      mkdir: [/var/log]
      concat: [{src: "/usr/share/ca-certificates/*/*.crt", dst: /etc/ssl/certs/ca-certificates.crt}]
      # a kernel compiled from a source package with a configuration fragment of the package
      # dir (distrokit.packages.kernelbuild); `tar` gets its (empty: all built in) module tar
      kernels: [{source: "/usr/src/linux-source-*.tar.xz", config: vm.config, dst: /kernel,
                 tar: /kernel.tar}]

Nothing from the packages is kept unless `binaries`, `paths` or `archives` name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from distrokit.errors import ConfigError
from distrokit.packages.label import LabelError, config_label
from distrokit.packages.yamlnodes import Reader

DEFAULT_ORG = "linuxkit"
DEFAULT_TAG = "{{.Hash}}"
DEFAULT_ARCHES = ("amd64", "arm64", "riscv64")

_TOP_KEYS = (
    "image",
    "org",
    "tag",
    "dockerfile",
    "arches",
    "extra-sources",
    "gitrepo",
    "network",
    "disable-cache",
    "config",
    "buildArgs",
    "depends",
    "debian",
)
_DEBIAN_KEYS = (
    "packages",
    "metapackages",
    "binaries",
    "paths",
    "archives",
    "copy",
    "symlinks",
    "mkdir",
    "concat",
    "kernels",
)


@dataclass(frozen=True, kw_only=True)
class PathSpec:
    """A file or tree from the unpacked packages; `src` may be a glob when `dst` is set."""

    src: str
    dst: str | None = None


@dataclass(frozen=True, kw_only=True)
class ArchiveSpec:
    """A tree from the unpacked packages stored as a tar file inside the image."""

    src: str
    dst: str
    include: tuple[str, ...] | None = None
    # a modules directory (RELEASE/kernel/...): add kmod's indexes of the included modules
    depmod: bool = False


@dataclass(frozen=True, kw_only=True)
class ConcatSpec:
    """Files of the unpacked packages (sorted glob matches) joined into one file.

    This replaces what a maintainer script would generate, e.g. the CA bundle that
    update-ca-certificates builds from /usr/share/ca-certificates.
    """

    src: str
    dst: str


@dataclass(frozen=True, kw_only=True)
class CopySpec:
    """A file of the package directory copied into the image."""

    src: str
    dst: str
    mode: int | None = None


@dataclass(frozen=True, kw_only=True)
class KernelSpec:
    """A kernel compiled from a source tarball of the unpacked packages (`source`, a glob
    matching one file) with a configuration fragment of the package directory (`config`)."""

    source: str
    config: str
    dst: str
    tar: str | None = None


@dataclass(frozen=True, kw_only=True)
class DebianSpec:
    """The `debian:` extension block."""

    packages: tuple[str, ...] = ()
    metapackages: tuple[str, ...] = ()
    binaries: tuple[str, ...] = ()
    paths: tuple[PathSpec, ...] = ()
    archives: tuple[ArchiveSpec, ...] = ()
    copy: tuple[CopySpec, ...] = ()
    symlinks: tuple[tuple[str, str], ...] = ()
    mkdir: tuple[str, ...] = ()
    concat: tuple[ConcatSpec, ...] = ()
    kernels: tuple[KernelSpec, ...] = ()


@dataclass(frozen=True, kw_only=True)
class BuildYml:
    """A parsed `build.yml`. `config_json` is the `org.mobyproject.config` label value."""

    image: str
    org: str = DEFAULT_ORG
    tag: str = DEFAULT_TAG
    dockerfile: str = "Dockerfile"
    arches: tuple[str, ...] = DEFAULT_ARCHES
    extra_sources: tuple[str, ...] = ()
    gitrepo: str | None = None
    network: bool = False
    disable_cache: bool = False
    config_json: str | None = None
    build_args: tuple[str, ...] = ()
    debian: DebianSpec | None = None


def load_build_yml(package_dir: Path, build_yml: str = "build.yml") -> BuildYml:
    """Read and validate `<package_dir>/<build_yml>`; every problem is reported at once."""
    path = package_dir / build_yml
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError([f"{path}: no such file (a package needs a {build_yml})"]) from err
    return parse_build_yml(text, str(path))


def parse_build_yml(text: str, file: str) -> BuildYml:
    """Validate the text of a build.yml named `file` (used in messages)."""
    r = Reader(file)
    root = r.compose(text)
    if root is None:
        raise ConfigError([f"{file}: empty build.yml (`image` is required)"])
    keys = r.mapping(root, "", _TOP_KEYS)
    if keys is None:
        r.finish()
        raise AssertionError("unreachable")
    values: dict[str, object] = {}
    if "image" not in keys:
        r.problem(root, "image", "is required")
    for name in ("image", "org", "tag", "dockerfile", "gitrepo"):
        if name in keys and (v := r.string(keys[name], name)) is not None:
            values[name] = v
    for name in ("network", "disable-cache"):
        if name in keys and (b := r.boolean(keys[name], name)) is not None:
            values[name.replace("-", "_")] = b
    for name, attr in (("arches", "arches"), ("extra-sources", "extra_sources")):
        if name in keys and _is_null(keys[name]):
            continue  # `arches:` with no value is unset, as LinuxKit's decoder reads it
        if name in keys and (s := r.strings(keys[name], name)) is not None:
            values[attr] = s
    if "buildArgs" in keys and (s := r.strings(keys["buildArgs"], "buildArgs")) is not None:
        values["build_args"] = s
    if "config" in keys:
        values["config_json"] = _config_label(r, keys["config"])
    if "depends" in keys:
        r.mapping(keys["depends"], "depends", ("docker-images",))
    if "debian" in keys:
        values["debian"] = _debian(r, keys["debian"])
    if "tag" in values:
        _check_tag(r, keys["tag"], str(values["tag"]))
    if "dockerfile" in values and _escapes(str(values["dockerfile"])):
        r.problem(keys["dockerfile"], "dockerfile", "must stay inside the package directory")
    r.finish()
    return BuildYml(**values)  # type: ignore[arg-type]


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _check_tag(r: Reader, node: yaml.Node, tag: str) -> None:
    # LinuxKit's tag is a Go template; only the hash placeholder is meaningful without git
    # metadata we do not model, so anything else is refused rather than silently mis-rendered.
    rest = tag.replace("{{.Hash}}", "")
    if "{{" in rest:
        r.problem(node, "tag", "only the {{.Hash}} placeholder is supported")


def _config_label(r: Reader, node: yaml.Node) -> str | None:
    if not isinstance(node, yaml.MappingNode):
        r.problem(node, "config", "must be a mapping")
        return None
    keys = {getattr(k, "value", None) for k, _ in node.value}
    for forbidden in ("name", "image"):
        if forbidden in keys:
            r.problem(node, f"config.{forbidden}", "cannot be set in the image label")
    # LinuxKit's label is its Go struct decoded from this YAML, not the YAML as written.
    try:
        text = config_label(node)
    except LabelError as err:
        r.problem(node, "config", f"cannot be read as LinuxKit reads it: {err}")
        return None
    # The label is validated against the same schema the YAML is, as LinuxKit does at build.
    from distrokit.system.container import parse_label

    try:
        parse_label(text, f"{r.where(node, 'config')}")
    except ConfigError as err:
        r.problems.extend(err.problems)
    return text


def _escapes(rel: str) -> bool:
    return rel.startswith("/") or ".." in Path(rel).parts


def _abs(r: Reader, node: yaml.Node, path: str) -> str | None:
    value = r.string(node, path)
    if value is not None and (not value.startswith("/") or ".." in Path(value).parts):
        r.problem(node, path, f"'{value}' must be an absolute path without '..'")
        return None
    return value


def _rel(r: Reader, node: yaml.Node, path: str) -> str | None:
    """A path of the package directory: relative, not leaving it."""
    value = r.string(node, path)
    if value is not None and _escapes(value):
        r.problem(node, path, "must be relative, inside the package dir")
        return None
    return value


def _debian(r: Reader, node: yaml.Node) -> DebianSpec | None:
    keys = r.mapping(node, "debian", _DEBIAN_KEYS)
    if keys is None:
        return None
    values: dict[str, object] = {}
    for name in ("packages", "metapackages"):
        if name in keys and (s := r.strings(keys[name], f"debian.{name}")) is not None:
            values[name] = s
    for name in ("binaries", "mkdir"):
        if name in keys:
            items = r.sequence(keys[name], f"debian.{name}")
            found = [_abs(r, n, f"debian.{name}[{i}]") for i, n in enumerate(items)]
            values[name] = tuple(f for f in found if f is not None)
    if "paths" in keys:
        values["paths"] = tuple(_paths(r, keys["paths"]))
    if "archives" in keys:
        values["archives"] = tuple(_archives(r, keys["archives"]))
    if "copy" in keys:
        values["copy"] = tuple(_copies(r, keys["copy"]))
    if "symlinks" in keys:
        values["symlinks"] = tuple(_symlinks(r, keys["symlinks"]))
    if "concat" in keys:
        values["concat"] = tuple(_concats(r, keys["concat"]))
    if "kernels" in keys:
        values["kernels"] = tuple(_kernels(r, keys["kernels"]))
    return DebianSpec(**values)  # type: ignore[arg-type]


def _paths(r: Reader, node: yaml.Node) -> list[PathSpec]:
    out: list[PathSpec] = []
    for i, item in enumerate(r.sequence(node, "debian.paths")):
        where = f"debian.paths[{i}]"
        if isinstance(item, yaml.ScalarNode):
            if (src := _abs(r, item, where)) is not None:
                out.append(PathSpec(src=src))
            continue
        keys = _src_dst(r, item, where, ("src", "dst"))
        if keys is None:
            continue
        src, dst = _abs(r, keys["src"], f"{where}.src"), _abs(r, keys["dst"], f"{where}.dst")
        if src and dst:
            out.append(PathSpec(src=src, dst=dst))
    return out


def _src_dst(
    r: Reader, item: yaml.Node, where: str, fields: tuple[str, ...]
) -> dict[str, yaml.Node] | None:
    """The keys of a ``{src, dst, ...}`` entry with both `src` and `dst`, else None (reported)."""
    keys = r.mapping(item, where, fields)
    if keys is not None and ("src" not in keys or "dst" not in keys):
        r.problem(item, where, "needs both src and dst")
        return None
    return keys


def _archives(r: Reader, node: yaml.Node) -> list[ArchiveSpec]:
    out: list[ArchiveSpec] = []
    for i, item in enumerate(r.sequence(node, "debian.archives")):
        where = f"debian.archives[{i}]"
        keys = _src_dst(r, item, where, ("src", "dst", "include", "depmod"))
        if keys is None:
            continue
        src, dst = _abs(r, keys["src"], f"{where}.src"), _abs(r, keys["dst"], f"{where}.dst")
        include = r.strings(keys["include"], f"{where}.include") if "include" in keys else None
        depmod = r.boolean(keys["depmod"], f"{where}.depmod") if "depmod" in keys else False
        if src and dst:
            out.append(ArchiveSpec(src=src, dst=dst, include=include, depmod=bool(depmod)))
    return out


def _copies(r: Reader, node: yaml.Node) -> list[CopySpec]:
    out: list[CopySpec] = []
    for i, item in enumerate(r.sequence(node, "debian.copy")):
        where = f"debian.copy[{i}]"
        keys = _src_dst(r, item, where, ("src", "dst", "mode"))
        if keys is None:
            continue
        src = _rel(r, keys["src"], f"{where}.src")
        dst = _abs(r, keys["dst"], f"{where}.dst")
        mode = _mode(r, keys["mode"], f"{where}.mode") if "mode" in keys else None
        if src and dst:
            out.append(CopySpec(src=src, dst=dst, mode=mode))
    return out


def _mode(r: Reader, node: yaml.Node, path: str) -> int | None:
    text = r.string(node, path)
    try:
        return int(text, 8) if text is not None else None
    except ValueError:
        r.problem(node, path, f"'{text}' is not an octal mode such as \"0755\"")
        return None


def _symlinks(r: Reader, node: yaml.Node) -> list[tuple[str, str]]:
    if not isinstance(node, yaml.MappingNode):
        r.problem(node, "debian.symlinks", "must be a mapping of link path to target")
        return []
    out: list[tuple[str, str]] = []
    for key_node, value in node.value:
        where = f"debian.symlinks.{key_node.value}"
        link, target = _abs(r, key_node, where), r.string(value, where)
        if link and target:
            out.append((link, target))
    return sorted(out)


def _concats(r: Reader, node: yaml.Node) -> list[ConcatSpec]:
    out: list[ConcatSpec] = []
    for i, item in enumerate(r.sequence(node, "debian.concat")):
        where = f"debian.concat[{i}]"
        keys = r.mapping(item, where, ("src", "dst"))
        if keys is None:
            continue
        if "src" not in keys or "dst" not in keys:
            r.problem(item, where, "needs both src and dst")
            continue
        src, dst = _abs(r, keys["src"], f"{where}.src"), _abs(r, keys["dst"], f"{where}.dst")
        if src and dst:
            out.append(ConcatSpec(src=src, dst=dst))
    return out


def _kernels(r: Reader, node: yaml.Node) -> list[KernelSpec]:
    out: list[KernelSpec] = []
    for i, item in enumerate(r.sequence(node, "debian.kernels")):
        where = f"debian.kernels[{i}]"
        keys = r.mapping(item, where, ("source", "config", "dst", "tar"))
        if keys is None:
            continue
        missing = [k for k in ("source", "config", "dst") if k not in keys]
        if missing:
            r.problem(item, where, f"needs {', '.join(missing)}")
            continue
        source = _abs(r, keys["source"], f"{where}.source")
        config = _rel(r, keys["config"], f"{where}.config")
        dst = _abs(r, keys["dst"], f"{where}.dst")
        tar = _abs(r, keys["tar"], f"{where}.tar") if "tar" in keys else None
        if source and config and dst and ("tar" not in keys or tar):
            out.append(KernelSpec(source=source, config=config, dst=dst, tar=tar))
    return out
