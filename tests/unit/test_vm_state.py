"""`distrokit.vm` without booting: names, ids and prefix matching, state files, the lock, the
guest's configuration disk, the choice between the image's init and its
workload, and QEMU's argv."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from distrokit.errors import UsageError
from distrokit.vm import guest, machine, manager
from distrokit.vm.store import Store, VmConfig, VmError, vm_home


def _config(vm_id: str, name: str, created: float = 1.0) -> VmConfig:
    return VmConfig(
        id=vm_id,
        name=name,
        image="docker.io/library/busybox:latest",
        image_digest="sha256:" + "a" * 64,
        kernel_image="distrokit/kernel:1",
        kernel_digest="sha256:" + "b" * 64,
        size_mb=64,
        created=created,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "home")
    s.create_dir(_config("abc123def4567890", "web", 1.0))
    s.create_dir(_config("abd0000000000001", "db", 2.0))
    s.create_dir(_config("ffff000000000002", "cache", 3.0))
    return s


def test_find_by_name_id_and_unique_prefix(store: Store) -> None:
    assert store.find("web").id == "abc123def4567890"
    assert store.find("abc123def4567890").name == "web"
    assert store.find("abc").name == "web"
    assert store.find("ff").name == "cache"


def test_find_ambiguous_prefix_names_the_candidates(store: Store) -> None:
    with pytest.raises(VmError, match=r"'ab' matches more than one VM id: abc123def456 \(web\)"):
        store.find("ab")


def test_find_unknown(store: Store) -> None:
    with pytest.raises(VmError, match="no VM named 'nope'"):
        store.find("nope")


def test_names_are_checked_and_generated_unique(store: Store) -> None:
    with pytest.raises(VmError, match="a VM named web already exists"):
        store.new_name("web")
    with pytest.raises(UsageError, match="invalid VM name"):
        store.new_name("-bad name")
    generated = {store.new_name(None) for _ in range(20)}
    assert not generated & {"web", "db", "cache"}
    assert all("_" in n for n in generated)


def test_new_ids_are_hex_and_not_prefixes_of_others(store: Store) -> None:
    ids = {store.new_id() for _ in range(50)}
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    assert len(ids) == 50


def test_config_round_trip_and_listing_order(store: Store) -> None:
    config = replace(
        _config("1234567890abcdef", "x", 9.0), command=("sh", "-c", "exit 3"), env=("A=b",)
    )
    store.create_dir(config)
    assert store.load(config.id) == config
    assert [c.name for c in store.all()] == ["web", "db", "cache", "x"]
    store.remove_dir(config.id)
    assert not store.vm_dir(config.id).exists()


def test_vm_home_from_environment(tmp_path: Path) -> None:
    assert vm_home({"DISTROKIT_VM_HOME": str(tmp_path)}) == tmp_path
    assert vm_home({"XDG_DATA_HOME": "/d"}) == Path("/d/distrokit")


def test_lock_serialises_commands_on_one_vm(store: Store) -> None:
    with store.locked("abc123def4567890"):
        script = (
            "import sys\nfrom pathlib import Path\nfrom distrokit.vm.store import Store\n"
            f"s = Store(Path({str(store.root)!r}))\n"
            "try:\n    with s.locked('abc123def4567890', wait=False): pass\n"
            "except Exception as e:\n    print(e); sys.exit(3)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 3, proc.stderr
        assert "is busy" in proc.stdout
        # another VM's lock is free
        with store.locked("abd0000000000001", wait=False):
            pass


def test_config_tar_starts_with_the_magic_and_carries_files(tmp_path: Path) -> None:
    src = tmp_path / "hello.txt"
    src.write_text("hi")
    data = guest.config_tar(guest.GuestConfig(name="n", mode="workload"), [(src, "/etc/hi")])
    assert data.startswith(guest.CONFIG_MAGIC.encode())
    assert len(data) % 4096 == 0
    path = tmp_path / "c.tar"
    path.write_bytes(data)
    with tarfile.open(path) as tar:
        assert tar.getnames() == [guest.CONFIG_MAGIC, "config.sh", "files/etc/hi"]


INFO = {"entrypoint": None, "cmd": ["sh"], "env": ["PATH=/bin"], "working_dir": "/w"}


def test_workload_from_image_config_and_overrides() -> None:
    vm = _config("1", "n")
    g = manager.guest_config(vm, {**INFO, "user": "nobody", "init": None}, first=True)
    assert (g.mode, g.argv, g.workdir, g.user, g.path, g.copy) == (
        "workload", ("sh",), "/w", "nobody", "/bin", True,
    )  # fmt: skip
    assert "HOME=/root" in g.env
    vm = replace(vm, command=("echo", "x"), env=("PATH=/usr/bin", "K=v"))
    g = manager.guest_config(vm, {**INFO, "entrypoint": ["/tini", "--"]}, first=False)
    assert g.argv == ("/tini", "--", "echo", "x")
    assert ("PATH=/usr/bin" in g.env, "K=v" in g.env, g.path) == (True, True, "/usr/bin")


def test_image_with_its_own_init_boots_it_unless_a_command_is_given() -> None:
    vm = _config("1", "n")
    info = {**INFO, "cmd": None, "init": "/sbin/init"}
    assert manager.guest_config(vm, info, first=False).mode == "init"
    assert manager.guest_config(vm, {**info, "cmd": ["/sbin/init"]}, first=False).mode == "init"
    assert manager.guest_config(vm, {**info, "cmd": ["nginx"]}, first=False).mode == "workload"
    vm = replace(vm, command=("sh",))
    assert manager.guest_config(vm, info, first=False).mode == "workload"


def test_exec_script_runs_the_command_through_dk_exec() -> None:
    vm = replace(_config("1", "n"), env=("X=1 2",))
    script = manager.exec_script(vm, INFO, ("cat", "/my file"))
    assert script == (
        "exec env -i PATH=/bin 'X=1 2' HOME=/root /bin/dk-exec /bin / '' cat '/my file'\n"
    )


def test_machine_argv_has_the_vm_devices(tmp_path: Path) -> None:
    args = machine.extra_args(tmp_path)
    text = " ".join(args)
    assert f"serial={guest.ROOT_SERIAL}" in text and f"serial={guest.CONFIG_SERIAL}" in text
    assert f"name={guest.STATUS_PORT}" in text and f"name={guest.AGENT_PORT}" in text
    assert f"file={tmp_path / machine.OVERLAY},format=qcow2" in text
    run = machine.run_config(
        machine.Machine(state_dir=tmp_path, kernel=tmp_path / "k", initrd=tmp_path / "i")
    )
    assert (run.machine, run.detach, run.qmp) == ("microvm", True, tmp_path / machine.QMP_SOCK)
    assert machine._without_serial_null(["a", "-serial", "null", "b"]) == ["a", "b"]


def test_copy_files_spec() -> None:
    with pytest.raises(VmError, match="invalid --copy-files"):
        manager.parse_copy("relative")
    with pytest.raises(VmError, match="does not exist"):
        manager.parse_copy("/nonexistent/x:/x")
    assert manager.parse_copy("/etc/hostname:/etc/h")[1] == "/etc/h"


def test_a_pid_file_naming_another_program_means_stopped(tmp_path: Path) -> None:
    # after a host restart the recorded pid may belong to any process: here, this test's
    (tmp_path / "qemu.pid").write_text(f"{os.getpid()}\n")
    assert machine.vm_pid(tmp_path) is None
    assert machine.status(tmp_path) == "stopped"
    assert machine.exit_status(tmp_path) is None
    (tmp_path / machine.STATUS_FILE).write_text("up\n3\n")
    assert machine.exit_status(tmp_path) == 3
    assert machine.guest_up(tmp_path)


def test_run_flags_parse_like_docker_and_ignite() -> None:
    from distrokit.cli import build_parser
    from distrokit.cli import vm as cli_vm

    parser = build_parser("vm")
    args = parser.parse_args(["vm", "run", "--ssh", "img:1", "sh", "-c", "exit 3"])
    request = cli_vm._request(args)
    assert (args.image, request.ssh, request.command) == ("img:1", "", ("sh", "-c", "exit 3"))
    args = parser.parse_args(
        ["vm", "run", "-d", "--name", "w", "-p", "8080:80", "--memory", "256M", "--size", "2G",
         "-e", "A=1", "img", "--", "nginx", "-g", "daemon off;"]
    )  # fmt: skip
    request = cli_vm._request(args)
    assert (request.name, request.publish, request.memory_mb, request.size_mb) == (
        "w", ("8080:80",), 256, 2048,
    )  # fmt: skip
    assert (request.env, request.command, args.detach) == (
        ("A=1",), ("nginx", "-g", "daemon off;"), True,
    )  # fmt: skip
    with pytest.raises(UsageError, match="invalid --env"):
        cli_vm._request(parser.parse_args(["vm", "run", "-e", "novalue", "img"]))
