"""A fault-injecting HTTP proxy on 127.0.0.1 in front of a real registry, for deadline tests.

Each request is forwarded to the registry unless a `Fault` matches its path; then the answer
is damaged the way a broken registry or network damages it:

- ``stall``: read the request, answer nothing, keep the connection open;
- ``stall-body``: send the headers and half the body, then nothing more;
- ``trickle``: send the whole answer, headers included, one byte per second;
- ``trickle-body``: send the headers at once and the body one byte per second;
- ``endless``: answer 200 with a body that never ends (no Content-Length);
- ``drop``: send the headers and half the body, then close the connection.

One request per connection (``Connection: close``), so each fault hits exactly one request.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

MODES = ("stall", "stall-body", "trickle", "trickle-body", "endless", "drop")


@dataclass
class Fault:
    """Damage answers to requests whose path contains `match` (`times` of them, or all)."""

    mode: str
    match: str
    times: int | None = None
    rate: float = 1.0  # bytes per second of the trickles

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}")


class FaultProxy:
    """The proxy: ``host`` is ``127.0.0.1:PORT``; `faults` may be changed between requests."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.hits: list[tuple[str, str, str]] = []  # (method, path, mode or "pass")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.host = f"127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        """Stop serving; stalled connections are released."""
        self._stop.set()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.match in path and fault.times != 0:
                    if fault.times is not None:
                        fault.times -= 1
                    self.hits.append((method, path, fault.mode))
                    return fault
            self.hits.append((method, path, "pass"))
            return None

    def _handle(self, client: socket.socket) -> None:
        try:
            with client:
                request = _read_request(client)
                if request is None:
                    return
                method, path, headers, body = request
                fault = self._fault_for(method, path)
                if fault is not None and fault.mode == "stall":
                    self._stop.wait(600)
                    return
                if fault is not None and fault.mode == "endless":
                    self._endless(client)
                    return
                head, payload = self._forward(method, path, headers, body)
                self._answer(client, fault, head, payload)
        except OSError:
            pass  # the client went away: nothing to do

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[bytes, bytes]:
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, path, body=body or None, headers=sent)
            resp = conn.getresponse()
            payload = resp.read()
            lines = [f"HTTP/1.1 {resp.status} {resp.reason}"]
            for key, value in resp.getheaders():
                if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                    lines.append(f"{key}: {value}")
            length = resp.getheader("Content-Length") if method == "HEAD" else str(len(payload))
            lines += [f"Content-Length: {length or 0}", "Connection: close"]
            return ("\r\n".join(lines) + "\r\n\r\n").encode(), payload
        finally:
            conn.close()

    def _answer(self, client: socket.socket, fault: Fault | None, head: bytes, body: bytes) -> None:
        mode = fault.mode if fault else "pass"
        if mode == "pass":
            client.sendall(head + body)
        elif mode == "trickle":
            self._trickle(client, head + body, fault)
        elif mode == "trickle-body":
            client.sendall(head)
            self._trickle(client, body, fault)
        else:  # stall-body, drop: half the body first
            client.sendall(head + body[: len(body) // 2])
            if mode == "stall-body":
                self._stop.wait(600)
            else:
                client.shutdown(socket.SHUT_RDWR)

    def _trickle(self, client: socket.socket, data: bytes, fault: Fault | None) -> None:
        delay = 1.0 / (fault.rate if fault else 1.0)
        for i in range(len(data)):
            client.sendall(data[i : i + 1])
            if self._stop.wait(delay):
                return

    def _endless(self, client: socket.socket) -> None:
        client.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Connection: close\r\n\r\n"
        )
        block = b"\0" * 65536
        while not self._stop.is_set():
            client.sendall(block)


def _read_request(client: socket.socket) -> tuple[str, str, dict[str, str], bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = first.split(" ", 2)
    headers = dict(line.split(": ", 1) for line in lines if ": " in line)
    length = int(headers.get("Content-Length", "0"))
    while len(body) < length:
        chunk = client.recv(65536)
        if not chunk:
            break
        body += chunk
    return method, path, headers, body


@contextlib.contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """A `FaultProxy` in front of `upstream` (``host:port``) until the block ends."""
    proxy = FaultProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()


def wait_for(predicate: object, timeout: float = 30.0) -> bool:
    """Poll `predicate()` until true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False
