"""Reading configuration inputs (paths, ``-`` for stdin, http(s) URLs) and merging them.

Every file is validated on its own, then the files are merged left to right as LinuxKit merges
them (kernel field by field, every list concatenated). Checks that need the whole system run
after the merge: service names and volume names must be unique across all files, and every
container name used as a uid/gid and every volume used in a bind must exist in some file.
All problems of all files are raised together in one `ConfigError`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO

from distrokit.config.model import Config, Image, Kernel, Origin, Volume
from distrokit.config.nodes import Context, PkgResolver
from distrokit.config.rules import did_you_mean
from distrokit.config.schema import parse_document
from distrokit.errors import ConfigError

STDIN = "-"
STDIN_NAME = "<stdin>"
# A URL input must answer, and keep sending at least 1 kB/s, within this many seconds.
URL_TIMEOUT = 30.0
# No LinuxKit YAML comes near this; an endless stdin or URL body must not fill memory.
MAX_CONFIG_BYTES = 4 << 20


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _fetch(url: str) -> str:
    """The body of `url` (bounded in size and time); raises `OSError` naming the URL."""
    import requests  # only needed for URL inputs
    import urllib3
    from requests.adapters import HTTPAdapter

    from distrokit.deadline import BodyTooLarge, Watchdog, read_body, watch_pools

    dog = Watchdog()
    with requests.Session() as session, dog.watch(URL_TIMEOUT) as watch:
        for scheme in ("http://", "https://"):
            session.mount(scheme, watch_pools(HTTPAdapter()))
        try:
            with session.get(url, timeout=URL_TIMEOUT + 1, stream=True) as response:
                if response.status_code != 200:
                    reason = f"HTTP {response.status_code} {response.reason}"
                    raise OSError(f"cannot fetch {url}: {reason}")
                body = read_body(response, MAX_CONFIG_BYTES, watch)
        except BodyTooLarge:
            raise OSError(f"{url} is larger than {MAX_CONFIG_BYTES >> 20} MiB") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
            if watch.expired or isinstance(err, requests.Timeout):
                raise OSError(
                    f"cannot fetch {url}: no answer, or less than 1 kB/s, for {URL_TIMEOUT:g} s"
                ) from err
            raise OSError(f"cannot fetch {url}: {err}") from err
        finally:
            dog.close()
    return body.decode("utf-8")


def _read_text(stream: IO[str], name: str) -> str:
    # The bytes when there are any: sys.stdin decodes with surrogateescape in some locales,
    # which turns invalid UTF-8 into text no YAML parser takes.
    raw = getattr(stream, "buffer", None)
    data = raw.read(MAX_CONFIG_BYTES + 1) if raw is not None else stream.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise OSError(f"{name} is larger than {MAX_CONFIG_BYTES >> 20} MiB")
    return data.decode("utf-8") if isinstance(data, bytes) else data


def _read(source: str, stdin: IO[str] | None, host_files: bool) -> tuple[str, Context]:
    """The text of one input and the context its problems are reported in."""
    if source == STDIN:
        text = _read_text(stdin or sys.stdin, "standard input")
        return text, Context(STDIN_NAME, host_files=host_files)
    if _is_url(source):
        return _fetch(source), Context(source, host_files=host_files)
    path = Path(source).expanduser()
    with path.open(encoding="utf-8") as f:
        text = _read_text(f, source)
    return text, Context(source, base_dir=path.absolute().parent)


def load_one(
    source: str,
    *,
    stdin: IO[str] | None = None,
    resolve_pkg: PkgResolver | None = None,
    host_files: bool = False,
) -> tuple[Config, Context]:
    """Validate one input; its problems are in the returned context (nothing is raised).

    A YAML from stdin or a URL may name host files (``files: source:``) only with
    `host_files`; a local file always may, as in LinuxKit.
    """
    try:
        text, ctx = _read(source, stdin, host_files)
    except (OSError, UnicodeDecodeError) as err:
        ctx = Context(source)
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        ctx.problems.append(f"{source}: cannot read: {reason}")
        return Config(sources=(source,)), ctx
    ctx.resolve_pkg = resolve_pkg
    config = parse_document(text, ctx)
    return replace(config, sources=(source,)), ctx


def _merge_kernel(first: Kernel, second: Kernel) -> Kernel:
    """LinuxKit: image/cmdline/binary replaced only by a non-empty value, tar/ucode when set."""
    return Kernel(
        image=second.image or first.image,
        cmdline=second.cmdline or first.cmdline,
        binary=second.binary or first.binary,
        tar=second.tar if second.tar is not None else first.tar,
        ucode=second.ucode if second.ucode is not None else first.ucode,
    )


def merge(configs: Sequence[Config]) -> Config:
    """Merge configs left to right (no checks; see `load_config`)."""
    out = Config()
    for config in configs:
        out = Config(
            kernel=_merge_kernel(out.kernel, config.kernel),
            init=out.init + config.init,
            onboot=out.onboot + config.onboot,
            onshutdown=out.onshutdown + config.onshutdown,
            services=out.services + config.services,
            files=out.files + config.files,
            volumes=out.volumes + config.volumes,
            default_formats=tuple(dict.fromkeys(out.default_formats + config.default_formats)),
            warnings=out.warnings + config.warnings,
            sources=out.sources + config.sources,
        )
    return out


def _at(origin: Origin | None) -> str:
    return f"{origin.file}:{origin.line}:{origin.column}" if origin else "?"


def _duplicates(kind: str, items: Iterable[Image | Volume]) -> list[str]:
    problems = []
    first: dict[str, Origin | None] = {}
    for item in items:
        if item.name in first:
            o = item.origin
            where = f"{_at(o)}: {o.path}" if o else item.name
            problems.append(
                f"{where}: duplicate {kind} name: {item.name} "
                f"(first defined at {_at(first[item.name])})"
            )
        else:
            first[item.name] = item.origin
    return problems


def check_references(config: Config, contexts: Sequence[Context]) -> list[str]:
    """Problems that need the merged system: duplicate names, unknown ids and volumes."""
    problems = _duplicates("service", config.services)
    problems += _duplicates("volume", config.volumes)
    names = [i.name for i in (*config.onboot, *config.onshutdown, *config.services)]
    known_names = set(names)
    volumes = {v.name: v for v in config.volumes}
    # Entries dropped for other problems must not also be reported as missing.
    dropped = {(kind, name) for ctx in contexts for kind, name in ctx.invalid_names}
    known_names |= {name for kind, name in dropped if kind == "image"}
    dropped_volumes = {name for kind, name in dropped if kind == "volume"}
    for ctx in contexts:
        for name, where in ctx.id_refs:
            if name not in known_names:
                guess = did_you_mean(name, names)
                hint = f" (did you mean '{guess}'?)" if guess else ""
                problems.append(f"{where}: cannot find id: {name}{hint}")
        for name, read_only, where in ctx.volume_refs:
            volume = volumes.get(name)
            if volume is None and name in dropped_volumes:
                continue
            if volume is None:
                guess = did_you_mean(name, list(volumes))
                hint = f" (did you mean '{guess}'?)" if guess else " (no such volume)"
                problems.append(f"{where}: volume {name} not found{hint}")
            elif volume.readonly and not read_only:
                problems.append(
                    f"{where}: volume {name} is read-only, but attempting to write into "
                    "container read-write (add :ro)"
                )
    return problems


def load_config(
    sources: Sequence[str],
    *,
    stdin: IO[str] | None = None,
    resolve_pkg: PkgResolver | None = None,
    host_files: bool = False,
) -> Config:
    """Read, validate and merge `sources` (paths, ``-`` for stdin, http(s) URLs).

    `resolve_pkg` turns an ``@pkg:`` template's directory into an image reference; without it
    a template is an error. `host_files` lets stdin and URL inputs read host files. Raises
    `ConfigError` with every problem of every file.
    """
    if not sources:
        raise ConfigError(["no configuration file given"])
    configs: list[Config] = []
    contexts: list[Context] = []
    for source in sources:
        config, ctx = load_one(source, stdin=stdin, resolve_pkg=resolve_pkg, host_files=host_files)
        configs.append(config)
        contexts.append(ctx)
    problems = [p for ctx in contexts for p in ctx.problems]
    merged = merge(configs)
    problems += check_references(merged, contexts)
    if problems:
        raise ConfigError(problems)
    return merged
