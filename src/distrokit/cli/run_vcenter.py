"""``distrokit run vcenter``: create a VM on vCenter/ESXi, or rebuild existing ones (--replace).

Registered by `distrokit.cli.run` from `distrokit.runners.RUNNERS`.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from distrokit.cli import vsphere as vs
from distrokit.errors import UsageError

if TYPE_CHECKING:  # imported by the command itself: see distrokit.cli.vsphere
    from distrokit.push.vcenter import Medium
    from distrokit.push.vsphere import Session
    from distrokit.runners.vcenter import VMResult, VMSpec

_SIZE = re.compile(r"^(?P<n>\d+)\s*(?P<unit>[MGT]?)i?B?$", re.IGNORECASE)


def parse_size_mb(text: str) -> int:
    """``--persistent-size``: a number with M, G or T (MiB, GiB, TiB); a bare number is GiB."""
    m = _SIZE.match(text.strip())
    if m is None or int(m["n"]) == 0:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: use e.g. 512M, 10G or 1T (a bare number is GiB)"
        )
    factor = {"M": 1, "G": 1024, "T": 1024 * 1024, "": 1024}[m["unit"].upper()]
    return int(m["n"]) * factor


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def add_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``run vcenter``."""
    p.description = (
        "Upload PATH (unless it is a [datastore] path already there), create a VM that boots it "
        "and power it on. With --replace, rebuild existing VMs on the new system instead, one at "
        "a time, keeping their persistent disk."
    )
    p.add_argument(
        "path", nargs="?",
        help="an .iso or a disk image (uploaded first), or '[datastore] folder/x.iso|.vmdk'",
    )  # fmt: skip
    vs.add_connection_flags(p, with_host=True)
    env = os.environ.get
    p.add_argument(
        "--network", default=env("VCNETWORK"),
        help="network or port group of the vmxnet3 NIC (default $VCNETWORK; none: no NIC)",
    )  # fmt: skip
    p.add_argument("--name", "--vmfolder", dest="name", help="VM name (default: PATH's stem)")
    p.add_argument("--path", dest="path_flag", help=argparse.SUPPRESS)  # LinuxKit's spelling
    p.add_argument(
        "--folder", help="datastore folder for the uploaded medium (default NAME-SHA256PREFIX)"
    )
    p.add_argument("--cpus", type=int, help="virtual CPUs (default 1; kept on --replace)")
    p.add_argument("--mem", type=int, help="memory in MiB (default 1024; kept on --replace)")
    p.add_argument(
        "--persistent-size", "--persistentSize", dest="persistent_mb", type=parse_size_mb,
        metavar="SIZE",
        help="add an empty persistent disk (SCSI 0:1): 512M, 10G, 1T; a bare number is GiB",
    )  # fmt: skip
    p.add_argument(
        "--persistent-disk", metavar="'[DATASTORE] PATH.vmdk'",
        help="attach this existing disk as the persistent disk (e.g. one kept by "
        "'vcenter rm --keep-disk')",
    )  # fmt: skip
    p.add_argument("--guest-id", default="otherLinux64Guest", help="vSphere guest OS id")
    p.add_argument("--firmware", choices=("bios", "efi"), default="bios")
    p.add_argument(
        "--power-on", "--powerOn", dest="power_on",
        action=argparse.BooleanOptionalAction, default=True,
        help="power the VM on (default on)",
    )  # fmt: skip
    p.add_argument(
        "--wait-for-ip", "--waitForIP", dest="wait_for_ip", action="store_true",
        help="wait for VMware Tools (open-vm-tools) to report the guest's IP and print it",
    )  # fmt: skip
    p.add_argument(
        "--ip-timeout", type=float, default=300.0, metavar="SECONDS",
        help="how long --wait-for-ip waits (default 300)",
    )  # fmt: skip
    p.add_argument(
        "--extra-config", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
        help="VM extraConfig entry, e.g. guestinfo.userdata=... (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--replace", action="append", default=[], metavar="NAME",
        help="rebuild this existing VM (a glob such as 'web-*' is allowed; repeatable): "
        "one at a time, each up before the next, persistent disk kept",
    )  # fmt: skip
    p.set_defaults(func=run_vcenter)


def _spec(args: argparse.Namespace, name: str, replacing: bool) -> VMSpec:
    from distrokit.runners.vcenter import VMSpec

    if args.cpus is not None and args.cpus < 1:
        raise UsageError("--cpus must be at least 1")
    if args.mem is not None and args.mem < 16:
        raise UsageError("--mem must be at least 16 (MiB)")
    if replacing and (args.persistent_mb or args.persistent_disk):
        raise UsageError("--replace keeps the persistent disk; no --persistent-size/-disk")
    if args.persistent_mb and args.persistent_disk:
        raise UsageError("--persistent-size makes a new disk, --persistent-disk attaches one")
    return VMSpec(
        name=name,
        cpus=args.cpus if replacing else (args.cpus or 1),
        mem_mb=args.mem if replacing else (args.mem or 1024),
        guest_id=args.guest_id,
        firmware=args.firmware,
        network=args.network,
        persistent_mb=args.persistent_mb,
        persistent_disk=args.persistent_disk,
        power_on=args.power_on,
        wait_for_ip=args.wait_for_ip,
        ip_timeout=args.ip_timeout,
        extra_config=dict(args.extra_config),
    )


def _medium(session: Session, spec: str, args: argparse.Namespace) -> Medium:
    on_datastore = vs.datastore_medium(session, spec)
    if on_datastore is not None:
        return on_datastore
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"{path}: no such file (nor a '[datastore] path')")
    return vs.upload(session, path, args.folder, args, content_dir=True)


def _print(result: VMResult) -> None:
    ip = f" {result.ip}" if result.ip else ""
    print(f"{result.name} {result.power_state}{ip}")


def run_vcenter(args: argparse.Namespace) -> int:
    """``distrokit run vcenter``."""
    from distrokit.runners.vcenter import create_vm, match_vms, preflight, rolling_replace

    spec_text = args.path or args.path_flag
    if not spec_text:
        raise UsageError("run vcenter needs PATH: an .iso, a disk image or a '[datastore] path'")
    stem = Path(re.sub(r"^\[[^\]]*\]\s*", "", spec_text)).name.rsplit(".", 1)[0]
    if args.replace and args.name:
        raise UsageError("--name names a new VM; --replace names existing ones: give one")
    spec = _spec(args, "" if args.replace else (args.name or stem), replacing=bool(args.replace))
    with vs.open_session(args) as session:
        if args.replace:
            vms = match_vms(session, args.replace)  # before the upload: fail fast on a typo
            medium = _medium(session, spec_text, args)
            for result in rolling_replace(session, vms, medium, spec, vs.report):
                _print(result)
            return 0
        preflight(session, spec)  # an upload for a VM that cannot be made is wasted
        medium = _medium(session, spec_text, args)
        _print(create_vm(session, medium, spec, vs.report))
    return 0
