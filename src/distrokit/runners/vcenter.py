"""``run vcenter``: create and start a VM on vCenter/ESXi, or rebuild existing ones in place.

A new VM gets: the guest id, CPUs and memory asked for, a paravirtual SCSI controller, the
medium (an ISO on a CD-ROM, or a per-VM copy of a pushed VMDK as SCSI 0:0), a vmxnet3 NIC on
the named network, and an optional empty persistent disk as SCSI 0:1. Every name is looked up
before anything is created; if a later step fails, the VM is destroyed again, so a failure
leaves no half-made VM behind.

``replace`` rebuilds instead of patching: it powers a VM off, swaps its boot medium (CD-ROM
backing, or the system disk for a new copy) in one reconfiguration, powers it on and deletes
the old system disk only once the new one is in place. The persistent disk (SCSI 0:1), the NIC
and its MAC stay. Every step checks the current state first, so an interrupted replace can
simply be run again. `rolling_replace` does this for several VMs, one at a time.
"""

from __future__ import annotations

import contextlib
import fnmatch
import posixpath
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim

from distrokit.errors import DistrokitError
from distrokit.push.vcenter import Medium
from distrokit.push.vsphere import Session, VSphereError

# SCSI units of the disks distrokit manages.
SYSTEM_UNIT = 0
PERSISTENT_UNIT = 1
_SCSI_KEY = -100  # temporary key of the new controller inside one ConfigSpec
_IDE0_KEY = 200  # the first IDE controller, present in every new VM

# extraConfig keys distrokit writes: how `ls` and `replace` recognise its VMs and their medium.
KEY_MEDIUM = "distrokit.medium"
KEY_SHA256 = "distrokit.medium.sha256"

# Called with a line of progress for the user (the CLI prints it).
Report = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class VMSpec:
    """What a VM should look like. None means "keep what it has" for a replace."""

    name: str
    cpus: int | None = None
    mem_mb: int | None = None
    guest_id: str = "otherLinux64Guest"
    firmware: str = "bios"
    network: str | None = None
    persistent_mb: int | None = None
    persistent_disk: str | None = None  # [ds] path of an existing disk to attach as SCSI 0:1
    power_on: bool = True
    wait_for_ip: bool = False
    ip_timeout: float = 300.0
    extra_config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VMResult:
    """A VM that was created or replaced."""

    name: str
    power_state: str
    ip: str | None
    medium: str


def _nothing(_line: str) -> None:
    pass


# --- create --------------------------------------------------------------------------------


def create_vm(
    session: Session, medium: Medium, spec: VMSpec, report: Report = _nothing
) -> VMResult:
    """Create, configure and (unless told not to) start a VM. On failure, destroy it again."""
    host, network = preflight(session, spec)
    pool = host.parent.resourcePool
    config = vim.vm.ConfigSpec(
        name=spec.name,
        guestId=spec.guest_id,
        numCPUs=spec.cpus or 1,
        memoryMB=spec.mem_mb or 1024,
        firmware=spec.firmware,
        files=vim.vm.FileInfo(vmPathName=f"[{session.datastore.name}]"),
        extraConfig=_extra_config(medium, spec),
        deviceChange=[_pvscsi()],
    )
    if medium.kind == "iso":
        config.deviceChange.append(_add(_cdrom(medium.path)))
    if network is not None:
        config.deviceChange.append(_add(_nic(network)))
    if spec.persistent_mb:
        config.deviceChange.append(_new_disk(session, spec.persistent_mb))
    elif spec.persistent_disk:
        config.deviceChange.append(_add(_disk(spec.persistent_disk, _SCSI_KEY, PERSISTENT_UNIT)))
    report(f"creating VM {spec.name} on host {host.name}")
    vm = session.wait(
        session.datacenter.vmFolder.CreateVM_Task(config=config, pool=pool, host=host),
        f"creating VM {spec.name}",
    )
    try:
        if medium.kind == "vmdk":
            disk = _copy_system_disk(session, vm, medium, report)
            _reconfigure(session, vm, [_add(_disk(disk, _scsi_key(vm), SYSTEM_UNIT))])
        _power_on(session, vm, spec, report)
    except BaseException as err:
        _destroy_quietly(session, vm, keep_persistent=bool(spec.persistent_disk))
        if isinstance(err, DistrokitError):
            err.message += f" (VM {spec.name} was removed again)"
        raise
    # From here on the VM is complete: a guest that never reports its IP is the system's
    # problem, and the VM stays for the user to look at.
    return _result(vm, spec, report)


