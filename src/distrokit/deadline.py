"""Deadlines for HTTP transfers, which requests' timeouts alone do not give.

requests applies its timeout to each socket read: a peer that sends one byte every few seconds
(headers or body) never trips it, and a thread blocked in a read cannot be stopped from outside.
A `Watchdog` fixes both. Every socket a request uses while a `Watch` is active in its thread
is attached to that watch (through the connection pools `watch_pools` puts in an adapter); when
the watch's deadline passes, or `cancel` is called (Ctrl-C), the watchdog shuts those sockets
down, so the blocked read returns at once and the caller sees `Watch.expired` or
`Watch.cancelled`.

`read_body` reads a response body in pieces as they arrive, capped in size, and moves the
deadline on only while the body keeps arriving at `MIN_RATE` or faster.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# A transfer slower than this, averaged over one timeout window, is treated as stalled.
MIN_RATE = 1024
_TICK = 0.05
_local = threading.local()


class BodyTooLarge(Exception):
    """A response body was longer than the caller's limit."""


class Watch:
    """The deadline of one transfer and the connections it uses."""

    def __init__(self, seconds: float, cancelled: threading.Event) -> None:
        self.window = seconds
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self._cancelled = cancelled
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        """Whether the watchdog was cancelled (the user interrupted)."""
        return self._cancelled.is_set()

    @property
    def cut(self) -> bool:
        """Whether the transfer was cut short: deadline passed or cancelled."""
        return self.expired or self.cancelled

    def extend(self, seconds: float | None = None) -> None:
        """Move the deadline to `seconds` (default: one window) from now."""
        self.deadline = time.monotonic() + (self.window if seconds is None else seconds)

    def attach(self, sock: socket.socket) -> None:
        """Watch `sock` (a connection's socket) too; cut it at once if already cut."""
        with self._lock:
            self._socks.append(sock)
        if self.cut:
            self.shut()

    def shut(self) -> None:
        """Shut down every socket of the transfer (wakes a thread blocked reading it)."""
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                # shutdown wakes a read blocked on a silent peer, but Linux still hands
                # over bytes a trickling peer keeps sending: the tiny timeout makes the
                # next read that would wait fail instead. The plain socket's methods: an
                # SSL socket's shutdown would touch TLS state the reading thread is using.
                socket.socket.settimeout(sock, 0.001)
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def current_watch() -> Watch | None:
    """The watch of the transfer this thread is in, if any."""
    return getattr(_local, "watch", None)


def _attach(conn: Any) -> Any:
    # The socket, not the connection: http.client drops a connection's socket (handing it to
    # the response) when the server says Connection: close.
    watch = current_watch()
    sock = getattr(conn, "sock", None)
    if watch is not None and sock is not None:
        watch.attach(sock)
    return conn


class _HTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _attach(self)


class _HTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _attach(self)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        return _attach(super()._get_conn(timeout))


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        return _attach(super()._get_conn(timeout))


def watch_pools(adapter: HTTPAdapter) -> HTTPAdapter:
    """Make the connections of `adapter` visible to the watch of the thread using them."""
    adapter.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return adapter


class Watchdog:
    """Cuts the connections of watches whose deadline passed, or all of them on `cancel`."""

    def __init__(self) -> None:
        self._watches: set[Watch] = set()
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called."""
        return self._cancelled.is_set()

    @contextlib.contextmanager
    def watch(self, seconds: float) -> Iterator[Watch]:
        """A watch for the requests this thread makes inside the block."""
        w = Watch(seconds, self._cancelled)
        with self._lock:
            self._watches.add(w)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-deadline", daemon=True)
                self._thread.start()
        previous = getattr(_local, "watch", None)
        _local.watch = w
        try:
            yield w
        finally:
            _local.watch = previous
            with self._lock:
                self._watches.discard(w)

    def sleep(self, seconds: float) -> bool:
        """Sleep unless cancelled; False if cancelled."""
        return not self._cancelled.wait(seconds)

    def cancel(self) -> None:
        """Cut every watched transfer now; later ones are cut as they start."""
        self._cancelled.set()
        with self._lock:
            watches = list(self._watches)
        for w in watches:
            w.shut()

    def close(self) -> None:
        """Stop the watchdog thread."""
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(_TICK):
            now = time.monotonic()
            with self._lock:
                late = [w for w in self._watches if not w.expired and now > w.deadline]
            for w in late:
                w.expired = True
                w.shut()


def read_body(resp: requests.Response, limit: int, watch: Watch | None) -> bytes:
    """The body of `resp`, read as it arrives; `BodyTooLarge` past `limit` bytes.

    The watch's deadline moves on by one window each time a window's worth of `MIN_RATE`
    bytes has arrived, so a body that keeps coming is never cut, and a trickle is.
    """
    out = bytearray()
    window = 0
    for chunk in iter_body(resp):
        out += chunk
        if len(out) > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        window += len(chunk)
        if watch is not None and window >= MIN_RATE * watch.window:
            watch.extend()
            window = 0
    return bytes(out)


def iter_body(resp: requests.Response, size: int = 1 << 20) -> Iterator[bytes]:
    """Pieces of the body of a streamed `resp` as soon as they arrive (up to `size` each)."""
    raw = resp.raw
    watch = current_watch()
    while True:
        chunk = raw.read1(size, decode_content=True)
        if watch is not None and watch.cut:
            # A body without Content-Length ends at the cut as if complete: it is not.
            raise requests.ConnectionError("transfer cut at its deadline")
        if not chunk:
            # urllib3 checks Content-Length on the read that finds the end.
            return
        yield chunk
