"""Pull and push against a real docker-registry on 127.0.0.1 (images built by the tests)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hosttools import require_tools
from registry import PASSWORD, USERNAME, Registry, make_layer, start_registry

from distrokit.cli import main
from distrokit.errors import CacheError, RegistryError
from distrokit.oci.cache import Cache
from distrokit.oci.endpoints import Endpoint, RegistryOptions, parse_mirrors
from distrokit.oci.image import DOCKER_MANIFEST, ImageConfigBlob, Platform
from distrokit.oci.pull import Progress, PullOptions, pull
from distrokit.oci.push import PushOptions, push
from distrokit.oci.registry import RegistryClient
from distrokit.reference import parse_reference

AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64")
FAST = {"backoff": 0.05, "retries": 3}


def _build_and_push(
    tmp: Path, reg: Registry, repo: str, *, seed: int, size: int = 20_000, **opts: object
) -> tuple[str, str]:
    """Build a two-layer image in a scratch cache and push it; return (ref, manifest digest)."""
    cache = Cache(tmp / f"build-{seed}")
    ref = f"{reg.host}/{repo}"
    layers = [
        make_layer(tmp / f"{seed}-a.tar", seed=seed, size=size),
        make_layer(tmp / f"{seed}-b.tar", seed=seed + 1000, size=size, name="other"),
    ]
    digest = cache.add_image(ref, layers, ImageConfigBlob(cmd=("/bin/true",)), AMD64)
    push(cache, ref, options=PushOptions(**opts))  # type: ignore[arg-type]
    return ref, digest


def _layers_content(cache: Cache, ref: str, platform: Platform = AMD64) -> list[bytes]:
    image = cache.image(ref, platform)
    out = []
    for layer in image.layers:
        with image.open_layer(layer) as s:
            out.append(s.read())
    return out


def _partials(cache_dir: Path) -> list[Path]:
    return list((cache_dir / "blobs" / "sha256").glob(".partial-*"))


def test_pull_by_tag_and_by_digest(registry: Registry, tmp_path: Path) -> None:
    require_tools("docker-registry")
    ref, digest = _build_and_push(tmp_path, registry, "test/tagged:1", seed=1)
    cache = Cache(tmp_path / "cache")
    events: list[Progress] = []
    [image] = pull(cache, [ref], AMD64, options=PullOptions(**FAST), progress=events.append)
    assert image.digest == digest
    assert events[-1].finished and events[-1].done == events[-1].total > 40_000
    assert _layers_content(cache, ref) == _layers_content(Cache(tmp_path / "build-1"), ref)

    by_digest = f"{registry.host}/test/tagged@{digest}"
    fresh = Cache(tmp_path / "cache2")
    [pinned] = pull(fresh, [by_digest], AMD64, options=PullOptions(**FAST))
    assert pinned.digest == digest
    names = [e.name for e in fresh.list_entries()]
    assert names == [by_digest]

    # Already cached: served from the cache, nothing downloaded.
    events.clear()
    pull(cache, [ref], AMD64, progress=events.append)
    assert events == [Progress(ref, 0, 0, finished=True, cached=True)]


def test_index_with_two_platforms(registry: Registry, tmp_path: Path) -> None:
    build = Cache(tmp_path / "build")
    ref = f"{registry.host}/test/multi:2"
    manifests = []
    for seed, plat in ((11, AMD64), (12, ARM64)):
        tag = f"{ref}-{plat.architecture}"
        layer = make_layer(tmp_path / f"{seed}.tar", seed=seed)
        build.add_image(tag, [layer], ImageConfigBlob(cmd=("x",)), plat)
        root = build.lookup(tag)
        assert root is not None
        manifests.append(root)
    index_digest = build.add_index(ref, manifests)
    assert push(build, ref, options=PushOptions(with_arch_tags=True, **FAST)) == index_digest

    cache = Cache(tmp_path / "cache")
    [arm] = pull(cache, [ref], ARM64, options=PullOptions(**FAST))
    assert arm.config.architecture == "arm64"
    assert arm.digest == manifests[1].digest
    assert cache.lookup(ref) is not None
    assert cache.lookup(ref).digest == index_digest  # type: ignore[union-attr]
    # Only the requested platform is stored; asking for the other one fetches it.
    assert not cache.blob_path(manifests[0].digest).exists()
    assert cache.find(ref, AMD64) is None
    [amd] = pull(cache, [ref], AMD64, options=PullOptions(**FAST))
    assert amd.config.architecture == "amd64"
    # Arch tags were pushed too.
    [arch] = pull(Cache(tmp_path / "c3"), [f"{ref}-arm64"], ARM64, options=PullOptions(**FAST))
    assert arch.digest == manifests[1].digest
    with pytest.raises(RegistryError, match=r"does not contain target platform linux/riscv64"):
        pull(cache, [ref], Platform.parse("linux/riscv64"), options=PullOptions(**FAST))


def test_missing_image_names_the_reference(registry: Registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/test/absent:9"
    with pytest.raises(RegistryError, match=rf"image {ref} not found in {registry.host}"):
        pull(Cache(tmp_path / "c"), [ref], AMD64, options=PullOptions(**FAST))


def _docker_config(tmp: Path, reg: Registry) -> Path:
    path = tmp / "docker" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    path.write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
    return path


def test_auth_ok_and_401_message(auth_registry: Registry, tmp_path: Path) -> None:
    config = _docker_config(tmp_path, auth_registry)
    ref, digest = _build_and_push(
        tmp_path, auth_registry, "test/private:1", seed=21, auth_config_path=config, **FAST
    )
    [image] = pull(
        Cache(tmp_path / "ok"), [ref], AMD64, options=PullOptions(auth_config_path=config, **FAST)
    )
    assert image.digest == digest
    with pytest.raises(RegistryError) as err:
        pull(
            Cache(tmp_path / "anon"),
            [ref],
            AMD64,
            options=PullOptions(auth_config_path=tmp_path / "none.json", **FAST),
        )
    assert f"authentication required for {auth_registry.host} (HTTP 401)" in str(err.value)
    assert err.value.hint is not None and "docker login" in err.value.hint


class _CuttingProxy:
    """A TCP proxy that cuts the first response to a GET of `digest` after `limit` bytes."""

    def __init__(self, upstream: str, digest: str, limit: int) -> None:
        host, port = upstream.split(":")
        self.upstream = (host, int(port))
        self.digest = digest.encode()
        self.limit = limit
        self.cuts = 0
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        armed = threading.Event()

        def upstream() -> None:
            with contextlib.suppress(OSError):  # the other side closed: nothing to forward
                while data := client.recv(65536):
                    self.requests.append(data)
                    if b"GET " in data and self.digest in data and self.cuts == 0:
                        self.cuts = 1
                        armed.set()
                    server.sendall(data)

        threading.Thread(target=upstream, daemon=True).start()
        sent = 0
        try:
            while data := server.recv(65536):
                if armed.is_set():
                    room = self.limit - sent
                    if len(data) >= room:
                        client.sendall(data[:room])
                        break
                    sent += len(data)
                client.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown() first: close() alone would not wake the thread blocked in recv.
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy_factory() -> Iterator[list[_CuttingProxy]]:
    made: list[_CuttingProxy] = []
    yield made
    for p in made:
        p.close()


def test_dropped_connection_is_resumed(
    registry: Registry, tmp_path: Path, proxy_factory: list[_CuttingProxy]
) -> None:
    ref, _ = _build_and_push(tmp_path, registry, "test/big:1", seed=31, size=3_000_000)
    image = Cache(tmp_path / "build-31").image(ref, AMD64)
    big = image.layers[0]
    proxy = _CuttingProxy(registry.host, big.digest, limit=2_200_000)
    proxy_factory.append(proxy)
    via_proxy = ref.replace(registry.host, proxy.host)
    cache = Cache(tmp_path / "cache")
    [pulled] = pull(cache, [via_proxy], AMD64, options=PullOptions(**FAST))
    assert proxy.cuts == 1
    assert any(b"Range: bytes=" in r and big.digest.encode() in r for r in proxy.requests)
    assert _layers_content(cache, via_proxy) == _layers_content(Cache(tmp_path / "build-31"), ref)
    assert pulled.digest == image.digest
    assert _partials(tmp_path / "cache") == []


def test_blob_with_wrong_digest_is_rejected(registry: Registry, tmp_path: Path) -> None:
    ref, _ = _build_and_push(tmp_path, registry, "test/corrupt:1", seed=41)
    layer = Cache(tmp_path / "build-41").image(ref, AMD64).layers[1]
    stored = (
        registry.storage / "docker/registry/v2/blobs/sha256" / layer.hex[:2] / layer.hex / "data"
    )
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    cache_dir = tmp_path / "cache"
    cache = Cache(cache_dir)
    with pytest.raises(RegistryError, match=rf"blob {layer.digest} of .*failed verification"):
        pull(cache, [ref], AMD64, options=PullOptions(**FAST))
    assert cache.lookup(ref) is None
    assert not cache.blob_path(layer.digest).exists()
    assert _partials(cache_dir) == []


def test_eight_concurrent_pulls(registry: Registry, tmp_path: Path) -> None:
    ref, digest = _build_and_push(tmp_path, registry, "test/shared:1", seed=51, size=400_000)
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "LINUXKIT_CACHE": str(cache_dir)}
    cmd = [sys.executable, "-m", "distrokit", "-q", "cache", "pull", "--platform", "linux/amd64"]
    procs = [subprocess.Popen([*cmd, ref], env=env, stderr=subprocess.PIPE) for _ in range(8)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else b"") for p in procs]
    assert [rc for rc, _ in results] == [0] * 8, results
    cache = Cache(cache_dir)
    assert [e.name for e in cache.list_entries()] == [ref]
    assert cache.image(ref, AMD64).digest == digest
    assert _layers_content(cache, ref) == _layers_content(Cache(tmp_path / "build-51"), ref)
    assert _partials(cache_dir) == []
    index = json.loads((cache_dir / "index.json").read_text())
    assert len(index["manifests"]) == 1


def test_cli_import_export_round_trip_and_ls(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, digest = _build_and_push(tmp_path, registry, "test/trip:1", seed=61)
    src, dst = tmp_path / "src", tmp_path / "dst"
    assert main(["cache", "pull", "--cache", str(src), "--platform", "linux/amd64", ref]) == 0
    out = tmp_path / "image.tar"
    assert main(["cache", "export", "-cache", str(src), "-outfile", str(out), ref]) == 0
    assert main(["cache", "import", "--cache", str(dst), str(out)]) == 0
    assert f"imported {ref}" in capsys.readouterr().out
    assert Cache(dst).image(ref, AMD64).digest == digest
    assert _layers_content(Cache(dst), ref) == _layers_content(Cache(src), ref)
    assert main(["cache", "ls", "--cache", str(dst)]) == 0
    listing = capsys.readouterr().out
    assert ref in listing and digest in listing and "kB" in listing
    assert main(["cache", "rm", "--cache", str(dst), ref]) == 0
    assert Cache(dst).list_entries() == []
    # A missing image is a clear failure, not a traceback.
    assert main(["cache", "export", "--cache", str(dst), "--outfile", str(out), ref]) == 1
    assert f"image {ref} is not in the cache" in capsys.readouterr().err


def test_skopeo_reads_what_we_push(registry: Registry, tmp_path: Path) -> None:
    require_tools("skopeo")
    ref, digest = _build_and_push(tmp_path, registry, "test/interop:1", seed=71)
    target = tmp_path / "oci"
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{target}:x"],
        check=True,
        capture_output=True,
    )
    index = json.loads((target / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest


def test_mirror_serves_another_registry(registry: Registry, tmp_path: Path) -> None:
    _build_and_push(tmp_path, registry, "team/app:3", seed=81)
    cache = Cache(tmp_path / "cache")
    mirrors = parse_mirrors([f"registry.invalid=http://{registry.host}"])
    [image] = pull(
        cache, ["registry.invalid/team/app:3"], AMD64, options=PullOptions(mirrors=mirrors, **FAST)
    )
    assert image.reference == "registry.invalid/team/app:3"
    assert [e.name for e in cache.list_entries()] == ["registry.invalid/team/app:3"]


def test_docker_schema2_image_from_skopeo(registry: Registry, tmp_path: Path) -> None:
    require_tools("skopeo")
    ref, _ = _build_and_push(tmp_path, registry, "test/oci:1", seed=91)
    docker_ref = f"{registry.host}/test/docker:1"
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
         "--format", "v2s2", f"docker://{ref}", f"docker://{docker_ref}"],
        check=True, capture_output=True,
    )  # fmt: skip
    cache = Cache(tmp_path / "cache")
    [image] = pull(cache, [docker_ref], AMD64, options=PullOptions(**FAST))
    assert image.manifest.media_type == DOCKER_MANIFEST
    assert image.layers[0].media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert _layers_content(cache, docker_ref) == _layers_content(Cache(tmp_path / "build-91"), ref)


def test_corrupt_cached_blob_is_fetched_again(registry: Registry, tmp_path: Path) -> None:
    ref, _ = _build_and_push(tmp_path, registry, "test/heal:1", seed=101)
    cache = Cache(tmp_path / "cache")
    [image] = pull(cache, [ref], AMD64, options=PullOptions(**FAST))
    blob = image.blob_path(image.layers[0])
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    blob.write_bytes(bytes(raw))
    with pytest.raises(CacheError, match=rf"layer {image.layers[0].digest} of image {ref}"):
        _layers_content(cache, ref)
    pull(cache, [ref], AMD64, options=PullOptions(**FAST))
    assert _layers_content(cache, ref) == _layers_content(Cache(tmp_path / "build-101"), ref)


def test_cli_pull_of_index_records_arch_name(registry: Registry, tmp_path: Path) -> None:
    build = Cache(tmp_path / "build")
    ref = f"{registry.host}/test/archname:1"
    build.add_image(f"{ref}-arm64", [make_layer(tmp_path / "l.tar", seed=111)],
                    ImageConfigBlob(), ARM64)  # fmt: skip
    arm = build.lookup(f"{ref}-arm64")
    assert arm is not None
    build.add_index(ref, [arm])
    push(build, ref, options=PushOptions(**FAST))
    cache_dir = tmp_path / "cache"
    assert main(["cache", "pull", "--cache", str(cache_dir), "--arch", "arm64", ref]) == 0
    names = sorted(e.name for e in Cache(cache_dir).list_entries())
    assert names == [ref, f"{ref}-arm64"]
    assert Cache(cache_dir).image(f"{ref}-arm64", ARM64).digest == arm.digest


def test_push_remote_name_mounts_and_published_only(
    registry: Registry, tmp_path: Path, proxy_factory: list[_CuttingProxy]
) -> None:
    proxy = _CuttingProxy(registry.host, "no-cut", limit=0)  # records requests only
    proxy_factory.append(proxy)
    ref, digest = _build_and_push(tmp_path, registry, "test/origin:1", seed=121)
    ref = ref.replace(registry.host, proxy.host)
    cache_dir = tmp_path / "cache"
    assert main(["cache", "pull", "--cache", str(cache_dir), ref]) == 0
    copy = f"{proxy.host}/test/copy:1"
    proxy.requests.clear()
    assert main(["cache", "--cache", str(cache_dir), "push", "--remote-name", copy, ref]) == 0
    sent = b"".join(proxy.requests)
    assert sent.count(b"mount=sha256") == 3  # config and two layers linked, none uploaded
    assert b"PUT /v2/test/copy/blobs/uploads" not in sent
    [copied] = pull(Cache(tmp_path / "c2"), [copy], AMD64, options=PullOptions(**FAST))
    assert copied.digest == digest
    # Same digest already there: nothing is pushed without --override.
    proxy.requests.clear()
    assert main(["cache", "push", "--cache", str(cache_dir), ref]) == 0
    assert b"PUT " not in b"".join(proxy.requests)

    local = Cache(cache_dir)
    local.add_image(f"{proxy.host}/test/unpublished:1", [make_layer(tmp_path / "u.tar", seed=122)],
                    ImageConfigBlob(), AMD64)  # fmt: skip
    args = ["cache", "rm", "--cache", str(cache_dir), "--published-only"]
    assert main([*args, ref, f"{proxy.host}/test/unpublished:1"]) == 0
    assert [e.name for e in Cache(cache_dir).list_entries()] == [f"{proxy.host}/test/unpublished:1"]


class _TokenGateway(http.server.ThreadingHTTPServer):
    """A bearer-token front for a real registry, the way Docker Hub-like registries work.

    ``/token`` hands out tokens: anonymous ones that may only read, and (with the right basic
    credentials) ones that may also write. Every ``/v2/`` request without a suitable token gets
    a 401 ``Bearer`` challenge; the others are forwarded to the registry.
    """

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _GatewayHandler)
        self.upstream = upstream
        self.host = f"127.0.0.1:{self.server_address[1]}"
        self.tokens: dict[str, str] = {}  # token -> "pull" or "pull,push"
        self.token_requests: list[str] = []


class _GatewayHandler(http.server.BaseHTTPRequestHandler):
    server: _TokenGateway

    def log_message(self, *args: object) -> None:
        pass

    def _token(self) -> None:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        self.server.token_requests.append(query.get("scope", ""))
        auth = self.headers.get("Authorization", "")
        want = query.get("scope", "").rsplit(":", 1)[-1]
        if auth:
            expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
            if auth != f"Basic {expected}":
                self._send(401, b"{}")
                return
            grant = want
        else:
            grant = "pull"  # anonymous: read only
        token = f"t{len(self.server.tokens)}"
        self.server.tokens[token] = grant
        self._send(200, json.dumps({"token": token}).encode())

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        if self.path.startswith("/token"):
            self._token()
            return
        need = "pull" if self.command in ("GET", "HEAD") else "pull,push"
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        granted = self.server.tokens.get(token, "")
        if need not in granted:
            repo = self.path.split("/v2/", 1)[-1].split("/blobs/")[0].split("/manifests/")[0]
            challenge = (
                f'Bearer realm="http://{self.server.host}/token",service="gateway",'
                f'scope="repository:{repo}:{need}"'
            )
            self._send(401, b'{"errors":[]}', {"WWW-Authenticate": challenge})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        resp = requests.request(
            self.command, f"http://{self.server.upstream}{self.path}", headers=headers,
            data=body, stream=True, allow_redirects=False, timeout=30,
        )  # fmt: skip
        data = resp.raw.read()
        keep = ("content-type", "location", "docker-content-digest", "range")
        self._send(
            resp.status_code, data, {k: v for k, v in resp.headers.items() if k.lower() in keep}
        )

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@pytest.fixture
def gateway(registry: Registry) -> Iterator[_TokenGateway]:
    server = _TokenGateway(registry.host)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_bearer_tokens_anonymous_pull_and_credentialed_push(
    gateway: _TokenGateway, tmp_path: Path
) -> None:
    reg = Registry(gateway.host, tmp_path, USERNAME, PASSWORD)
    config = _docker_config(tmp_path, reg)
    ref, digest = _build_and_push(tmp_path, reg, "test/bearer:1", seed=131,
                                  auth_config_path=config, **FAST)  # fmt: skip
    assert "repository:test/bearer:pull,push" in gateway.token_requests
    # Anonymous pull gets an anonymous read token.
    anon = PullOptions(auth_config_path=tmp_path / "none.json", **FAST)
    [image] = pull(Cache(tmp_path / "c"), [ref], AMD64, options=anon)
    assert image.digest == digest
    assert "repository:test/bearer:pull" in gateway.token_requests
    # Anonymous push is refused with a clear message.
    with pytest.raises(RegistryError, match=rf"authentication required for {gateway.host}"):
        push(Cache(tmp_path / "c"), ref, options=PushOptions(
            override=True, auth_config_path=tmp_path / "none.json", **FAST))  # fmt: skip


def test_https_mirror_needs_its_ca_certificate(registry: Registry, tmp_path: Path) -> None:
    require_tools("openssl")
    _build_and_push(tmp_path, registry, "test/tls:1", seed=141)
    # A second registry process serving the same storage over https with its own CA.
    with start_registry(tmp_path / "tls", tls=True, storage=registry.storage) as secure:
        assert secure.ca_file is not None
        mirrors = parse_mirrors([f"private.invalid={secure.url}"])
        ref = "private.invalid/test/tls:1"
        trusted = PullOptions(mirrors=mirrors, cert_files=(secure.ca_file,), **FAST)
        [image] = pull(Cache(tmp_path / "ok"), [ref], AMD64, options=trusted)
        assert image.reference == ref
        with pytest.raises(RegistryError, match=r"certificate") as err:
            pull(Cache(tmp_path / "bad"), [ref], AMD64,
                 options=PullOptions(mirrors=mirrors, **FAST))  # fmt: skip
        assert err.value.hint is not None and "--cert-file" in err.value.hint


def test_arch_of_a_single_manifest_image_is_checked(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, _ = _build_and_push(tmp_path, registry, "test/amd64only:1", seed=161)
    cache_dir = tmp_path / "cache"
    assert main(["cache", "pull", "--cache", str(cache_dir), "--arch", "arm64", ref]) == 1
    assert f"image {ref} is built for linux/amd64, not linux/arm64" in capsys.readouterr().err
    assert Cache(cache_dir).entries() == []
    assert main(["cache", "pull", "--cache", str(cache_dir), "--arch", "amd64", ref]) == 0


def test_insecure_registry_reaches_tls_without_verification(
    registry: Registry, tmp_path: Path
) -> None:
    require_tools("openssl")
    _, digest = _build_and_push(tmp_path, registry, "test/insecure:1", seed=151)
    with start_registry(tmp_path / "tls", tls=True, storage=registry.storage) as secure:
        options = RegistryOptions(insecure_registries=frozenset({"reg.example:5000"}))
        with RegistryClient(options) as client:
            first, fallback = client.endpoints("reg.example:5000")
            assert (first.base, first.verify) == ("https://reg.example:5000", False)
            assert fallback.base == "http://reg.example:5000"
            # The same kind of endpoint at the TLS registry's real address (a name that is not
            # loopback would need DNS): verification off must work, not fail setting it up.
            unverified = Endpoint("reg.example:5000", secure.url, verify=False)
            ref = parse_reference(f"{secure.host}/test/insecure:1")
            _, body = client.get_manifest(unverified, ref, "1")
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest


_BUILD_SCRIPT = """
import sys
from pathlib import Path
from distrokit.oci.cache import Cache
from distrokit.oci.image import ImageConfigBlob, Platform
cache_dir, layer, name = sys.argv[1:]
Cache(Path(cache_dir)).add_image(name, [Path(layer)], ImageConfigBlob(), Platform.parse("amd64"))
"""


def test_concurrent_pulls_and_builds_lose_no_entry(registry: Registry, tmp_path: Path) -> None:
    refs = [_build_and_push(tmp_path, registry, f"test/p{i}:1", seed=150 + i)[0] for i in range(4)]
    layer = make_layer(tmp_path / "local.tar", seed=160, size=200_000)
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "LINUXKIT_CACHE": str(cache_dir)}
    pulls = [
        [sys.executable, "-m", "distrokit", "-q", "cache", "pull", "--arch", "amd64", ref]
        for ref in refs
    ]
    built = [f"local/built{i}:1" for i in range(4)]
    builds = [[sys.executable, "-c", _BUILD_SCRIPT, str(cache_dir), str(layer), b] for b in built]
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE) for cmd in pulls + builds]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else b"") for p in procs]
    assert [rc for rc, _ in results] == [0] * 8, results
    cache = Cache(cache_dir)
    expected = sorted([*refs, *(f"docker.io/{b}" for b in built)])
    assert sorted(e.name for e in cache.list_entries()) == expected
    for name in expected:
        assert all(_layers_content(cache, name))
    assert _partials(cache_dir) == []