def preflight(session: Session, spec: VMSpec) -> tuple[Any, Any]:
    """Check that a VM `spec` can be made, before anything is uploaded or created: the name is
    free, the host and network exist. Returns the host and network (or None)."""
    if session.find_vm(spec.name) is not None:
        raise VSphereError(
            f"a VM called {spec.name} already exists in datacenter {session.datacenter.name}",
            hint=f"rebuild it with --replace {spec.name}, or choose another --name",
        )
    host = session.host()
    network = session.network(spec.network) if spec.network else None
    return host, network


def _extra_config(medium: Medium, spec: VMSpec) -> list[Any]:
    values = {KEY_MEDIUM: medium.path, KEY_SHA256: medium.sha256, **spec.extra_config}
    return [vim.option.OptionValue(key=k, value=v) for k, v in values.items()]


def _add(device: Any) -> Any:
    return vim.vm.device.VirtualDeviceSpec(
        operation=vim.vm.device.VirtualDeviceSpec.Operation.add, device=device
    )


def _pvscsi() -> Any:
    ctrl = vim.vm.device.ParaVirtualSCSIController(
        key=_SCSI_KEY, busNumber=0, sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing
    )
    return _add(ctrl)


def _cdrom(iso: str) -> Any:
    return vim.vm.device.VirtualCdrom(
        key=-200,
        controllerKey=_IDE0_KEY,
        unitNumber=0,
        backing=vim.vm.device.VirtualCdrom.IsoBackingInfo(fileName=iso),
        connectable=vim.vm.device.VirtualDevice.ConnectInfo(
            startConnected=True, connected=True, allowGuestControl=True
        ),
    )


def _nic(network: Any) -> Any:
    if isinstance(network, vim.dvs.DistributedVirtualPortgroup):
        backing: Any = vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(
            port=vim.dvs.PortConnection(
                portgroupKey=network.key,
                switchUuid=network.config.distributedVirtualSwitch.uuid,
            )
        )
    else:
        backing = vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(
            deviceName=network.name, network=network
        )
    return vim.vm.device.VirtualVmxnet3(
        key=-300,
        backing=backing,
        addressType="generated",
        connectable=vim.vm.device.VirtualDevice.ConnectInfo(
            startConnected=True, connected=True, allowGuestControl=True
        ),
    )


def _disk(path: str, controller: int, unit: int, size_kb: int = 0) -> Any:
    return vim.vm.device.VirtualDisk(
        key=-400 - unit,
        controllerKey=controller,
        unitNumber=unit,
        capacityInKB=size_kb,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=path, diskMode="persistent", thinProvisioned=True
        ),
    )


def _new_disk(session: Session, size_mb: int) -> Any:
    """A new empty thin disk in the VM's folder (vSphere names it), SCSI 0:1."""
    disk = _disk(f"[{session.datastore.name}]", _SCSI_KEY, PERSISTENT_UNIT, size_mb * 1024)
    spec = _add(disk)
    spec.fileOperation = vim.vm.device.VirtualDeviceSpec.FileOperation.create
    return spec


def _vm_dir(vm: Any) -> str:
    """``[ds] folder`` of the VM's own files."""
    return posixpath.dirname(str(vm.config.files.vmPathName))


def _system_disk_path(vm: Any, medium: Medium) -> str:
    # named after the medium's hash, so the old and new system disk can exist side by side
    tag = medium.sha256[:12] or posixpath.basename(medium.path).rsplit(".", 1)[0]
    return f"{_vm_dir(vm)}/{vm.name}-system-{tag}.vmdk"


def _copy_system_disk(session: Session, vm: Any, medium: Medium, report: Report) -> str:
    """Copy the pushed VMDK into the VM's folder (each VM writes to its own disk)."""
    dest = _system_disk_path(vm, medium)
    report(f"copying {medium.path} to {dest}")
    vdm = session.content.virtualDiskManager
    task = vdm.CopyVirtualDisk_Task(
        sourceName=medium.path,
        sourceDatacenter=session.datacenter,
        destName=dest,
        destDatacenter=session.datacenter,
        force=True,
    )
    session.wait(task, f"copying {medium.path} to {dest}")
    return dest


