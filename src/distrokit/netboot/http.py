"""The HTTP server of `distrokit serve`: a build directory, byte ranges, and iPXE scripts.

Files under the directory are served with GET and HEAD, with a correct Content-Length, one
byte range (``Range: bytes=A-B``, ``A-`` or ``-N``; 206, or 416 when it cannot be satisfied;
several ranges get the whole file, which RFC 9110 allows) and through ``sendfile``. For every
kernel+initrd build NAME in the directory, ``/NAME.ipxe`` is its iPXE script (see `ipxe`), made
per request with the base URL the client used to reach the server (its Host header), so one
server answers guests on QEMU's user network (10.0.2.2) and on a LAN alike; ``/boot.ipxe`` is
the script of the only build, or of the one named when the server was started. A real file of
the same name wins.

The server never prints: each finished request is reported to a callback as a `RequestLog`.
"""

from __future__ import annotations

import contextlib
import email.utils
import mimetypes
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

from distrokit.errors import DistrokitError, UsageError
from distrokit.netboot import ipxe

_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class RequestLog:
    """One answered request: who asked what, the status, body bytes sent and the time taken."""

    client: str
    method: str
    path: str
    status: int
    sent: int
    seconds: float
    range: str | None = None

    def line(self) -> str:
        """A common-log-like line: ``CLIENT "METHOD PATH" STATUS BYTES SECONDSs``."""
        extra = f" range={self.range}" if self.range else ""
        return (
            f'{self.client} "{self.method} {self.path}" {self.status} {self.sent} '
            f"{self.seconds:.3f}s{extra}"
        )


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """What `distrokit serve` was asked for."""

    directory: Path
    address: str = "0.0.0.0"
    port: int = 8080
    default: str | None = None  # the build /boot.ipxe boots; None = the only one
    params: tuple[str, ...] = ()  # kernel parameters put before each system's command line


