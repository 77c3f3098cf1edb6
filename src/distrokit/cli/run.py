"""``distrokit run [BACKEND] [flags] PATH``: boot a built system (CLI front of `runners`).

The backends and their help come from `distrokit.runners.RUNNERS`; with no backend named, the
host's default (qemu on Linux) is used, as ``linuxkit run`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distrokit.arch import kernel_arch
from distrokit.cli import _Parser
from distrokit.errors import UsageError
from distrokit.host import Host
from distrokit.runners import RUNNERS, default_runner, get_runner
from distrokit.runners.config import (
    BootMode,
    BootSource,
    RunConfig,
    parse_console,
    parse_disk,
    parse_netboot_url,
    parse_networking,
    parse_publish,
)
from distrokit.runners.qemu import ARCHES, MACHINES, host_arch
from distrokit.runners.source import resolve


class _RunParser(_Parser):
    """The ``run`` parser: a first word that names no backend starts the default backend's
    arguments, so ``distrokit run -mem 512 NAME`` means ``distrokit run qemu -mem 512 NAME``."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        argv = list(args or [])
        if argv and argv[0] not in RUNNERS and argv[0] not in ("-h", "--help"):
            # with no default on this OS, argparse reports the unknown backend
            with contextlib.suppress(UsageError):
                argv.insert(0, default_runner().name)
        return super().parse_known_args(argv, namespace)


def register(subparsers: Any) -> None:
    """Add ``run`` and one sub-command per registered runner."""
    parser = subparsers.add_parser(
        "run",
        help="boot a built system in a VM",
        description="Boot a built system. With no BACKEND, the host default (qemu on Linux).",
    )
    if type(parser) is _Parser:
        parser.__class__ = _RunParser
    backends = parser.add_subparsers(dest="backend", metavar="BACKEND", parser_class=_Parser)
    for runner in RUNNERS.values():
        sub = backends.add_parser(runner.name, help=runner.summary)
        sub.set_defaults(func=_run, runner=runner.name)
        _FLAGS[runner.name](sub)  # may set a command of its own (vcenter)
    parser.set_defaults(func=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _add_qemu(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", nargs="?", help="NAME prefix (NAME-kernel, ...), an .iso or a disk image"
    )
    p.add_argument(
        "--netboot", nargs="?", const="", metavar="URL",
        help="boot from the network through the NIC's iPXE (no PATH); with user networking "
        "URL is the iPXE script, e.g. http://127.0.0.1:8080/boot.ipxe from distrokit serve",
    )  # fmt: skip
    p.add_argument(
        "--boot-order", choices=("net", "disk"), default="net",
        help="with --netboot: 'disk' tries the first --disk first and the network when it is "
        "not bootable, as a provisioned server does (default net)",
    )  # fmt: skip
    p.add_argument(
        "--reboot", action="store_true",
        help="let a guest reboot restart the VM (default: a reboot ends it, as LinuxKit)",
    )  # fmt: skip
    p.add_argument("--cpus", type=int, default=1, help="virtual CPUs (default 1)")
    p.add_argument("--mem", type=int, default=1024, help="memory in MiB (default 1024)")
    p.add_argument(
        "--disk",
        action="append",
        default=[],
        metavar="[file=]PATH[,size=N[G|M]][,format=F]",
        help="attach a disk, created when missing (repeatable; a bare size is GiB)",
    )
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data", help="metadata string, attached as a 'cidata' CD")
    data.add_argument("--data-file", type=Path, help="metadata file, attached as a 'cidata' CD")
    p.add_argument(
        "--publish", action="append", default=[], metavar="HOST:GUEST[/tcp|udp]",
        help="forward a host port to the guest (user networking; repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--networking", default="user", metavar="user|tap,IF|bridge,BR|none",
        help="guest network (default user)",
    )  # fmt: skip
    p.add_argument("--state", type=Path, help="state directory (default PATH-state)")
    p.add_argument("--detach", action="store_true", help="run in the background (pid in state)")
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    p.add_argument("--qemu", help="QEMU binary (default qemu-system-ARCH)")
    p.add_argument(
        "--arch",
        type=_guest_arch,
        default=None,
        help=f"guest architecture: {', '.join(ARCHES)} (amd64 and arm64 are accepted too)",
    )
    p.add_argument("--append", action="append", default=[], help="extra kernel command line")
    p.add_argument("--console", default="stdio", metavar="stdio|file:PATH|none")
    p.add_argument("--machine", choices=MACHINES, default="auto")
    p.add_argument(
        "--pvh", action=argparse.BooleanOptionalAction, default=True,
        help="boot the ELF kernel extracted from the bzImage via PVH (default on)",
    )  # fmt: skip
    p.add_argument("--device", action="append", default=[], help="extra QEMU -device (repeatable)")
    p.add_argument(
        "--qmp", type=Path, metavar="SOCKET",
        help="QEMU's QMP server on this unix socket (e.g. system_powerdown presses power)",
    )  # fmt: skip
    p.add_argument("--uefi", action="store_true", help="boot with OVMF UEFI firmware")
    p.add_argument("--fw", type=Path, help="UEFI firmware code (default Debian's OVMF)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--kernel", action="store_true", help="force a kernel+initrd boot")
    mode.add_argument("--squashfs", action="store_true", help="force a kernel+squashfs boot")
    mode.add_argument("--iso", action="store_true", help="force an ISO boot")


# The flags of each runner's sub-command, by runner name.
_FLAGS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "qemu": _add_qemu,
    "vcenter": lambda p: importlib.import_module("distrokit.cli.run_vcenter").add_flags(p),
}