def _scsi_key(vm: Any) -> int:
    for dev in vm.config.hardware.device:
        if isinstance(dev, vim.vm.device.VirtualSCSIController) and dev.busNumber == 0:
            return int(dev.key)
    raise VSphereError(f"VM {vm.name} has no SCSI controller 0")


def _reconfigure(session: Session, vm: Any, changes: list[Any], **fields: Any) -> None:
    spec = vim.vm.ConfigSpec(deviceChange=changes, **fields)
    session.wait(vm.ReconfigVM_Task(spec=spec), f"reconfiguring VM {vm.name}")


def _power_on(session: Session, vm: Any, spec: VMSpec, report: Report) -> None:
    if spec.power_on or spec.wait_for_ip:
        report(f"powering on {vm.name}")
        session.wait(vm.PowerOnVM_Task(), f"powering on VM {vm.name}")


def _result(vm: Any, spec: VMSpec, report: Report) -> VMResult:
    ip = None
    if spec.wait_for_ip:
        report(f"waiting up to {spec.ip_timeout:.0f} s for {vm.name} to report its IP")
        ip = wait_for_ip(vm, spec.ip_timeout)
    return VMResult(vm.name, str(vm.runtime.powerState), ip, _medium_of(vm))


def wait_for_ip(vm: Any, timeout: float, poll: float = 1.0) -> str:
    """The guest IP that VMware Tools report; a clear error when none comes within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        ip = vm.guest.ipAddress if vm.guest else None
        if ip:
            return str(ip)
        if time.monotonic() >= deadline:
            tools = vm.guest.toolsRunningStatus if vm.guest else "unknown"
            raise VSphereError(
                f"VM {vm.name} is running but reported no IP address within {timeout:.0f} s "
                f"(VMware Tools: {tools})",
                hint="the system needs open-vm-tools (pkg/open-vm-tools) and a DHCP client, "
                "and --network must reach a DHCP server; raise the limit with --ip-timeout",
            )
        time.sleep(poll)


def _destroy_quietly(session: Session, vm: Any, *, keep_persistent: bool) -> None:
    """Remove a VM that could not be completed. Destroying a VM deletes every disk attached
    to it, so a persistent disk the user brought is detached first (and if that fails, the
    VM is left alone rather than risk the disk). Errors here would hide the original one."""
    with contextlib.suppress(Exception):
        if vm.runtime.powerState != vim.VirtualMachinePowerState.poweredOff:
            session.wait(vm.PowerOffVM_Task(), f"powering off VM {vm.name}")
        if keep_persistent:
            _detach(session, vm, disks(vm).get(PERSISTENT_UNIT))
        session.wait(vm.Destroy_Task(), f"removing VM {vm.name}")


def _detach(session: Session, vm: Any, disk: Any, **fields: Any) -> None:
    """Remove `disk` from `vm` without deleting its files."""
    if disk is None:
        return
    op = vim.vm.device.VirtualDeviceSpec.Operation.remove
    _reconfigure(
        session, vm, [vim.vm.device.VirtualDeviceSpec(operation=op, device=disk)], **fields
    )


# --- inspect -------------------------------------------------------------------------------


def _extra(vm: Any, key: str) -> str | None:
    # the last entry wins: vSphere keeps one per key, vcsim appends every update
    found = None
    for opt in vm.config.extraConfig if vm.config else ():
        if opt.key == key:
            found = str(opt.value)
    return found


def _medium_of(vm: Any) -> str:
    return _extra(vm, KEY_MEDIUM) or ""


def distrokit_vms(session: Session) -> list[Any]:
    """VMs in the datacenter that distrokit created, sorted by name."""
    vms = [vm for vm in session.objects(vim.VirtualMachine) if vm.config and _medium_of(vm)]
    return sorted(vms, key=lambda vm: str(vm.name))


def disks(vm: Any) -> dict[int, Any]:
    """The VM's disks on SCSI controller 0, by unit number."""
    key = _scsi_key(vm)
    return {
        int(d.unitNumber): d
        for d in vm.config.hardware.device
        if isinstance(d, vim.vm.device.VirtualDisk) and d.controllerKey == key
    }


