"""pkg/format/format.sh on the host: disk choice and partitioning on real image files."""

from __future__ import annotations

import subprocess

from shell import LINUX_GPT, PKG, Machine, dump, machine, partition, run_script

SCRIPT = PKG / "format" / "format.sh"
LIB = "DK_FORMAT_LIB"

__all__ = ["machine"]


def _pick(m: Machine) -> tuple[int, str]:
    r = run_script(SCRIPT, [], m.env(), LIB, 'pick_disk; s=$?; echo "picked=$PICKED"; exit $s')
    return r.status, r.out.strip().splitlines()[-1].removeprefix("picked=")


def test_candidates_skip_loop_nbd_cd_and_names_ending_in_a_digit(machine: Machine) -> None:
    for name in ("vdb", "loop0", "nbd0", "sr0", "vda1", "nvme0n1", "sda", "ram0"):
        machine.disk(name)
    empty = machine.sys / "block" / "vdc"
    empty.mkdir()
    (empty / "size").write_text("0\n")
    r = run_script(SCRIPT, [], machine.env(), LIB, "candidate_disks")
    assert r.out.split() == [str(machine.dev / "sda"), str(machine.dev / "vdb")]


def test_first_empty_disk_is_picked(machine: Machine) -> None:
    partition(machine.disk("sda"), "dos", "7")  # a foreign (NTFS) partition
    machine.disk("sdb")
    assert _pick(machine) == (0, str(machine.dev / "sdb"))


def test_disk_with_a_filesystem_but_no_table_is_not_eligible(machine: Machine) -> None:
    disk = machine.disk("vda")
    subprocess.run(["mkfs.ext4", "-q", "-F", str(disk)], check=True)
    status, picked = _pick(machine)
    assert (status, picked) == (1, "")


def test_linux_partition_means_nothing_to_do(machine: Machine) -> None:
    disk = machine.disk("vda")
    partition(disk, "dos", "83")
    before = disk.read_bytes()
    r = run_script(SCRIPT, [], machine.env())
    assert r.status == 0, r.out
    assert "already has a Linux partition, nothing to do" in r.out
    assert disk.read_bytes() == before


def test_gpt_linux_partition_also_counts(machine: Machine) -> None:
    partition(machine.disk("vda"), "gpt", LINUX_GPT)
    assert _pick(machine)[0] == 2


def test_no_disk_at_all(machine: Machine) -> None:
    r = run_script(SCRIPT, [], machine.env())
    assert r.status == 1
    assert "No eligible disks found" in r.out


def test_foreign_partition_table_is_left_alone(machine: Machine) -> None:
    disk = machine.disk("vda")
    partition(disk, "gpt", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")  # an EFI system partition
    before = disk.read_bytes()
    r = run_script(SCRIPT, ["-verbose"], machine.env())
    assert r.status == 1
    assert "No eligible disks found" in r.out
    assert "is not empty" in r.out
    assert disk.read_bytes() == before


def test_explicit_foreign_device_is_refused_without_force(machine: Machine) -> None:
    disk = machine.disk("vda")
    partition(disk, "dos", "7")
    r = run_script(SCRIPT, [str(disk)], machine.env())
    assert r.status == 1
    assert "use -force to wipe it" in r.out
    assert "type=7" in dump(disk)


def test_missing_explicit_device(machine: Machine) -> None:
    r = run_script(SCRIPT, [str(machine.dev / "vdz")], machine.env())
    assert r.status == 1
    assert "not found" in r.out


def test_write_table_dos_and_gpt(machine: Machine) -> None:
    dos, gpt = machine.disk("vda"), machine.disk("vdb")
    for disk, kind in ((dos, "dos"), (gpt, "gpt")):
        r = run_script(SCRIPT, [], machine.env(), LIB, f'write_table "{disk}" {kind}')
        assert r.status == 0, r.out
    assert "label: dos" in dump(dos) and "type=83" in dump(dos)
    assert "label: gpt" in dump(gpt) and f"type={LINUX_GPT}" in dump(gpt)
    # A disk that format partitioned is not picked again.
    assert _pick(machine)[0] == 2


def test_bad_flags(machine: Machine) -> None:
    assert run_script(SCRIPT, ["-partition", "sun"], machine.env()).status == 2
    assert run_script(SCRIPT, ["-bogus"], machine.env()).status == 2
    r = run_script(SCRIPT, [], machine.env(), LIB, 'make_fs /nonexistent btrfs ""')
    assert r.status == 1 and "not supported by this image" in r.out


def test_partition_names() -> None:
    body = "partition_path /dev/vda 1; partition_path /dev/nvme0n1 1"
    r = run_script(SCRIPT, [], {}, LIB, body)
    assert r.out.split() == ["/dev/vda1", "/dev/nvme0n1p1"]
