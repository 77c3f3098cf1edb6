"""config.json and runtime.json of built bundles, compared as parsed JSON (sections 1.4-1.13)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from buildfix import F, config_from, new_images, read_json, read_member, run_build

DEV = ["nosuid", "strictatime", "mode=755", "size=65536k"]
PTS = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
PROC = ["nosuid", "nodev", "noexec", "relatime"]
SYS = ["nosuid", "noexec", "nodev"]
CGROUP = ["nosuid", "noexec", "nodev", "relatime", "ro"]
BIND_NS = dict.fromkeys(("cgroup", "ipc", "mnt", "net", "pid", "user", "uts"), "")


def _mount(dest: str, kind: str, options: list[str], source: str | None = None) -> Any:
    return {"destination": dest, "type": kind, "source": source or kind, "options": options}


YAML = """kernel:
  image: example.org/kernel:1
init:
  - example.org/init:1
onboot:
  - name: setup
    image: example.org/app:1
services:
  - name: hello
    image: example.org/hello:1
    env:
      - GREETING=hi
    capabilities.add:
      - CAP_NET_ADMIN
  - name: sink
    image: example.org/app:1
    command: ["/app", "serve"]
    cwd: /srv
    net: new
    pid: host
    ipc: new
    uts: /run/netns/x
    hostname: sinkhost
    capabilities: [CAP_CHOWN, CAP_AUDIT_WRITE]
    ambient: [CAP_CHOWN]
    uid: setup
    gid: 20
    additionalGids: [hello, 30]
    noNewPrivileges: true
    oomScoreAdj: -500
    rlimits: ["nofile,100,200", "RLIMIT_CORE,unlimited,unlimited"]
    tmpfs: ["/run:size=10m,mode=755"]
    binds: ["/var/log:/var/log", "/etc/x:/etc/x:ro,shared", "data:/data:ro"]
    mounts:
      - type: proc
      - destination: /dev
        type: tmpfs
        source: tmpfs
        options: [nosuid]
    devices:
      - path: /dev/null
        type: c
        major: 1
        minor: 3
        mode: "0666"
      - path: all
        type: b
    sysctl:
      net.ipv4.ip_forward: "1"
    annotations:
      org.example: "yes"
    maskedPaths: [/proc/kcore]
    readonlyPaths: [/proc/sys]
    cgroupsPath: /sink
    rootfsPropagation: shared
    resources:
      memory:
        limit: 1048576
      cpu:
        shares: 512
    runtime:
      cgroups: [sink]
      mkdir: [/run/sink]
      interfaces:
        - name: eth1
        - add: veth
          peer: veth-host
      bindNS:
        net: /run/netns/sink
      namespace: custom
      mounts:
        - type: bind
          source: /a
          destination: /b
          options: [rbind]
volumes:
  - name: data
    readonly: true