def _guest_arch(text: str) -> str:
    """``--arch`` in QEMU's spelling, whichever spelling was typed."""
    try:
        return kernel_arch(text)
    except UsageError as err:
        raise argparse.ArgumentTypeError(err.message) from err


def _forced_mode(args: argparse.Namespace) -> BootMode | None:
    for flag, mode in (
        ("kernel", BootMode.KERNEL),
        ("squashfs", BootMode.SQUASHFS),
        ("iso", BootMode.ISO),
    ):
        if getattr(args, flag):
            return mode
    return None


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The `RunConfig` a parsed ``run qemu`` command line asks for."""
    networking = parse_networking(args.networking)
    netboot_url = None
    if args.netboot is not None:
        if args.path is not None or _forced_mode(args) is not None:
            raise UsageError("--netboot boots from the network: give no PATH or boot mode")
        netboot_url = parse_netboot_url(args.netboot, networking)
        source = BootSource(mode=BootMode.NETWORK, prefix="netboot")
    elif args.path is None:
        raise UsageError("nothing to boot: give a PATH or --netboot")
    else:
        source = resolve(args.path, _forced_mode(args))
    if args.boot_order == "disk" and (args.netboot is None or not args.disk):
        raise UsageError("--boot-order disk needs --netboot and a --disk to try first")
    data: bytes | None = None
    if args.data is not None:
        data = args.data.encode()
    elif args.data_file is not None:
        try:
            data = args.data_file.read_bytes()
        except OSError as err:
            raise UsageError(f"cannot read --data-file {args.data_file}: {err}") from err
    if args.cpus < 1 or args.mem < 16:
        raise UsageError("--cpus must be at least 1 and --mem at least 16 (MiB)")
    return RunConfig(
        source=source,
        state_dir=args.state or Path(f"{source.prefix}-state"),
        arch=args.arch or host_arch(),
        cpus=args.cpus,
        mem_mb=args.mem,
        disks=tuple(parse_disk(d) for d in args.disk),
        data=data,
        publish=tuple(parse_publish(p) for p in args.publish),
        networking=networking,
        accel=args.accel,
        qemu=args.qemu,
        append=tuple(args.append),
        console=parse_console(args.console),
        machine=args.machine,
        pvh=args.pvh,
        uefi=args.uefi or args.fw is not None,
        firmware=args.fw,
        detach=args.detach,
        devices=tuple(args.device),
        netboot_url=netboot_url,
        disk_first=args.boot_order == "disk",
        reboot=args.reboot,
        qmp=args.qmp,
    )


def _run(args: argparse.Namespace) -> int:
    """``distrokit run BACKEND``: the backend from the runner registry boots the system,
    streams the console, and returns how the guest ended."""
    runner = get_runner(args.runner)
    run = _CONFIGS[runner.name](args)
    host = Host(debug=args.debug)
    host.check_tools(runner.tools)
    # QEMU inherits the terminal: the console streams straight to it, keystrokes reach the
    # guest, and Ctrl-C (SIGINT to the foreground group) stops QEMU and us together.
    return int(runner.load().run_vm(host, run))


# How each runner's parsed command line becomes the config its run_vm takes, by runner name.
_CONFIGS: dict[str, Callable[[argparse.Namespace], RunConfig]] = {"qemu": config_from_args}
