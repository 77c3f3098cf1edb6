"""`distrokit serve`'s HTTP server on 127.0.0.1, asked by real HTTP clients: byte ranges,
lengths, HEAD, 404 and 416, generated iPXE scripts, one log entry per request, and the CLI
stopping cleanly on Ctrl-C and SIGTERM."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from distrokit.netboot.http import HttpServer, RequestLog, ServeConfig

DATA = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HttpServer, list[RequestLog]]]:
    (tmp_path / "demo-kernel").write_bytes(DATA)
    (tmp_path / "demo-initrd.img").write_bytes(b"initrd")
    (tmp_path / "demo-cmdline").write_text("console=ttyS0\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other-kernel").write_bytes(b"k")
    (tmp_path / "sub" / "other-initrd.img").write_bytes(b"i")
    (tmp_path.parent / "secret").write_text("outside")
    logs: list[RequestLog] = []
    with HttpServer(ServeConfig(directory=tmp_path, address="127.0.0.1", port=0), logs.append) as s:
        s.start()
        yield s, logs


def _logged(logs: list[RequestLog], count: int) -> list[RequestLog]:
    """The log, once it has `count` entries: a request is logged just after its answer."""
    deadline = time.monotonic() + 5
    while len(logs) < count:
        assert time.monotonic() < deadline, f"only {len(logs)} of {count} requests logged"
        time.sleep(0.01)
    return logs


def _get(
    server: HttpServer, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_whole_file_with_its_length(served: tuple[HttpServer, list[RequestLog]]) -> None:
    server, logs = served
    status, headers, body = _get(server, "/demo-kernel")
    assert status == 200 and body == DATA
    assert headers["content-length"] == str(len(DATA))
    assert headers["accept-ranges"] == "bytes"
    logs = _logged(logs, 1)
    assert logs[-1].status == 200 and logs[-1].sent == len(DATA) and logs[-1].path == "/demo-kernel"


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [("0-99", 0, 99), ("1048570-", 1048570, len(DATA) - 1), ("-4", len(DATA) - 4, len(DATA) - 1)],
)
def test_byte_ranges(
    served: tuple[HttpServer, list[RequestLog]], spec: str, start: int, end: int
) -> None:
    server, logs = served
    status, headers, body = _get(server, "/demo-kernel", {"Range": f"bytes={spec}"})
    assert status == 206
    assert body == DATA[start : end + 1]
    assert headers["content-length"] == str(end - start + 1)
    assert headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    logs = _logged(logs, 1)
    assert logs[-1].range == f"bytes={spec}" and logs[-1].sent == end - start + 1


def test_unsatisfiable_range_and_ignored_multi_range(
    served: tuple[HttpServer, list[RequestLog]],
) -> None:
    server, _ = served
    status, headers, body = _get(server, "/demo-kernel", {"Range": f"bytes={len(DATA)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(DATA)}"
    assert headers["content-length"] == str(len(body))
    status, _, body = _get(server, "/demo-kernel", {"Range": "bytes=0-1,5-6"})
    assert status == 200 and body == DATA


def test_head_has_the_length_but_no_body(served: tuple[HttpServer, list[RequestLog]]) -> None:
    server, logs = served
    status, headers, body = _get(server, "/demo-kernel", method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(DATA))
    logs = _logged(logs, 1)
    assert logs[-1].method == "HEAD" and logs[-1].sent == 0


@pytest.mark.parametrize("path", ["/nope", "/sub", "/../secret", "/%2e%2e/secret", "/nope.ipxe"])
def test_not_found(served: tuple[HttpServer, list[RequestLog]], path: str) -> None:
    server, logs = served
    status, headers, body = _get(server, path)
    assert status == 404 and b"outside" not in body
    assert headers["content-length"] == str(len(body))
    assert _logged(logs, 1)[-1].status == 404


def test_scripts_use_the_host_the_client_asked(
    served: tuple[HttpServer, list[RequestLog]],
) -> None:
    server, _ = served
    status, _, body = _get(server, "/demo.ipxe", {"Host": "10.0.2.2:8080"})
    assert status == 200
    text = body.decode()
    assert text.startswith("#!ipxe\n")
    assert "set base-url http://10.0.2.2:8080\n" in text
    assert "set kernel-params console=ttyS0 initrd=demo-initrd.img\n" in text
    # the only build of the directory is also boot.ipxe; a sub-directory has its own
    assert _get(server, "/boot.ipxe", {"Host": "10.0.2.2:8080"})[2] == body
    sub = _get(server, "/sub/boot.ipxe", {"Host": "h:1"})[2].decode()
    assert "set base-url http://h:1/sub\n" in sub and "${base-url}/other-kernel" in sub


def test_keep_alive_serves_several_requests_on_one_connection(
    served: tuple[HttpServer, list[RequestLog]],
) -> None:
    server, logs = served
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for path in ("/boot.ipxe", "/demo-kernel", "/demo-initrd.img"):
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
    finally:
        conn.close()
    logs = _logged(logs, 3)
    assert [e.path for e in logs[-3:]] == ["/boot.ipxe", "/demo-kernel", "/demo-initrd.img"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0].decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("distrokit serve did not listen")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_logs_each_request_and_stops_cleanly(tmp_path: Path, signum: int) -> None:
    (tmp_path / "demo-kernel").write_bytes(DATA)
    (tmp_path / "demo-initrd.img").write_bytes(b"x" * 3 * 1024 * 1024)
    port = _free_port()
    argv = [sys.executable, "-m", "distrokit", "serve", "--address", "127.0.0.1",
            "--port", str(port), "--directory", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/demo-kernel", headers={"Range": "bytes=0-9"})
        assert conn.getresponse().read() == DATA[:10]
        conn.close()
        assert proc.stdout is not None
        seen = b""
        while b'"GET /demo-kernel"' not in seen:  # logged just after the answer
            line = proc.stdout.readline()
            assert line, seen.decode()
            seen += line
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=15)
        out = seen + out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.decode()
    assert proc.returncode == 0, text
    assert f"http://127.0.0.1:{port}/demo.ipxe  kernel 1.0 MiB, initrd 3.0 MiB" in text
    assert f"http://127.0.0.1:{port}/boot.ipxe  boots demo" in text
    assert '127.0.0.1 "GET /demo-kernel" 206 10 ' in text
    assert "stopped" in text and "Traceback" not in text
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_cli_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "distrokit", "serve", "--address", "127.0.0.1",
             "--port", str(port), "--directory", str(tmp_path)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
