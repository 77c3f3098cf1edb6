"""A real local registry for tests: Debian's ``docker-registry`` on 127.0.0.1 and a free port.

Fixtures ``registry`` (anonymous) and ``auth_registry`` (htpasswd, bcrypt) start one registry
per test module with a temp storage directory and stop it in teardown. Registered for every test
through ``pytest_plugins`` in tests/conftest.py. ``start_registry`` is usable outside pytest
(benchmarks).
"""

from __future__ import annotations

import contextlib
import io
import random
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from distrokit.host import Host

USERNAME = "tester"
PASSWORD = "s3cret-pass"


@dataclass(frozen=True)
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:PORT``; credentials if auth is on."""

    host: str
    storage: Path
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None  # set when the registry serves https with its own certificate

    @property
    def url(self) -> str:
        """Base URL of the registry API."""
        return f"{'https' if self.ca_file else 'http'}://{self.host}"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(port: int, storage: Path, htpasswd: Path | None, tls: Path | None) -> str:
    http = f"http:\n  addr: 127.0.0.1:{port}\n"
    if tls is not None:
        http += f"  tls:\n    certificate: {tls / 'cert.pem'}\n    key: {tls / 'key.pem'}\n"
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: test-realm\n    path: {htpasswd}\n"
    return (
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"{http}{auth}"
    )


def make_certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (cert.pem, key.pem) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    Host().run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", directory / "key.pem", "-out", directory / "cert.pem",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ]
    )  # fmt: skip
    return directory / "cert.pem"


def _wait_ready(
    url: str, proc: subprocess.Popen[bytes], ca_file: Path | None, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with status {proc.returncode}")
        verify: str | bool = str(ca_file) if ca_file else True
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/v2/", timeout=1, verify=verify).status_code in (200, 401):
                return
        time.sleep(0.1)
    raise RuntimeError(f"docker-registry did not answer on {url} within {timeout}s")


@contextlib.contextmanager
def start_registry(
    workdir: Path, *, auth: bool = False, tls: bool = False, storage: Path | None = None
) -> Iterator[Registry]:
    """Run a registry storing under `workdir` (or `storage`) until the context exits.

    With `tls` it serves https with a fresh self-signed certificate (``Registry.ca_file``).
    """
    host = Host()
    storage = storage or workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if auth:
        htpasswd = workdir / "htpasswd"
        line = host.output(["htpasswd", "-Bbn", USERNAME, PASSWORD])
        htpasswd.write_text(line.strip() + "\n")
    port = free_port()
    config = workdir / "config.yml"
    ca_file = make_certificate(workdir / "tls") if tls else None
    config.write_text(_config(port, storage, htpasswd, ca_file.parent if ca_file else None))
    proc = host.popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        reg = Registry(
            f"127.0.0.1:{port}",
            storage,
            USERNAME if auth else None,
            PASSWORD if auth else None,
            ca_file,
        )
        _wait_ready(reg.url, proc, ca_file)
        yield reg
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _require_registry_tools() -> None:
    host = Host()
    missing = [t for t in ("docker-registry", "htpasswd") if not host.has(t)]
    if missing:
        pytest.fail(f"host programs missing: {', '.join(missing)} (run scripts/setup)")


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    """An anonymous registry on 127.0.0.1 for the tests of one module."""
    _require_registry_tools()
    with tempfile.TemporaryDirectory(prefix="registry-") as tmp, start_registry(Path(tmp)) as reg:
        yield reg


@pytest.fixture(scope="module")
def auth_registry() -> Iterator[Registry]:
    """A registry that requires basic authentication (htpasswd with bcrypt)."""
    _require_registry_tools()
    with (
        tempfile.TemporaryDirectory(prefix="registry-") as tmp,
        start_registry(Path(tmp), auth=True) as reg,
    ):
        yield reg


def make_layer(path: Path, *, seed: int, size: int = 4096, name: str = "data") -> Path:
    """Write a deterministic, incompressible layer tar holding one file of `size` bytes."""
    data = random.Random(seed).randbytes(size)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    return path
