"""``run vcenter --replace``: rebuild instead of patch, against a real vcsim. The persistent
disk's bytes are checked on the simulated datastore before and after."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim
from vcsim_env import disk_at, flat_file, make_iso, read_marker, write_marker

from distrokit.host import Host

HOST = ["--hostname", "DC0_H0"]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("replace-media")
    out = {"old": make_iso(d, "fleet-old", 256 << 10), "new": make_iso(d, "fleet-new", 256 << 10)}
    for name in ("disk-a", "disk-b"):
        raw = d / f"{name}.raw"
        raw.write_bytes(name.encode().ljust(4 << 20, b"\0"))
        out[name] = d / f"{name}.vmdk"
        Host().run(["qemu-img", "convert", "-O", "vmdk", raw, out[name]])
    return out


def cdrom_iso(vm: Any) -> str:
    (cd,) = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualCdrom)]
    return str(cd.backing.fileName)


def mac(vm: Any) -> str:
    (nic,) = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualVmxnet3)]
    return str(nic.macAddress)


def medium_key(vm: Any) -> str:
    # the last one: vcsim appends updated keys instead of replacing them
    return [str(o.value) for o in vm.config.extraConfig if o.key == "distrokit.medium"][-1]


def test_replace_swaps_the_iso_and_keeps_disk_nic_and_bytes(api, dk, vcsim, media) -> None:
    create = dk(
        "run", "vcenter", *vcsim.args(), *HOST, "--name", "keep", "--network", "VM Network",
        "--persistent-size", "64M", media["old"],
    )  # fmt: skip
    assert create.code == 0, create.err
    vm = api.find_vm("keep")
    disk, mac_before, old_iso = disk_at(vm, 1), mac(vm), cdrom_iso(vm)
    assert disk.capacityInKB == 64 * 1024
    write_marker(flat_file(vcsim, disk), b"persistent-data-of-keep")

    res = dk("run", "vcenter", *vcsim.args(), "--replace", "keep", media["new"])
    assert res.code == 0, res.err
    assert res.out.strip() == "keep poweredOn"
    vm = api.find_vm("keep")
    assert cdrom_iso(vm).endswith("/fleet-new.iso")
    assert medium_key(vm) == cdrom_iso(vm)
    assert disk_at(vm, 1).backing.fileName == disk.backing.fileName
    assert read_marker(flat_file(vcsim, disk), 23) == b"persistent-data-of-keep"
    assert mac(vm) == mac_before
    assert vm.runtime.powerState == "poweredOn"
    # the old medium stays on the datastore: nothing is deleted that other VMs may boot from
    assert old_iso.endswith("/fleet-old.iso")
    assert (vcsim.datastore_dir / old_iso.removeprefix("[LocalDS_0] ")).is_file()
    # named by its datastore path, the medium the VM already runs is recognised and skipped
    again = dk("-v", "run", "vcenter", *vcsim.args(), "--replace", "keep", cdrom_iso(vm))
    assert again.code == 0, again.err
    assert f"keep already runs {cdrom_iso(vm)}; skipped" in again.err


def test_replace_of_a_vmdk_system_deletes_the_old_disk_only(api, dk, vcsim, media) -> None:
    create = dk(
        "run", "vcenter", *vcsim.args(), *HOST, "--name", "vkeep", "--persistent-size", "16M",
        media["disk-a"],
    )  # fmt: skip
    assert create.code == 0, create.err
    vm = api.find_vm("vkeep")
    old_system, persistent = disk_at(vm, 0), disk_at(vm, 1)
    old_flat = flat_file(vcsim, old_system)
    assert old_flat.read_bytes().startswith(b"disk-a")
    write_marker(flat_file(vcsim, persistent), b"vkeep-data")

    res = dk("run", "vcenter", *vcsim.args(), "--replace", "vkeep", media["disk-b"])
    assert res.code == 0, res.err
    vm = api.find_vm("vkeep")
    new_system = disk_at(vm, 0)
    assert new_system.backing.fileName != old_system.backing.fileName
    assert flat_file(vcsim, new_system).read_bytes().startswith(b"disk-b")
    assert not old_flat.exists()
    assert disk_at(vm, 1).backing.fileName == persistent.backing.fileName
    assert read_marker(flat_file(vcsim, persistent), 10) == b"vkeep-data"


def test_rolling_replace_of_three_vms(api, dk, vcsim, media) -> None:
    names = ["web-1", "web-2", "web-3"]
    for name in names:
        res = dk(
            "run", "vcenter", *vcsim.args(), *HOST, "--name", name, "--network", "DC0_DVPG0",
            "--persistent-size", "16M", media["old"],
        )  # fmt: skip
        assert res.code == 0, res.err
        write_marker(flat_file(vcsim, disk_at(api.find_vm(name), 1)), f"data of {name}".encode())

    roll = dk(
        "-v", "run", "vcenter", *vcsim.args(), "--replace", "web-*", "--wait-for-ip",
        "--ip-timeout", "20", "--extra-config", "SET.guest.ipAddress=192.0.2.50", media["new"],
    )  # fmt: skip
    assert roll.code == 0, roll.err
    assert roll.out.splitlines() == [f"{n} poweredOn 192.0.2.50" for n in names]
    # one at a time: each is powered on and reports its IP before the next is touched
    log = roll.err
    for a, b in itertools.pairwise(names):
        assert log.index(f"waiting up to 20 s for {a}") < log.index(f"powering off {b}")

    disks = set()
    for name in names:
        vm = api.find_vm(name)
        assert cdrom_iso(vm).endswith("/fleet-new.iso")
        assert vm.runtime.powerState == "poweredOn"
        persistent = disk_at(vm, 1)
        disks.add(persistent.backing.fileName)
        marker = f"data of {name}".encode()
        assert read_marker(flat_file(vcsim, persistent), len(marker)) == marker
    assert len(disks) == 3

    # an interrupted roll is re-run: VMs already up on the new medium are left alone
    again = dk("-v", "run", "vcenter", *vcsim.args(), "--replace", "web-*", media["new"])
    assert again.code == 0, again.err
    assert again.err.count("already runs") == 3
    assert "powering off" not in again.err


def test_replace_of_an_unknown_vm_lists_the_vms(dk, vcsim, media) -> None:
    res = dk("run", "vcenter", *vcsim.args(), "--replace", "nosuch-*", media["new"])
    assert res.code == 1
    assert "no VM matches 'nosuch-*' in datacenter DC0" in res.err
    assert "hint: VMs there:" in res.err
