"""``vcenter ls``, ``vcenter rm [--keep-disk]`` and ``run vcenter --persistent-disk``: recreate a
VM around its kept persistent disk, against a real vcsim."""

from __future__ import annotations

from pathlib import Path

import pytest
from vcsim_env import disk_at, flat_file, make_iso, read_marker, write_marker

HOST = ["--hostname", "DC0_H0"]
KEPT = "[LocalDS_0] cycle-persistent/cycle-persistent.vmdk"


@pytest.fixture(scope="module")
def isos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cycle-media")
    return {"a": make_iso(d, "cycle-a", 128 << 10), "b": make_iso(d, "cycle-b", 128 << 10)}


def test_rm_keep_disk_then_recreate_around_it(api, dk, vcsim, isos) -> None:
    made = dk(
        "run", "vcenter", *vcsim.args(), *HOST, "--name", "cycle", "--persistent-size", "8M",
        "--extra-config", "SET.guest.ipAddress=192.0.2.77", isos["a"],
    )  # fmt: skip
    assert made.code == 0, made.err
    write_marker(flat_file(vcsim, disk_at(api.find_vm("cycle"), 1)), b"cycle-data")

    ls = dk("vcenter", "ls", *vcsim.args())
    assert ls.code == 0, ls.err
    (line,) = [x for x in ls.out.splitlines() if x.startswith("cycle ")]
    assert "poweredOn" in line and "192.0.2.77" in line and "DC0_H0" in line
    assert "/cycle-a.iso" in line and "[LocalDS_0] cycle/" in line

    rm = dk("vcenter", "rm", *vcsim.args(), "--keep-disk", "cycle")
    assert rm.code == 0, rm.err
    assert rm.out.strip() == f"cycle removed; persistent disk kept at {KEPT}"
    assert api.find_vm("cycle") is None
    assert not (vcsim.datastore_dir / "cycle").exists()
    kept_flat = vcsim.datastore_dir / "cycle-persistent/cycle-persistent-flat.vmdk"
    assert read_marker(kept_flat, 10) == b"cycle-data"

    # a run that fails after creating the VM must not take the user's disk down with it
    bad = dk(
        "run", "vcenter", *vcsim.args(), *HOST, "--name", "cycle", "--persistent-disk", KEPT,
        "[LocalDS_0] no/such.vmdk",
    )  # fmt: skip
    assert bad.code == 1 and "(VM cycle was removed again)" in bad.err
    assert api.find_vm("cycle") is None
    assert read_marker(kept_flat, 10) == b"cycle-data"

    again = dk(
        "run", "vcenter", *vcsim.args(), *HOST, "--name", "cycle", "--persistent-disk", KEPT,
        isos["b"],
    )  # fmt: skip
    assert again.code == 0, again.err
    vm = api.find_vm("cycle")
    assert disk_at(vm, 1).backing.fileName == KEPT
    assert read_marker(flat_file(vcsim, disk_at(vm, 1)), 10) == b"cycle-data"


def test_rm_without_keep_disk_deletes_everything(api, dk, vcsim, isos) -> None:
    made = dk(
        "run", "vcenter", *vcsim.args(), *HOST, "--name", "gone", "--persistent-size", "8M",
        isos["a"],
    )  # fmt: skip
    assert made.code == 0, made.err
    rm = dk("vcenter", "rm", *vcsim.args(), "gone")
    assert rm.code == 0, rm.err
    assert rm.out.strip() == "gone removed"
    assert api.find_vm("gone") is None
    assert not (vcsim.datastore_dir / "gone").exists()


def test_rm_of_an_unknown_vm_lists_distrokit_vms(dk, vcsim) -> None:
    res = dk("vcenter", "rm", *vcsim.args(), "nosuch")
    assert res.code == 1
    assert "no VM called nosuch in datacenter DC0" in res.err
    assert "hint: VMs made by distrokit there:" in res.err