# --- replace -------------------------------------------------------------------------------


def match_vms(session: Session, patterns: Iterable[str]) -> list[Any]:
    """The VMs whose names match any of `patterns` (shell globs), sorted by name; each pattern
    must match at least one VM."""
    vms = session.objects(vim.VirtualMachine)
    chosen: dict[str, Any] = {}
    for pattern in patterns:
        hits = [vm for vm in vms if fnmatch.fnmatchcase(vm.name, pattern)]
        if not hits:
            known = ", ".join(sorted(vm.name for vm in vms)) or "none"
            raise VSphereError(
                f"no VM matches '{pattern}' in datacenter {session.datacenter.name}",
                hint=f"VMs there: {known}",
            )
        chosen.update((vm.name, vm) for vm in hits)
    return [chosen[name] for name in sorted(chosen)]


def replace_vm(
    session: Session, vm: Any, medium: Medium, spec: VMSpec, report: Report = _nothing
) -> VMResult:
    """Swap the system of `vm` for `medium`, keeping its persistent disk, NIC and MAC."""
    old_disk = disks(vm).get(SYSTEM_UNIT)
    old_path = old_disk.backing.fileName if old_disk is not None else None
    new_path = None
    if medium.kind == "vmdk":
        new_path = _system_disk_path(vm, medium)
        if old_path != new_path:  # not swapped yet (a re-run after an interruption may be)
            _copy_system_disk(session, vm, medium, report)
    _power_off(session, vm, report)
    report(f"swapping the system of {vm.name} for {medium.path}")
    _reconfigure(
        session,
        vm,
        _swap_changes(vm, medium, old_disk, new_path),
        extraConfig=_extra_config(medium, spec),
        **({"numCPUs": spec.cpus} if spec.cpus else {}),
        **({"memoryMB": spec.mem_mb} if spec.mem_mb else {}),
    )
    _power_on(session, vm, spec, report)
    result = _result(vm, spec, report)
    if old_path and old_path != new_path:
        report(f"deleting the old system disk {old_path}")
        session.wait(
            session.content.virtualDiskManager.DeleteVirtualDisk_Task(
                name=old_path, datacenter=session.datacenter
            ),
            f"deleting {old_path}",
        )
    return result


def _swap_changes(vm: Any, medium: Medium, old_disk: Any, new_path: str | None) -> list[Any]:
    ops = vim.vm.device.VirtualDeviceSpec.Operation
    changes: list[Any] = []
    cdrom = next(
        (d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualCdrom)), None
    )
    if medium.kind == "iso":
        if cdrom is None:
            changes.append(_add(_cdrom(medium.path)))
        else:
            cdrom.backing = vim.vm.device.VirtualCdrom.IsoBackingInfo(fileName=medium.path)
            cdrom.connectable.startConnected = True
            changes.append(vim.vm.device.VirtualDeviceSpec(operation=ops.edit, device=cdrom))
        if old_disk is not None:  # was booted from a VMDK: detach it (deleted after the swap)
            changes.append(vim.vm.device.VirtualDeviceSpec(operation=ops.remove, device=old_disk))
        return changes
    if cdrom is not None:
        changes.append(vim.vm.device.VirtualDeviceSpec(operation=ops.remove, device=cdrom))
    if old_disk is None:
        changes.append(_add(_disk(str(new_path), _scsi_key(vm), SYSTEM_UNIT)))
    elif old_disk.backing.fileName != new_path:
        old_disk.backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=new_path, diskMode="persistent", thinProvisioned=True
        )
        changes.append(vim.vm.device.VirtualDeviceSpec(operation=ops.edit, device=old_disk))
    return changes


def _is_up_on(vm: Any, medium: Medium) -> bool:
    """Whether a previous (interrupted) roll already put `vm` on `medium` and started it: same
    content hash, or for a medium named by its datastore path, the same path."""
    if vm.runtime.powerState != vim.VirtualMachinePowerState.poweredOn:
        return False
    if medium.sha256:
        return _extra(vm, KEY_SHA256) == medium.sha256
    return _medium_of(vm) == medium.path


def _power_off(session: Session, vm: Any, report: Report) -> None:
    if vm.runtime.powerState == vim.VirtualMachinePowerState.poweredOff:
        return
    report(f"powering off {vm.name}")
    session.wait(vm.PowerOffVM_Task(), f"powering off VM {vm.name}")


