"""The guest init's shell library (pkg/init/lib.sh) run against a fake tree on the host.

mount, ip, runc and ctr are stand-ins on PATH that record their argv (they are programs the
guest would run, not distrokit code); jq and mkdir are the real ones, awk is busybox's (the
guest's), its starts counted apart. The behaviour runs under
the host's POSIX sh, because busybox sh always runs its own mount/ip applets instead of PATH
stand-ins; every script is also syntax-checked by busybox sh, the guest's shell.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hosttools import require_tools

from distrokit.system import ocispec

LIB = Path(__file__).resolve().parents[3] / "pkg" / "init" / "lib.sh"

RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >>"$DK_ROOT/calls"
"""

FAKE_RUNC = (
    RECORDER
    + """
case "$1" in
run) bundle=$3; cat "$DK_ROOT$bundle/say" 2>/dev/null; exit "$(cat "$DK_ROOT$bundle/status")" ;;
create) echo 4242 >"$DK_ROOT${5#$DK_ROOT}" 2>/dev/null || echo 4242 >"$5" ;;
state) echo '{"status":"stopped"}' ;;
esac
exit 0
"""
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    require_tools("busybox", "jq")
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, body in (("mount", RECORDER), ("ip", RECORDER), ("ctr", RECORDER)):
        (fake / name).write_text(body)
    (fake / "runc").write_text(FAKE_RUNC)
    (fake / "awk").write_text(
        '#!/bin/sh\necho awk >>"$DK_ROOT/awk.starts"\nexec busybox awk "$@"\n'
    )
    for f in fake.iterdir():
        f.chmod(0o755)
    return root


def _sh(root: Path, script: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{root.parent / 'bin'}:/usr/bin:/bin",
        "DK_ROOT": str(root),
        "DK_LOG": "/var/log",
    }
    return subprocess.run(
        ["sh", "-c", f". {LIB}; {script}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _calls(root: Path) -> list[str]:
    path = root / "calls"
    return path.read_text().splitlines() if path.exists() else []


def _bundle(root: Path, rel: str, runtime: dict[str, object], status: int = 0) -> Path:
    d = root / rel.lstrip("/")
    d.mkdir(parents=True)
    (d / "runtime.json").write_text(json.dumps(runtime))
    (d / "config.json").write_text(json.dumps({"root": {"path": "rootfs"}, "process": {}}))
    (d / "status").write_text(str(status))
    (d / "say").write_text(f"hello from {d.name}\n")
    return d


def _rw_runtime(base: str) -> dict[str, object]:
    # what LinuxKit writes for a read-write container (tmpfs, private remount, overlay)
    return {
        "cgroups": ["distrokit/x"],
        "mounts": [
            {"destination": f"{base}/tmp", "type": "tmpfs", "source": "tmpfs", "options": []},
            {"destination": f"{base}/tmp", "options": ["remount", "private"]},
            {
                "destination": f"{base}/rootfs",
                "type": "overlay",
                "source": "overlay",
                "options": [
                    f"lowerdir={base}/lower",
                    f"upperdir={base}/tmp/upper",
                    f"workdir={base}/tmp/work",
                ],
            },
        ],
        "mkdir": ["/run/made"],
        "interfaces": [],
        "bindNS": dict.fromkeys(("cgroup", "ipc", "mnt", "net", "pid", "user", "uts"), ""),
        "namespace": "",
    }


def test_runtime_mounts_mkdir_and_cgroups(tree: Path) -> None:
    base = "/containers/onboot/000-a"
    _bundle(tree, base, _rw_runtime(base))
    result = _sh(tree, f"prepare_bundle {base}")
    assert result.returncode == 0, result.stderr
    r = str(tree)
    assert _calls(tree) == [
        f"mount -t tmpfs tmpfs {r}{base}/tmp",
        f"mount --make-private {r}{base}/tmp",
        f"mount -t overlay -o lowerdir={base}/lower,upperdir={base}/tmp/upper,"
        f"workdir={base}/tmp/work overlay {r}{base}/rootfs",
    ]
    assert (tree / "run/made").is_dir()
    assert (tree / "sys/fs/cgroup/distrokit/x").is_dir()
    assert (tree / base.lstrip("/") / "tmp/upper").is_dir()
    assert (tree / base.lstrip("/") / "tmp/work").is_dir()


def test_readonly_bind_mount(tree: Path) -> None:
    base = "/containers/services/web"
    runtime = {
        "mounts": [
            {"destination": f"{base}/rootfs", "source": f"{base}/rootfs", "options": ["bind"]}
        ]
    }
    _bundle(tree, base, runtime)
    assert _sh(tree, f"prepare_bundle {base}").returncode == 0
    assert _calls(tree) == [f"mount -o bind {base}/rootfs {tree}{base}/rootfs"]


def test_relative_mount_and_mkdir_are_inside_the_rootfs(tree: Path) -> None:
    # LinuxKit's hostmount-writeable-overlay: a writable overlay of the host's /etc at
    # `writeable-host-etc` inside the container
    base = "/containers/services/getty"
    overlay = ["rw", "lowerdir=/etc", "upperdir=/run/hostetc/upper", "workdir=/run/hostetc/work"]
    runtime = {
        "mounts": [
            {"destination": f"{base}/rootfs", "source": f"{base}/rootfs", "options": ["bind"]},
            {"destination": "writeable-host-etc", "type": "overlay", "source": "overlay",
             "options": overlay},
        ],
        "mkdir": ["made/inside", "/run/on-host"],
    }  # fmt: skip
    _bundle(tree, base, runtime)
    result = _sh(tree, f"prepare_bundle {base}")
    assert result.returncode == 0, result.stderr
    r = str(tree)
    assert _calls(tree) == [
        f"mount -o bind {base}/rootfs {r}{base}/rootfs",
        f"mount -t overlay -o {','.join(overlay)} overlay {r}{base}/rootfs/writeable-host-etc",
    ]
    assert (tree / "run/hostetc/upper").is_dir() and (tree / "run/hostetc/work").is_dir()
    assert (tree / base.lstrip("/") / "rootfs/made/inside").is_dir()
    assert (tree / "run/on-host").is_dir()


def test_onboot_in_order_failure_logged_rest_still_run(tree: Path) -> None:
    _bundle(tree, "/containers/onboot/000-first", {}, status=3)
    _bundle(tree, "/containers/onboot/001-second", {}, status=0)
    result = _sh(tree, "run_sequence onboot")
    assert result.returncode == 0, result.stderr
    runs = [c for c in _calls(tree) if c.startswith("runc run")]
    assert runs == [
        "runc run --bundle /containers/onboot/000-first first",
        "runc run --bundle /containers/onboot/001-second second",
    ]
    assert "onboot first: FAILED (status 3)" in result.stdout
    assert "onboot second: exited 0" in result.stdout
    assert (tree / "var/log/onboot/second.log").read_text() == "hello from 001-second\n"


def _starts(root: Path, program: str) -> int:
    if program == "awk":
        path = root / "awk.starts"
        return len(path.read_text().splitlines()) if path.exists() else 0
    return len([c for c in _calls(root) if c.split()[0] == program])


def test_one_awk_plans_every_bundle_of_a_section(tree: Path) -> None:
    _record_jq(tree)
    for name in ("000-a", "001-b", "002-c"):
        base = f"/containers/onboot/{name}"
        _bundle(tree, base, _rw_runtime(base))
    result = _sh(tree, "run_sequence onboot")
    assert result.returncode == 0, result.stderr
    assert (_starts(tree, "awk"), _starts(tree, "jq")) == (1, 0)
    plans = tree / "run/distrokit/plan/containers/onboot"
    assert sorted(p.name for p in plans.iterdir()) == ["000-a", "001-b", "002-c"]
    # each bundle got its own mounts, in order
    mounts = [c for c in _calls(tree) if c.startswith("mount -t overlay")]
    assert [m.split()[-1] for m in mounts] == [
        f"{tree}/containers/onboot/{n}/rootfs" for n in ("000-a", "001-b", "002-c")
    ]
    assert result.stdout.count(": exited 0") == 3


def test_onboot_plans_the_services_too(tree: Path) -> None:
    _record_jq(tree)
    _bundle(tree, "/containers/onboot/000-a", {})
    for name in ("web", "log"):
        base = f"/containers/services/{name}"
        (tree / "containers/services").mkdir(parents=True, exist_ok=True)
        _bundle(tree, base, _rw_runtime(base)).joinpath("config.json").write_bytes(
            ocispec.dumps({"root": {"path": "rootfs"}})
        )
    result = _sh(tree, "run_sequence onboot && start_services")
    assert result.returncode == 0, result.stderr
    assert (_starts(tree, "awk"), _starts(tree, "jq")) == (1, 0)
    assert result.stdout.count("service web: started") == 1
    assert len([c for c in _calls(tree) if c.startswith("mount -t overlay")]) == 2


def test_json_awk_does_not_read_is_planned_by_one_jq(tree: Path) -> None:
    # an escaped character (Go writes "<" as \u003c) and a number: jq plans all three
    _record_jq(tree)
    _bundle(tree, "/containers/onboot/000-a", _rw_runtime("/containers/onboot/000-a"))
    odd = _bundle(tree, "/containers/onboot/001-odd", {})
    (odd / "runtime.json").write_text('{"mkdir": ["/run/a\\u003cb", "/run/it\'s"]}')
    _bundle(tree, "/containers/onboot/002-num", {"cgroups": [], "x": 1})
    result = _sh(tree, "run_sequence onboot")
    assert result.returncode == 0, result.stderr
    assert (_starts(tree, "awk"), _starts(tree, "jq")) == (1, 1)
    assert (tree / "run/a<b").is_dir() and (tree / "run/it's").is_dir()
    assert result.stdout.count(": exited 0") == 3


def test_a_broken_runtime_json_fails_its_bundle_alone(tree: Path) -> None:
    _bundle(tree, "/containers/onboot/000-good", {})
    bad = _bundle(tree, "/containers/onboot/001-bad", {})
    (bad / "runtime.json").write_text('{"mounts": [')
    _bundle(tree, "/containers/onboot/002-late", {})
    result = _sh(tree, "run_sequence onboot")
    assert result.returncode == 0, result.stderr
    assert "onboot good: exited 0" in result.stdout
    assert "onboot bad: FAILED" in result.stdout
    assert "onboot late: exited 0" in result.stdout


def test_bindns_uses_create_and_start(tree: Path) -> None:
    base = "/containers/onboot/000-net"
    ns = dict.fromkeys(("cgroup", "ipc", "mnt", "pid", "user", "uts"), "")
    _bundle(tree, base, {"bindNS": {**ns, "net": "/run/netns/web"}})
    result = _sh(tree, "run_sequence onboot")
    assert result.returncode == 0, result.stderr
    calls = _calls(tree)
    assert calls[0].startswith(f"runc create --bundle {base} --pid-file")
    assert f"mount -o bind /proc/4242/ns/net {tree}/run/netns/web" in calls
    assert "runc start net" in calls
    assert calls.index("runc start net") > calls.index(
        f"mount -o bind /proc/4242/ns/net {tree}/run/netns/web"
    )


def test_services_under_containerd_with_absolute_rootfs(tree: Path) -> None:
    _record_jq(tree)
    _bundle(tree, "/containers/services/nginx", {"namespace": ""})
    _bundle(tree, "/containers/services/other", {"namespace": "custom.ns"})
    result = _sh(tree, "start_services")
    assert result.returncode == 0, result.stderr
    # started concurrently: the order of the calls is not fixed
    ctr = sorted(c for c in _calls(tree) if c.startswith("ctr"))
    spec = f"{tree}/run/distrokit/services/nginx.json"
    assert ctr == [
        f"ctr -n custom.ns run -d --log-uri file:///var/log/other.log --config "
        f"{tree}/run/distrokit/services/other.json other",
        f"ctr -n services.linuxkit run -d --log-uri file:///var/log/nginx.log "
        f"--config {spec} nginx",
    ]
    assert json.loads(Path(spec).read_text())["root"]["path"] == "/containers/services/nginx/rootfs"
    # a config.json in another shape than the build's goes through jq
    assert [c for c in _calls(tree) if c.startswith("jq") and ".root.path" in c]
    assert "service nginx: started" in result.stdout


def _record_jq(root: Path) -> None:
    jq = root.parent / "bin" / "jq"
    jq.write_text(RECORDER + 'exec /usr/bin/jq "$@"\n')
    jq.chmod(0o755)


def test_service_spec_from_linuxkit_json_keeps_everything_but_the_root(tree: Path) -> None:
    # config.json as the build writes it (Go's indented JSON); a hook's "path" stays as it is
    config = {
        "ociVersion": "1.0.2",
        "process": {"args": ["nginx"], "cwd": "/"},
        "root": {"path": "rootfs", "readonly": True},
        "hooks": {"prestart": [{"path": "rootfs"}]},
    }
    _record_jq(tree)
    d = _bundle(tree, "/containers/services/web.1", {"namespace": ""})
    (d / "config.json").write_bytes(ocispec.dumps(config))
    result = _sh(tree, "start_services")
    assert result.returncode == 0, result.stderr
    spec = json.loads((tree / "run/distrokit/services/web.1.json").read_text())
    root = {"path": "/containers/services/web.1/rootfs", "readonly": True}
    assert spec == {**config, "root": root}
    # sed did it: jq (recorded here) only read runtime.json
    assert not [c for c in _calls(tree) if c.startswith("jq") and ".root.path" in c]


def test_services_start_concurrently(tree: Path) -> None:
    # Each stand-in `ctr run` of a service waits (up to 20 s) for the other's to have started:
    # started one after the other, the first would give up and the start would fail.
    (tree.parent / "bin" / "ctr").write_text(
        RECORDER
        + """
me=$9; other=a; [ "$me" = a ] && other=b
: >"$DK_ROOT/run/started-$me"
i=0
while [ ! -e "$DK_ROOT/run/started-$other" ]; do
    i=$((i + 1)); [ $i -gt 200 ] && exit 1; sleep 0.1
done
"""
    )
    for name in ("a", "b"):
        _bundle(tree, f"/containers/services/{name}", {})
    result = _sh(tree, "start_services")
    assert result.returncode == 0, result.stderr
    assert "service a: started" in result.stdout
    assert "service b: started" in result.stdout


def test_bundle_prepared_once_per_boot(tree: Path) -> None:
    base = "/containers/services/web"
    _bundle(tree, base, _rw_runtime(base) | {"namespace": "custom.ns"})
    first = _sh(tree, f"prepare_bundle {base}; echo ns=$ns")
    again = _sh(tree, f"prepare_bundle {base}; echo ns=$ns needs_pid=$needs_pid")
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    # the second time (`service start` after `service stop`) mounts nothing more
    assert len([c for c in _calls(tree) if c.startswith("mount")]) == 3
    assert again.stdout.strip() == "ns=custom.ns needs_pid=no"


def test_service_exit_lines_from_ctr_events(tree: Path) -> None:
    # what `ctr events` prints: a task exit (status 0 is left out), an exec's exit, a start
    (tree.parent / "bin" / "ctr").write_text(
        """#!/bin/sh
z="2026-01-01 10:00:00.1 +0000 UTC services.linuxkit"
q='"'
echo "$z /tasks/exit {${q}container_id$q:${q}nginx$q,${q}id$q:${q}nginx$q,${q}exit_status$q:137}"
echo "$z /tasks/exit {${q}container_id$q:${q}getty$q,${q}id$q:${q}exec1$q,${q}pid$q:8}"
echo "$z /tasks/start {${q}container_id$q:${q}rngd$q,${q}pid$q:9}"
echo "$z /tasks/exit {${q}container_id$q:${q}rngd$q,${q}id$q:${q}rngd$q,${q}pid$q:9}"
"""
    )
    result = _sh(tree, "watch_service_exits")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "distrokit: service nginx (services.linuxkit): exited (status 137)",
        "distrokit: service rngd (services.linuxkit): exited (status 0)",
    ]


def test_scripts_parse(tree: Path) -> None:
    pkg = LIB.parents[1]
    scripts = [pkg / "init" / n for n in ("init", "rc.init", "rc.shutdown", "lib.sh", "service")]
    scripts += [pkg / "runc/010-onboot", pkg / "containerd/020-containerd"]
    scripts += [pkg / "getty/rungetty", pkg / "dhcpcd/dhcpcd", pkg / "dhcpcd/udhcpc-event"]
    scripts += [pkg / "poweroff/poweroff-after", pkg / "sysctl/sysctl-apply"]
    for script in scripts:
        check = subprocess.run(
            ["busybox", "sh", "-n", str(script)],
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": os.environ["PATH"]},
        )
        assert check.returncode == 0, f"{script}: {check.stderr}"
