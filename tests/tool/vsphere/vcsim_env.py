"""Fixtures and helpers of the vSphere tests: one real vcsim (govmomi's vCenter simulator)
per test session.

vcsim is built from Debian's govmomi source by scripts/build-vcsim (the same script
scripts/setup runs; a no-op once built). It serves https on 127.0.0.1 with a free port and a
certificate made here, requires a user and password, and keeps each datastore as a local
directory under a temporary directory of its own, so tests read uploaded bytes straight from
disk. The model: datacenter DC0, datastore LocalDS_0, a cluster DC0_C0 of two hosts plus the
standalone host DC0_H0, networks "VM Network" and the port group DC0_DVPG0, no VMs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from distrokit.cli import main
from distrokit.host import Host
from distrokit.push.vsphere import Session, Target

ROOT = Path(__file__).resolve().parents[3]
USER = "distrokit"
PASSWORD = "s3cret pass"


@dataclass(frozen=True)
class Vcsim:
    port: int
    cert: Path
    datastore_dir: Path

    def url(self, password: str = PASSWORD, port: int | None = None) -> str:
        quoted = password.replace(" ", "%20")
        return f"https://{USER}:{quoted}@127.0.0.1:{port or self.port}/sdk"

    def args(self, port: int | None = None) -> list[str]:
        """The connection flags every command in the tests uses."""
        return ["--url", self.url(port=port), "--cert-file", str(self.cert)]

    def session(self) -> Session:
        return Session(Target(url=self.url(), cert_file=self.cert, hostname="DC0_H0"))


@pytest.fixture(scope="session")
def vcsim_bin() -> Path:
    missing = [t for t in ("go", "openssl", "qemu-img", "xorriso") if not Host().has(t)]
    if missing:
        pytest.fail(f"host programs missing: {', '.join(missing)} (run scripts/setup)")
    out = subprocess.run(
        [ROOT / "scripts" / "build-vcsim"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        pytest.fail(f"scripts/build-vcsim failed:\n{out.stderr}")
    return Path(out.stdout.strip().splitlines()[-1])


def make_cert(host: Host, directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    host.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ]
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def running_vcsim(binary: Path, workdir: Path, *extra: str) -> Iterator[Vcsim]:
    """Start vcsim on a free port with its own certificate; stop it (SIGTERM) afterwards.
    `extra` replaces the default inventory flags (e.g. ``-esx``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = make_cert(Host(), workdir, "vcsim")
    env_file = workdir / "vcsim.env"
    tmp = workdir / "datastores"
    tmp.mkdir()
    proc = subprocess.Popen(
        [
            binary, "-l", "127.0.0.1:0", "-E", env_file, "-tlscert", cert, "-tlskey", key,
            "-username", USER, "-password", PASSWORD, "-vm", "0",
            *(extra or ("-cluster", "1", "-host", "2", "-standalone-host", "1")),
        ],
        env={**os.environ, "TMPDIR": str(tmp)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"vcsim did not start: {err}")
            time.sleep(0.02)
        url = env_file.read_text().split()[1].removeprefix("GOVC_URL=")
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        (ds_dir,) = tmp.glob("govcsim-*-LocalDS_0-*")
        yield Vcsim(port=port, cert=cert, datastore_dir=ds_dir)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def vcsim(vcsim_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcsim]:
    with running_vcsim(vcsim_bin, tmp_path_factory.mktemp("vcsim")) as sim:
        yield sim


@pytest.fixture(scope="session")
def api(vcsim: Vcsim) -> Iterator[Session]:
    """A logged-in API session for looking at what the commands made."""
    with vcsim.session() as session:
        yield session


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def dk(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``distrokit ARGS`` in process; its exit code, stdout and stderr."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        got = capsys.readouterr()
        return Result(code, got.out, got.err)

    return run


def make_iso(directory: Path, name: str, size: int = 1 << 20, seed: bytes = b"") -> Path:
    """A real ISO 9660 image holding `size` bytes of deterministic noise."""
    src = directory / f"{name}-src"
    src.mkdir()
    block = (seed or name.encode()) * 64
    data = bytearray()
    counter = 0
    while len(data) < size:
        data += block + counter.to_bytes(8, "little")
        counter += 1
    (src / "payload.bin").write_bytes(bytes(data[:size]))
    iso = directory / f"{name}.iso"
    Host().run(["xorriso", "-as", "mkisofs", "-quiet", "-V", name[:16], "-o", iso, src])
    return iso


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 that drops any connection once the client has sent more than
    `limit` bytes: SOAP calls pass, an upload breaks off midway, as on a flaky link."""

    def __init__(self, target_port: int, limit: int) -> None:
        self.target_port = target_port
        self.limit = limit
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.cut = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                sent += len(data)
                if count and sent > self.limit:
                    self.cut += 1
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def flat_file(sim: Vcsim, disk: Any) -> Path:
    """The local file holding a VM disk's bytes on the simulated datastore."""
    name = disk.backing.fileName.removeprefix("[LocalDS_0] ")
    return sim.datastore_dir / name.replace(".vmdk", "-flat.vmdk")


def disk_at(vm: Any, unit: int) -> Any:
    found = [
        d
        for d in vm.config.hardware.device
        if isinstance(d, vim.vm.device.VirtualDisk) and d.unitNumber == unit
    ]
    return found[0] if found else None


def write_marker(path: Path, marker: bytes) -> None:
    with path.open("r+b" if path.exists() else "wb") as f:
        f.seek(1 << 20)
        f.write(marker)


def read_marker(path: Path, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(1 << 20)
        return f.read(size)