def rolling_replace(
    session: Session,
    vms: Sequence[Any],
    medium: Medium,
    spec: VMSpec,
    report: Report = _nothing,
) -> list[VMResult]:
    """Replace `vms` one at a time; each must be up (and report its IP when `spec.wait_for_ip`)
    before the next is touched. A failure stops the roll and names what is left."""
    done: list[VMResult] = []
    for i, vm in enumerate(vms):
        if _is_up_on(vm, medium):
            report(f"{vm.name} already runs {medium.path}; skipped")
            continue
        try:
            done.append(replace_vm(session, vm, medium, spec, report))
        except DistrokitError as err:
            left = [v.name for v in vms[i:]]
            err.message += (
                f"; replaced so far: {', '.join(r.name for r in done) or 'none'}; "
                f"not yet replaced: {', '.join(left)} (run the command again to continue)"
            )
            raise
    return done


# --- ls / rm -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VMInfo:
    """One line of ``vcenter ls``."""

    name: str
    power_state: str
    ip: str | None
    host: str
    medium: str
    persistent_disk: str | None


def list_vms(session: Session) -> list[VMInfo]:
    """The VMs distrokit made in the datacenter."""
    out = []
    for vm in distrokit_vms(session):
        disk = disks(vm).get(PERSISTENT_UNIT)
        out.append(
            VMInfo(
                name=str(vm.name),
                power_state=str(vm.runtime.powerState),
                ip=str(vm.guest.ipAddress) if vm.guest and vm.guest.ipAddress else None,
                host=str(vm.runtime.host.name) if vm.runtime.host else "",
                medium=_medium_of(vm),
                persistent_disk=str(disk.backing.fileName) if disk is not None else None,
            )
        )
    return out


KEY_DETACHED = "distrokit.persistent.detached"


def kept_disk_path(session: Session, name: str) -> str:
    """Where ``rm --keep-disk`` puts the persistent disk of VM `name`."""
    return session.ds_path(f"{name}-persistent/{name}-persistent.vmdk")


def remove_vm(
    session: Session, name: str, *, keep_disk: bool, report: Report = _nothing
) -> str | None:
    """Power off and delete a VM distrokit made; with `keep_disk`, its persistent disk is
    detached and moved out of the VM's folder first. Returns where the disk now is.

    The detach records the disk's path in the VM in the same reconfiguration, so a ``rm``
    interrupted before the move finds it again when re-run.
    """
    vm = session.find_vm(name)
    if vm is None:
        known = ", ".join(v.name for v in distrokit_vms(session)) or "none"
        raise VSphereError(
            f"no VM called {name} in datacenter {session.datacenter.name}",
            hint=f"VMs made by distrokit there: {known}",
        )
    if not _medium_of(vm):
        raise VSphereError(f"VM {name} was not made by distrokit; not removing it")
    _power_off(session, vm, report)
    kept = _keep_persistent(session, vm, report) if keep_disk else None
    report(f"deleting VM {name}")
    session.wait(vm.Destroy_Task(), f"deleting VM {name}")
    return kept


def _keep_persistent(session: Session, vm: Any, report: Report) -> str | None:
    disk = disks(vm).get(PERSISTENT_UNIT)
    source = str(disk.backing.fileName) if disk is not None else _extra(vm, KEY_DETACHED)
    if not source:
        return None
    if disk is not None:
        report(f"detaching {source} from {vm.name}")
        mark = [vim.option.OptionValue(key=KEY_DETACHED, value=source)]
        _detach(session, vm, disk, extraConfig=mark)
    kept = kept_disk_path(session, vm.name)
    report(f"moving {source} to {kept}")
    with contextlib.suppress(vim.fault.FileAlreadyExists):
        session.content.fileManager.MakeDirectory(
            name=posixpath.dirname(kept),
            datacenter=session.datacenter,
            createParentDirectories=True,
        )
    session.wait(
        session.content.virtualDiskManager.MoveVirtualDisk_Task(
            sourceName=source,
            sourceDatacenter=session.datacenter,
            destName=kept,
            destDatacenter=session.datacenter,
            force=False,
        ),
        f"moving {source} to {kept}",
    )
    return kept
