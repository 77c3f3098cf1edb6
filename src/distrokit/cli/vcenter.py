"""``distrokit vcenter ls | rm``: the VMs distrokit made on a vCenter/ESXi host."""

from __future__ import annotations

import argparse
from typing import Any

from distrokit.cli import vsphere as vs


def register(subparsers: Any) -> None:
    """Add ``vcenter`` and its subcommands."""
    parser = subparsers.add_parser("vcenter", help="list and remove VMs made by run vcenter")
    sub = parser.add_subparsers(dest="vcenter_command", metavar="SUBCOMMAND", required=True)
    ls = sub.add_parser("ls", help="VMs made by distrokit: power state, IP, host, medium, disk")
    vs.add_connection_flags(ls, with_host=False)
    ls.set_defaults(func=_cmd_ls)
    rm = sub.add_parser("rm", help="power off and delete a VM made by distrokit")
    rm.add_argument("name", nargs="+", help="VM name")
    vs.add_connection_flags(rm, with_host=False)
    rm.add_argument(
        "--keep-disk", action="store_true",
        help="keep its persistent disk: moved to [datastore] NAME-persistent/ and printed",
    )  # fmt: skip
    rm.set_defaults(func=_cmd_rm)


def _cmd_ls(args: argparse.Namespace) -> int:
    from distrokit.runners.vcenter import list_vms

    with vs.open_session(args) as session:
        vms = list_vms(session)
    rows = [("NAME", "POWER", "IP", "HOST", "MEDIUM", "PERSISTENT DISK")]
    rows += [
        (v.name, v.power_state, v.ip or "-", v.host, v.medium, v.persistent_disk or "-")
        for v in vms
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _cmd_rm(args: argparse.Namespace) -> int:
    from distrokit.runners.vcenter import remove_vm

    with vs.open_session(args) as session:
        for name in args.name:
            kept = remove_vm(session, name, keep_disk=args.keep_disk, report=vs.report)
            print(f"{name} removed" + (f"; persistent disk kept at {kept}" if kept else ""))
    return 0