"""


@pytest.fixture(scope="module")
def tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ocispec")
    images = new_images(tmp)
    images.add("example.org/kernel:1", [F("kernel", data=b"K"), F("kernel.tar", data=b"")])
    images.add("example.org/init:1", [F("init", data=b"i")])
    images.add(
        "example.org/app:1",
        [F("app", data=b"a")],
        entrypoint=("/app",),
        env=("PATH=/bin",),
        working_dir="/w",
    )
    images.add(
        "example.org/hello:1",
        [F("hello.sh", data=b"h")],
        cmd=("/usr/local/bin/hello.sh",),
        env=("PATH=/usr/bin",),
        labels={
            "org.mobyproject.config": (
                '{"capabilities": ["CAP_NET_BIND_SERVICE", "CAP_SYS_TIME"],'
                ' "binds": ["/var/log:/var/log"], "readonly": true}'
            )
        },
    )
    config = config_from(
        tmp,
        YAML.replace("image: example.org/kernel:1\n", "image: example.org/kernel:1\n  tar: none\n"),
    )
    run_build(images, config, tmp / "out", "tar", name="s")
    return tmp / "out" / "s.tar"


def test_label_merge_matches_linuxkit_reference_output(tar: Path) -> None:
    """The `hello` service of the LinuxKit reference build (linuxkit-tar-layout.md)."""
    caps = ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_SYS_TIME"]
    assert read_json(tar, "containers/services/hello/config.json") == {
        "ociVersion": "1.2.1",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["/usr/local/bin/hello.sh"],
            "env": ["GREETING=hi"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": ["CAP_NET_BIND_SERVICE", "CAP_SYS_TIME", "CAP_NET_ADMIN"],
                "inheritable": caps,
                "permitted": caps,
            },
        },
        "root": {"path": "rootfs", "readonly": True},
        "mounts": [
            _mount("/dev", "tmpfs", [*DEV, "ro"]),
            _mount("/dev/pts", "devpts", PTS),
            _mount("/proc", "proc", PROC),
            _mount("/sys", "sysfs", [*SYS, "ro"]),
            _mount("/sys/fs/cgroup", "cgroup", CGROUP),
            _mount("/var/log", "bind", ["rw", "rbind", "rshared"], "/var/log"),
        ],
        "linux": {"resources": {}, "namespaces": [{"type": "pid"}, {"type": "mount"}]},
    }
    assert read_json(tar, "containers/services/hello/runtime.json") == {
        "cgroups": [],
        "mounts": [
            {
                "destination": "/containers/services/hello/rootfs",
                "source": "/containers/services/hello/rootfs",
                "options": ["bind"],
            }
        ],
        "mkdir": [],
        "interfaces": [],
        "bindNS": BIND_NS,
        "namespace": "",
    }


def test_json_is_indented_by_four_spaces_without_trailing_newline(tar: Path) -> None:
    raw = read_member(tar, "containers/services/hello/config.json")
    assert raw.startswith(b'{\n    "ociVersion": "1.2.1",\n    "process": {\n        "user"')
    assert not raw.endswith(b"\n")


def test_default_container_has_no_capabilities_and_overlay_runtime(tar: Path) -> None:
    config = read_json(tar, "containers/onboot/000-setup/config.json")
    assert config["process"] == {
        "user": {"uid": 0, "gid": 0},
        "args": ["/app"],
        "env": ["PATH=/bin"],
        "cwd": "/w",
        "capabilities": {},
    }
    assert config["root"] == {"path": "rootfs"}
    assert [m["destination"] for m in config["mounts"]] == [
        "/dev",
        "/dev/pts",
        "/proc",
        "/sys",
        "/sys/fs/cgroup",
    ]
    assert config["mounts"][0]["options"] == DEV
    b = "/containers/onboot/000-setup"
    assert read_json(tar, f"{b[1:]}/runtime.json")["mounts"] == [
        {"destination": f"{b}/tmp", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"{b}/tmp", "options": ["remount", "private"]},
        {
            "destination": f"{b}/rootfs",
            "type": "overlay",
            "source": "overlay",
            "options": [f"lowerdir={b}/lower", f"upperdir={b}/tmp/upper", f"workdir={b}/tmp/work"],
        },
    ]


def test_every_field_of_a_full_spec(tar: Path) -> None:
    c = read_json(tar, "containers/services/sink/config.json")
    p = c["process"]
    assert p["user"] == {"uid": 100, "gid": 20, "additionalGids": [101, 30]}
    assert p["args"] == ["/app", "serve"] and p["cwd"] == "/srv" and p["env"] == ["PATH=/bin"]
    assert p["capabilities"] == {
        "bounding": ["CAP_AUDIT_WRITE", "CAP_CHOWN"],
        "effective": ["CAP_CHOWN", "CAP_AUDIT_WRITE"],
        "inheritable": ["CAP_AUDIT_WRITE", "CAP_CHOWN"],
        "permitted": ["CAP_AUDIT_WRITE", "CAP_CHOWN"],
        "ambient": ["CAP_CHOWN"],
    }
    assert p["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100},
        {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 2**64 - 1},
    ]
    assert p["noNewPrivileges"] is True and p["oomScoreAdj"] == -500
    assert c["hostname"] == "sinkhost"
    assert c["annotations"] == {"org.example": "yes"}
    assert c["mounts"] == [
        _mount("/data", "bind", ["ro", "rbind"], "/containers/volumes/data/merged"),
        _mount("/dev", "tmpfs", ["nosuid"]),
        _mount("/dev/pts", "devpts", PTS),
        _mount("/etc/x", "bind", ["ro", "shared", "rbind"], "/etc/x"),
        {"destination": "/proc", "type": "proc", "source": "proc"},
        _mount("/run", "tmpfs", ["size=10m", "mode=755"]),
        _mount("/sys", "sysfs", SYS),
        _mount("/sys/fs/cgroup", "cgroup", CGROUP),
        _mount("/var/log", "bind", ["rw", "rbind", "rshared"], "/var/log"),
    ]
    linux = c["linux"]
    assert linux["namespaces"] == [
        {"type": "network"},
        {"type": "ipc"},
        {"type": "uts", "path": "/run/netns/x"},
        {"type": "mount"},
    ]
    assert linux["sysctl"] == {"net.ipv4.ip_forward": "1"}
    assert linux["devices"] == [
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}
    ]
    assert linux["resources"] == {
        "devices": [
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": True, "type": "b", "access": "rwm"},
        ],
        "memory": {"limit": 1048576},
        "cpu": {"shares": 512},
    }
    assert linux["cgroupsPath"] == "/sink" and linux["rootfsPropagation"] == "shared"
    assert linux["maskedPaths"] == ["/proc/kcore"]
    assert linux["readonlyPaths"] == ["/proc/sys"]
    r = read_json(tar, "containers/services/sink/runtime.json")
    b = "/containers/services/sink"
    lower = "/containers/onboot/000-setup/lower"  # same image: unpacked once
    assert r["mounts"][2]["options"][0] == f"lowerdir={lower}"
    assert r["mounts"][3:] == [
        {"destination": "/b", "type": "bind", "source": "/a", "options": ["rbind"]}
    ]
    assert r["mounts"][0]["destination"] == f"{b}/tmp"
    assert r["cgroups"] == ["sink"] and r["mkdir"] == ["/run/sink"]
    assert r["interfaces"] == [
        {"name": "eth1", "createInRoot": False},
        {"add": "veth", "peer": "veth-host", "createInRoot": False},
    ]
    assert r["bindNS"] == BIND_NS | {"net": "/run/netns/sink"}
    assert r["namespace"] == "custom"