class RangeNotSatisfiable(DistrokitError):
    """A Range header that no byte of the file satisfies (HTTP 416)."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a one-range ``Range`` header asks of a `size`-byte file.

    None means "send the whole file": not a bytes range, several ranges, or a malformed one
    (RFC 9110 says to ignore those). `RangeNotSatisfiable` when no byte of the file is in it."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    if first == "":
        if not last.isdigit():
            return None
        if int(last) == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(size - int(last), 0), size - 1
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(header)
    return start, min(int(last), size - 1) if last else size - 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an unfinished download must not keep a stopped server alive
    allow_reuse_address = True

    def __init__(
        self,
        config: ServeConfig,
        on_request: Callable[[RequestLog], None] | None,
    ) -> None:
        self.config = config
        self.root = config.directory.resolve()
        self.on_request = on_request
        family = socket.AF_INET6 if ":" in config.address else socket.AF_INET
        self.address_family = family
        super().__init__((config.address, config.port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: iPXE loads kernel and initrd on one connection

    def version_string(self) -> str:
        return "distrokit-serve"

    def log_message(self, format: str, *args: object) -> None:
        """The base class prints to stderr; the library never prints."""

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        started = time.monotonic()
        status, sent, what = HTTPStatus.INTERNAL_SERVER_ERROR, 0, None
        try:
            status, sent, what = self._serve(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            status = HTTPStatus.OK if status == HTTPStatus.INTERNAL_SERVER_ERROR else status
        finally:
            if self.server.on_request is not None:
                self.server.on_request(
                    RequestLog(
                        client=self.client_address[0],
                        method=self.command,
                        path=self.path,
                        status=int(status),
                        sent=sent,
                        seconds=time.monotonic() - started,
                        range=what,
                    )
                )

    def _serve(self, body: bool) -> tuple[HTTPStatus, int, str | None]:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        target = self._file(path)
        if target is None:
            text = self._script(path)
            if text is None:
                return self._error(HTTPStatus.NOT_FOUND, f"{path} not found\n", body), 0, None
            data = text.encode()
            self._headers(HTTPStatus.OK, len(data), "text/plain; charset=utf-8")
            if body:
                self.wfile.write(data)
            return HTTPStatus.OK, len(data) if body else 0, None
        with target.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            header = self.headers.get("Range")
            try:
                wanted = parse_range(header, size) if header else None
            except RangeNotSatisfiable:
                self._error(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                    f"range {header} outside {size} bytes\n",
                    body,
                    {"Content-Range": f"bytes */{size}"},
                )
                return HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, 0, header
            start, end = wanted if wanted else (0, size - 1)
            length = end - start + 1 if size else 0
            status = HTTPStatus.PARTIAL_CONTENT if wanted else HTTPStatus.OK
            extra = {"Content-Range": f"bytes {start}-{end}/{size}"} if wanted else {}
            mtime = email.utils.formatdate(os.fstat(f.fileno()).st_mtime, usegmt=True)
            extra["Last-Modified"] = mtime
            kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            self._headers(status, length, kind, extra)
            sent = self._copy(f, start, length) if body else 0
            return status, sent, header if wanted else None

    def _file(self, path: str) -> Path | None:
        """The regular file under the root that `path` names, or None."""
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") or "\0" in p for p in parts):
            return None
        target = self.server.root.joinpath(*parts)
        try:
            resolved = target.resolve()
        except OSError:
            return None
        if not resolved.is_relative_to(self.server.root) or not resolved.is_file():
            return None
        return resolved

    def _script(self, path: str) -> str | None:
        """The generated iPXE script `path` asks for (``/NAME.ipxe`` or ``/boot.ipxe``)."""
        directory, _, name = path.rpartition("/")
        if not name.endswith(ipxe.SCRIPT_SUFFIX):
            return None
        folder = self._file_dir(directory)
        if folder is None:
            return None
        systems = {s.name: s for s in ipxe.find_systems(folder)}
        wanted = name.removesuffix(ipxe.SCRIPT_SUFFIX)
        if name == ipxe.DEFAULT_SCRIPT and wanted not in systems:
            default = self.server.config.default
            if default is None and len(systems) == 1:
                default = next(iter(systems))
            wanted = default or ""
        system = systems.get(wanted)
        if system is None:
            return None
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        base = f"http://{host}{urllib.parse.quote(directory)}"
        return ipxe.script(system, base, self.server.config.params)

    def _file_dir(self, directory: str) -> Path | None:
        parts = [p for p in directory.split("/") if p]
        if any(p in (".", "..") for p in parts):
            return None
        folder = self.server.root.joinpath(*parts).resolve()
        if not folder.is_relative_to(self.server.root) or not folder.is_dir():
            return None
        return folder

    def _headers(
        self, status: HTTPStatus, length: int, kind: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def _error(
        self, status: HTTPStatus, text: str, body: bool, extra: dict[str, str] | None = None
    ) -> HTTPStatus:
        data = text.encode()
        self._headers(status, len(data), "text/plain; charset=utf-8", extra)
        if body:
            self.wfile.write(data)
        return status

    def _copy(self, f: BinaryIO, start: int, length: int) -> int:
        """Send `length` bytes of `f` from `start`: sendfile, or a read/write loop."""
        self.wfile.flush()
        sent = 0
        try:
            out = self.connection.fileno()
            while sent < length:
                n = os.sendfile(out, f.fileno(), start + sent, min(length - sent, 1 << 30))
                if n == 0:
                    break
                sent += n
        except (AttributeError, OSError) as err:
            if isinstance(err, (BrokenPipeError, ConnectionResetError)):
                raise
            f.seek(start + sent)
            while sent < length:
                chunk = f.read(min(_CHUNK, length - sent))
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
        if sent < length:  # the file shrank under us: the promised length is a lie now
            self.close_connection = True
        return sent


class HttpServer:
    """`distrokit serve`'s HTTP server. Bound when made; `serve_forever` in the caller's
    thread (Ctrl-C ends it with `KeyboardInterrupt`) or `start` in a background thread; `close`
    (or leaving the ``with`` block) stops it and frees the port."""

    def __init__(
        self, config: ServeConfig, on_request: Callable[[RequestLog], None] | None = None
    ) -> None:
        if not config.directory.is_dir():
            raise UsageError(f"directory {config.directory} does not exist")
        try:
            self._server = _Server(config, on_request)
        except OSError as err:
            raise UsageError(
                f"cannot listen on {config.address}:{config.port}: {err.strerror or err}",
                hint="pick another --port",
            ) from err
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_address[1])

    def url(self, host: str | None = None) -> str:
        """The server's base URL as `host` (default: the bound address) reaches it."""
        address = host or str(self._server.server_address[0])
        if ":" in address:
            address = f"[{address}]"
        return f"http://{address}:{self.port}"

    def serve_forever(self) -> None:
        """Answer requests until `close` is called from another thread or Ctrl-C."""
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        """Answer requests in a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop answering and free the port (idempotent)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        with contextlib.suppress(OSError):
            self._server.server_close()

    def __enter__(self) -> HttpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
