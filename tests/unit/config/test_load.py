"""Loading real files: the seeds, merging, inputs (path, stdin, URL), templates, dumping."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from distrokit.config import load, model
from distrokit.config.dump import dump_json, dump_yaml
from distrokit.config.load import load_config
from distrokit.config.schema import object_kinds
from distrokit.errors import ConfigError, PackageError

DATA = Path(__file__).resolve().parents[2] / "data" / "config"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_seed000_validates() -> None:
    config = load_config([str(DATA / "seed000.yml")])
    assert config.kernel == model.Kernel(image="linuxkit/kernel:5.10.92", cmdline="console=tty0")
    assert len(config.init) == 4
    assert [s.name for s in config.services] == ["getty", "rngd", "dhcpcd", "nginx"]
    nginx = config.services[3]
    assert nginx.capabilities is not None and len(nginx.capabilities) == 5
    assert nginx.binds == ("/etc/resolv.conf:/etc/resolv.conf",)
    assert config.services[0].env == ("INSECURE=true",)
    assert nginx.origin == model.Origin(
        file=str(DATA / "seed000.yml"), line=21, column=5, path="services[3]"
    )


def test_seed003_validates_with_trust_warning_and_legacy_outputs() -> None:
    config = load_config([str(DATA / "seed003.yml")])
    assert config.default_formats == ("kernel+initrd", "iso-bios", "iso-efi")
    assert len(config.warnings) == 1
    assert "trust: content trust is no longer supported" in config.warnings[0]
    assert config.services[0].oom_score_adj == -800
    assert config.onboot[2].command == (
        "/sbin/dhcpcd",
        "--nobackground",
        "-f",
        "/dhcpcd.conf",
        "-1",
    )
    assert config.files == (model.File(path="etc/docker/daemon.json", contents='{"debug": true}'),)


def test_schema_tables_match_the_model() -> None:
    for kind in object_kinds():
        cls = kind.build
        if not dataclasses.is_dataclass(cls):
            continue
        attrs = {f.attr for f in kind.fields}
        # origin and written_source are bookkeeping filled by the loader, not YAML keys
        fields = {f.name for f in dataclasses.fields(cls)} - {"origin", "written_source"}
        assert attrs == fields, kind.name


def test_merge_kernel_field_by_field_and_lists_concatenated(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "a.yml",
        "kernel:\n  image: k:1\n  cmdline: console=ttyS0\n  tar: none\ninit: [i:1]\n"
        "services:\n  - name: s1\n    image: x\nvolumes:\n  - name: v1\n",
    )
    b = write(
        tmp_path,
        "b.yml",
        "kernel:\n  image: k:2\n  cmdline: ''\n  ucode: u.cpio\ninit: [i:2]\n"
        "services:\n  - name: s2\n    image: y\n    binds: ['v1:/v']\n",
    )
    config = load_config([a, b])
    assert config.kernel == model.Kernel(
        image="k:2", cmdline="console=ttyS0", tar="none", ucode="u.cpio"
    )
    assert config.init == ("i:1", "i:2")
    assert [s.name for s in config.services] == ["s1", "s2"]
    assert config.sources == (a, b)


def test_duplicates_across_files_are_rejected(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", "services:\n  - name: s\n    image: x\nvolumes:\n  - name: v\n")
    b = write(tmp_path, "b.yml", "volumes:\n  - name: v\nservices:\n  - name: s\n    image: y\n")
    with pytest.raises(ConfigError) as info:
        load_config([a, b])
    assert info.value.problems == [
        f"{b}:4:5: services[0]: duplicate service name: s (first defined at {a}:2:5)",
        f"{b}:2:5: volumes[0]: duplicate volume name: v (first defined at {a}:5:5)",
    ]


def test_uid_names_a_container_of_another_file(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", "onboot:\n  - name: init-db\n    image: x\n")
    b = write(tmp_path, "b.yml", "files:\n  - path: etc/db\n    contents: x\n    uid: init-db\n")
    assert load_config([a, b]).files[0].uid == "init-db"


def test_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stream = io.StringIO("files:\n  - path: a\n    source: x/y\n")
    config = load_config(["-"], stdin=stream, host_files=True)
    assert config.files[0].source == str(tmp_path / "x" / "y")
    with pytest.raises(ConfigError) as info:
        load_config(["-"], stdin=io.StringIO("kernel: 1\n"))
    assert info.value.problems == ["<stdin>:1:9: kernel: expected a mapping, got an integer (1)"]


def test_file_sources_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    sub = tmp_path / "conf"
    sub.mkdir()
    path = write(
        sub,
        "m.yml",
        "files:\n  - path: a\n    source: keys/a.pub\n  - path: b\n    source: ~/b\n"
        "  - path: c\n    source: /etc/hostname\n",
    )
    sources = [f.source for f in load_config([path]).files]
    assert sources == [str(sub / "keys" / "a.pub"), str(tmp_path / "home" / "b"), "/etc/hostname"]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/endless.yml":
            self.send_response(200)
            self.end_headers()
            with contextlib.suppress(OSError):
                while True:
                    self.wfile.write(b"# " + b"x" * 65534)
            return
        if self.path == "/slow.yml":
            self.send_response(200)
            self.end_headers()
            with contextlib.suppress(OSError):
                for byte in b"services: []\n" * 100:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.5)
            return
        if self.path == "/shadow.yml":
            body = b"files:\n  - path: etc/stolen\n    source: /etc/shadow\n"
            self.send_response(200)
        elif self.path == "/m.yml":
            body = b"services:\n  - name: web\n    image: nginx\n"
            self.send_response(200)
        else:
            body = b"nope"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_url_input(http_base: str) -> None:
    config = load_config([f"{http_base}/m.yml"])
    assert config.services[0].name == "web"
    with pytest.raises(ConfigError) as info:
        load_config([f"{http_base}/missing.yml"])
    assert info.value.problems == [
        f"{http_base}/missing.yml: cannot read: cannot fetch {http_base}/missing.yml: "
        "HTTP 404 Not Found"
    ]


def test_remote_and_stdin_yaml_may_not_read_host_files(http_base: str) -> None:
    url = f"{http_base}/shadow.yml"
    with pytest.raises(ConfigError) as info:
        load_config([url])
    assert info.value.problems == [
        f"{url}:3:13: files[0].source: a configuration from {url} may not read host files "
        "(/etc/shadow) (pass --allow-host-files if you trust it to read any file you can read)"
    ]
    stdin = io.StringIO("files:\n  - path: etc/stolen\n    source: /etc/shadow\n")
    with pytest.raises(ConfigError, match="from <stdin> may not read host files"):
        load_config(["-"], stdin=stdin)
    assert load_config([url], host_files=True).files[0].source == "/etc/shadow"


def test_url_body_is_bounded_in_size_and_time(
    http_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config([f"{http_base}/endless.yml"])
    assert info.value.problems == [
        f"{http_base}/endless.yml: cannot read: {http_base}/endless.yml is larger than 4 MiB"
    ]
    monkeypatch.setattr(load, "URL_TIMEOUT", 1.0)
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"less than 1 kB/s, for 1 s"):
        load_config([f"{http_base}/slow.yml"])
    assert time.monotonic() - start < 3


def test_stdin_is_bounded_in_size() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(["-"], stdin=io.StringIO("#" * (5 << 20)))
    assert info.value.problems == ["-: cannot read: standard input is larger than 4 MiB"]


def test_templates_resolved_relative_to_the_yaml(tmp_path: Path) -> None:
    seen: list[Path] = []

    def resolve(path: Path) -> str:
        seen.append(path)
        if path.name == "broken":
            raise PackageError(f"{path}: not a package directory")
        return f"example/{path.name}:abc123"

    path = write(
        tmp_path,
        "m.yml",
        "onboot:\n  - name: a\n    image: '@pkg:./pkg/a'\n",
    )
    config = load_config([path], resolve_pkg=resolve)
    assert config.onboot[0].image == "example/a:abc123"
    assert seen == [tmp_path / "pkg" / "a"]
    bad = write(tmp_path, "bad.yml", "onboot:\n  - name: a\n    image: '@pkg:broken'\n")
    with pytest.raises(ConfigError) as info:
        load_config([bad], resolve_pkg=resolve)
    assert info.value.problems == [
        f"{bad}:3:12: onboot[0].image: cannot resolve @pkg:broken: "
        f"{tmp_path / 'broken'}: not a package directory"
    ]


def test_templates_are_refused_on_stdin() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(["-"], stdin=io.StringIO("init: ['@pkg:a']\n"), resolve_pkg=str)
    assert info.value.problems == [
        "<stdin>:1:8: init[0]: @pkg: templates are only resolved in local files"
    ]


def test_decisions_on_quirks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.yml",
        "services:\n  - name: a\n    image: alpine\n"
        "    devices:\n      - {path: /dev/fuse, type: c, major: 10, minor: 229, mode: 0666}\n"
        "    uidMappings:\n      - {hostID: 1000, containerID: 0, size: 1}\n"
        "    resources:\n      memory: {kernelTCP: 5, disableOOMKiller: true}\n"
        "      pids: {limit: 10}\n"
        "    net: off\n",
    )
    svc = load_config([path]).services[0]
    assert svc.devices == (
        model.Device(path="/dev/fuse", type="c", major=10, minor=229, mode="0666"),
    )
    assert svc.uid_mappings == (model.IdMapping(host_id=1000, container_id=0, size=1),)
    assert svc.resources == model.Resources(
        memory=model.Memory(kernel_tcp=5, disable_oom_killer=True), pids_limit=10
    )
    assert svc.net == "off"  # YAML 1.2: a word, not a boolean


def test_dump_round_trip(tmp_path: Path) -> None:
    original = load_config([str(DATA / "seed003.yml")])
    text = dump_yaml(original)
    assert "docker.io/library/nginx:alpine" in text
    assert "trust" not in text and "outputs" not in text
    again = load_config([write(tmp_path, "dumped.yml", text)])
    assert dump_yaml(again) == text
    assert [s.name for s in again.services] == [s.name for s in original.services]
    assert dump_json(again).startswith('{\n  "kernel": {\n    "image": "docker.io/linuxkit/kernel')


def test_dump_keeps_explicit_empty_lists_and_camel_case(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.yml",
        "services:\n  - name: a\n    image: alpine\n    capabilities: []\n"
        "    oomScoreAdj: 1\n    binds.add: [/a:/b]\n    resources:\n      pids: {limit: 3}\n",
    )
    text = dump_yaml(load_config([path]))
    assert text == (
        "services:\n"
        "  - name: a\n"
        "    image: docker.io/library/alpine\n"
        "    capabilities: []\n"
        "    binds.add:\n"
        "      - /a:/b\n"
        "    oomScoreAdj: 1\n"
        "    resources:\n"
        "      pids:\n"
        "        limit: 3\n"
    )
