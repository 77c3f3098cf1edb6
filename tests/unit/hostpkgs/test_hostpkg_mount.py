"""pkg/mount/mountie.sh on the host: which partition it picks, on real image files."""

from __future__ import annotations

from pathlib import Path

from shell import LINUX_GPT, PKG, Machine, machine, partition, run_script

SCRIPT = PKG / "mount" / "mountie.sh"
LIB = "DK_MOUNTIE_LIB"

__all__ = ["machine"]


def _env(m: Machine, mounts: str = "") -> dict[str, str]:
    table = m.root / "mounts"
    table.write_text(mounts)
    return {**m.env(), "DK_MOUNTS": str(table), "DK_DISK_WAIT": "0"}


def test_first_linux_partition_of_the_first_disk(machine: Machine) -> None:
    partition(machine.disk("vda"), "dos", "7", "83", "83")
    partition(machine.disk("vdb"), "gpt", LINUX_GPT)
    r = run_script(SCRIPT, [], _env(machine), LIB, "first_unmounted")
    assert r.out.strip() == str(machine.dev / "vda2")


def test_mounted_partitions_are_skipped(machine: Machine) -> None:
    partition(machine.disk("vda"), "dos", "83")
    partition(machine.disk("vdb"), "gpt", LINUX_GPT)
    mounts = f"{machine.dev / 'vda1'} /var/lib/docker ext4 rw 0 0\n"
    r = run_script(SCRIPT, [], _env(machine, mounts), LIB, "first_unmounted")
    assert r.out.strip() == str(machine.dev / "vdb1")


def test_cd_and_loop_devices_are_not_disks(machine: Machine) -> None:
    for name in ("loop0", "sr0", "vda"):
        machine.disk(name)
    r = run_script(SCRIPT, [], _env(machine), LIB, "disks")
    assert r.out.split() == [str(machine.dev / "vda")]


def test_foreign_partition_table_has_nothing_to_mount(machine: Machine) -> None:
    partition(machine.disk("vda"), "dos", "7")
    target = machine.root / "target"
    r = run_script(SCRIPT, [str(target)], _env(machine))
    assert r.status == 1
    assert f"no unmounted Linux partition found for {target}" in r.out
    assert not target.exists()


def test_no_disk(machine: Machine) -> None:
    r = run_script(SCRIPT, ["/var/lib/docker"], _env(machine))
    assert r.status == 1
    assert "no unmounted Linux partition found" in r.out


def test_unknown_label(machine: Machine) -> None:
    r = run_script(SCRIPT, ["--label", "nosuchlabel-x", "/mnt/x"], _env(machine))
    assert r.status == 1
    assert "no partition with label 'nosuchlabel-x'" in r.out


def test_usage(machine: Machine) -> None:
    assert run_script(SCRIPT, [], _env(machine)).status == 2
    assert run_script(SCRIPT, ["--label"], _env(machine)).status == 2


def test_device_without_filesystem(machine: Machine, tmp_path: Path) -> None:
    disk = machine.disk("vda")
    r = run_script(SCRIPT, [str(disk), str(tmp_path / "t")], _env(machine))
    assert r.status == 1
    assert "has no file system" in r.out
