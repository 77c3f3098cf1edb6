"""``distrokit vm``: microVMs from OCI images, with Docker's and Ignite's verbs.

``vm run IMAGE [CMD...]`` = ``vm create`` + ``vm start``, then follows the console and exits
with the workload's status (``-d`` prints the id instead); ``ps``, ``logs``, ``attach``,
``exec``, ``stop``, ``kill``, ``rm``, ``inspect``; ``vm image ls|import|rm`` and
``vm kernel ls|import|rm``. VMs are named by name, id or a unique id prefix.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from distrokit.cli.registry_flags import registry_flags, registry_options
from distrokit.errors import UsageError
from distrokit.host import Host
from distrokit.vm import machine
from distrokit.vm.store import Store, VmConfig, VmError

if TYPE_CHECKING:
    from distrokit.oci.image import CachedImage
    from distrokit.vm.manager import CreateRequest

# The image, disk and kernel code is imported by the commands that use it: `vm run` is timed
# from the command to the workload's output, and `ps` should not pay for the image machinery.


def register(subparsers: Any) -> None:
    """Add ``vm`` and its subcommands."""
    vm = subparsers.add_parser("vm", help="microVMs from OCI images (run, ps, exec, stop, rm)")
    sub = vm.add_subparsers(dest="vm_command", metavar="COMMAND", required=True)
    for name, helptext in (
        ("run", "create and start a VM, follow its console, exit with its status"),
        ("create", "create a VM without starting it"),
    ):
        p = sub.add_parser(name, help=helptext)
        _create_flags(p)
        if name == "run":
            p.add_argument("-d", "--detach", action="store_true", help="print the id and return")
            p.add_argument("-i", "--interactive", action="store_true", help="attach the console")
        p.set_defaults(func=_cmd_run if name == "run" else _cmd_create)
    p = sub.add_parser("start", help="start stopped VMs")
    p.add_argument("vms", nargs="+", metavar="VM")
    p.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
    p.set_defaults(func=_cmd_start)
    p = sub.add_parser("ps", help="list running VMs (-a: all)")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")
    p.set_defaults(func=_cmd_ps)
    p = sub.add_parser("logs", help="print a VM's console output")
    p.add_argument("vm", metavar="VM")
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(func=_cmd_logs)
    p = sub.add_parser("attach", help="connect the terminal to a VM's console")
    p.add_argument("vm", metavar="VM")
    p.set_defaults(func=_cmd_attach)
    p = sub.add_parser("exec", help="run a command in a running VM (no network needed)")
    p.add_argument("vm", metavar="VM")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD")
    p.set_defaults(func=_cmd_exec)
    for name, helptext in (
        ("stop", "stop VMs (workload SIGTERM, then kill)"),
        ("kill", "stop VMs now"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("vms", nargs="+", metavar="VM")
        p.set_defaults(func=_cmd_stop if name == "stop" else _cmd_kill)
    p = sub.add_parser("rm", help="remove VMs and their disks")
    p.add_argument("vms", nargs="+", metavar="VM")
    p.add_argument("-f", "--force", action="store_true", help="kill running VMs first")
    p.set_defaults(func=_cmd_rm)
    p = sub.add_parser("inspect", help="a VM as JSON")
    p.add_argument("vm", metavar="VM")
    p.set_defaults(func=_cmd_inspect)
    _register_images(sub)


def _register_images(sub: Any) -> None:
    for kind in ("image", "kernel"):
        group = sub.add_parser(kind, help=f"manage imported {kind}s")
        gsub = group.add_subparsers(dest="vm_sub", metavar="COMMAND", required=True)
        p = gsub.add_parser("ls", help=f"list imported {kind}s")
        p.set_defaults(func=_cmd_image_ls if kind == "image" else _cmd_kernel_ls)
        p = gsub.add_parser("import", help=f"pull if needed and import {kind}s")
        p.add_argument("refs", nargs="+", metavar="REF")
        _cache_flags(p)
        if kind == "image":
            p.add_argument("--size", default="1G", help="root disk size (default 1G)")
        p.set_defaults(func=_cmd_image_import if kind == "image" else _cmd_kernel_import)
        p = gsub.add_parser("rm", help=f"remove imported {kind}s (refused while VMs use them)")
        p.add_argument("refs", nargs="+", metavar="REF|DIGEST")
        p.set_defaults(func=_cmd_image_rm if kind == "image" else _cmd_kernel_rm)


def _cache_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", type=Path, help="image cache (default LinuxKit's)")
    registry_flags(p)


def _create_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD", help="replaces CMD")
    p.add_argument("--name")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--memory", default="512M", help="RAM (default 512M)")
    p.add_argument("--size", default="1G", help="root disk size (default 1G)")
    p.add_argument("-k", "--kernel-image", help="kernel image (default: last imported)")
    p.add_argument("--entrypoint", help="replaces the image's ENTRYPOINT (one word)")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="HOST:GUEST")
    p.add_argument("--copy-files", action="append", default=[], metavar="SRC:DST")
    p.add_argument(
        "--ssh",
        nargs="?",
        const="",
        metavar="PUBKEY",
        help="authorize this public key (or a generated one) for root and publish port 22 "
        "on a free host port (the image must run sshd)",
    )
    p.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
    _cache_flags(p)


def _pull(args: argparse.Namespace, ref: str) -> CachedImage:
    """The image from the cache, pulled only when the cache lacks it."""
    from distrokit.oci.cache import Cache, default_cache_dir
    from distrokit.oci.image import host_platform

    cache = Cache(args.cache or default_cache_dir())
    found = cache.find(ref, host_platform())
    if found is not None:
        return found
    from distrokit.oci.pull import PullOptions, pull

    options = PullOptions(**registry_options(args))
    return pull(cache, [ref], host_platform(), options=options)[0]


def _size(text: str) -> int:
    from distrokit.formats.disk import parse_size_mib

    return parse_size_mib(text)


def _kernel_ref(args: argparse.Namespace, store: Store) -> str:
    from distrokit.vm import kernel as vmkernel

    if args.kernel_image:
        return str(args.kernel_image)
    known = vmkernel.list_kernels(store)
    if not known:
        raise UsageError(
            "no kernel: give --kernel-image REF", hint="or import one: distrokit vm kernel import"
        )
    return str(known[-1]["reference"])


def _request(args: argparse.Namespace) -> CreateRequest:
    from distrokit.vm import manager

    for item in args.env:
        if "=" not in item:
            raise UsageError(f"invalid --env {item!r}", hint="use KEY=VALUE")
    if args.ssh and not Path(args.ssh).is_file():
        # `--ssh IMAGE CMD`: argparse gave the image to --ssh (Ignite's form is --ssh=KEY)
        args.command = [args.image, *args.command]
        args.image, args.ssh = args.ssh, ""
    command = tuple(args.command) if args.command else None
    if command and command[0] == "--":
        command = command[1:] or None
    return manager.CreateRequest(
        name=args.name,
        size_mb=_size(args.size),
        cpus=args.cpus,
        memory_mb=_size(args.memory),
        command=command,
        entrypoint=(args.entrypoint,) if args.entrypoint else None,
        env=tuple(args.env),
        publish=tuple(args.publish),
        copy_files=tuple(args.copy_files),
        ssh=args.ssh,
        interactive=bool(getattr(args, "interactive", False)),
    )


def _create(args: argparse.Namespace, store: Store, host: Host) -> VmConfig:
    from distrokit.vm import manager

    request = _request(args)
    image = _pull(args, args.image)
    kernel = _pull(args, _kernel_ref(args, store))
    return manager.create(host, store, image, kernel, request)


def _cmd_create(args: argparse.Namespace) -> int:
    store, host = Store(), Host(debug=args.debug)
    config = _create(args, store, host)
    print(config.id)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from distrokit.vm import manager

    store, host = Store(), Host(debug=args.debug)
    config = _create(args, store, host)
    with store.locked(config.id):
        config = manager.start(host, store, config, args.accel)
    directory = store.vm_dir(config.id)
    if args.detach:
        print(config.id)
        return 0
    try:
        if args.interactive:
            _attach(directory)
        else:
            _follow(directory / machine.CONSOLE_LOG, directory, from_start=True)
    except KeyboardInterrupt:
        # like docker run: Ctrl-C ends the workload too (the VM is stopped, not left behind)
        with store.locked(config.id):
            manager.stop(store, config)
        raise
    status = machine.exit_status(directory)
    return status if status is not None else 0


def _follow(log: Path, directory: Path, *, from_start: bool) -> None:
    """Print `log` as it grows until the VM stops (then what is left).

    The log is read every 10 ms, so a line shows as soon as the guest writes it; whether QEMU
    still runs is its pid (a file and /proc read), not a QMP round trip per turn."""
    out: IO[bytes] | None = sys.stdout.buffer
    pos = 0 if from_start else (log.stat().st_size if log.exists() else 0)
    while True:
        running = machine.vm_pid(directory) is not None
        try:
            with log.open("rb") as f:
                f.seek(pos)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            pos += len(chunk)
            try:
                if out is not None:
                    out.write(chunk)
                    out.flush()
            except BrokenPipeError:
                out = None  # the reader went away (| head): wait for the status, silently
        if not running:
            return
        time.sleep(0.01)


def _attach(directory: Path) -> None:
    """Copy stdin to the console socket and the console to stdout until the VM stops."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(directory / machine.CONSOLE_SOCK))
        stdin = sys.stdin.fileno()
        watch: list[Any] = [s]
        deadline = time.monotonic() + 120
        while not machine.guest_up(directory) and time.monotonic() < deadline:
            if machine.status(directory) == "stopped":
                break
            time.sleep(0.05)
        watch.append(stdin)
        while True:
            ready, _, _ = select.select(watch, [], [], 0.5)
            if s in ready:
                data = s.recv(65536)
                if not data:
                    return
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            if stdin in ready:
                data = os.read(stdin, 65536)
                if data:
                    s.sendall(data)
                else:
                    watch = [s]
            if not ready and machine.status(directory) == "stopped":
                return


def _cmd_start(args: argparse.Namespace) -> int:
    from distrokit.vm import manager

    host = Host(debug=args.debug)
    return _each(args.vms, lambda store, c: manager.start(host, store, c, args.accel))


def _each(names: list[str], action: Callable[[Store, VmConfig], object]) -> int:
    """Run `action` on each named VM under its lock, printing its id."""
    store = Store()
    for what in names:
        config = store.find(what)
        with store.locked(config.id):
            action(store, config)
        print(config.id)
    return 0


def _cmd_ps(args: argparse.Namespace) -> int:
    store = Store()
    rows = []
    for config in store.all():
        directory = store.vm_dir(config.id)
        status = machine.status(directory)
        if status == "stopped":
            if not args.all:
                continue
            code = machine.exit_status(directory)
            if not config.started_once:
                status = "created"
            elif code is not None:
                status = f"exited ({code})"
        rows.append((config.id[:12], config.image, config.size_mb, status, config.name))
    if args.quiet:
        print("\n".join(r[0] for r in rows))
        return 0
    print(f"{'VM ID':<14}{'IMAGE':<48}{'SIZE':>7}  {'STATUS':<14}NAME")
    for vid, image, size, status, name in rows:
        print(f"{vid:<14}{image[:46]:<48}{size:>6}M  {status:<14}{name}")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    store = Store()
    config = store.find(args.vm)
    directory = store.vm_dir(config.id)
    log = directory / machine.CONSOLE_LOG
    if args.follow:
        _follow(log, directory, from_start=True)
    elif log.exists():
        sys.stdout.buffer.write(log.read_bytes())
    return 0


def _cmd_attach(args: argparse.Namespace) -> int:
    store = Store()
    config = store.find(args.vm)
    directory = store.vm_dir(config.id)
    if machine.status(directory) == "stopped":
        raise VmError(f"VM {config.name} is not running")
    _attach(directory)
    return 0


def _cmd_exec(args: argparse.Namespace) -> int:
    from distrokit.vm import manager

    store = Store()
    config = store.find(args.vm)
    argv = tuple(args.argv[1:] if args.argv[:1] == ["--"] else args.argv)
    if not argv:
        raise UsageError("vm exec needs a command")
    with store.locked(config.id):
        result = manager.run_exec(store, config, argv)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(result.stderr)
    return result.status


def _cmd_stop(args: argparse.Namespace) -> int:
    from distrokit.vm import manager

    return _each(args.vms, manager.stop)


def _cmd_kill(args: argparse.Namespace) -> int:
    return _each(args.vms, lambda store, c: machine.kill(store.vm_dir(c.id)))


def _cmd_rm(args: argparse.Namespace) -> int:
    from distrokit.vm import manager

    return _each(args.vms, lambda store, c: manager.remove(store, c, args.force))


def _cmd_inspect(args: argparse.Namespace) -> int:
    from distrokit.vm import manager

    store = Store()
    config = store.find(args.vm)
    print(json.dumps(manager.inspect(store, config), indent=2))
    return 0


def _cmd_image_ls(args: argparse.Namespace) -> int:
    from distrokit.vm import rootfs

    print(f"{'DIGEST':<20}{'SIZES':<16}{'USED':>10}  REFERENCE")
    for info in rootfs.list_images(Store()):
        sizes = ",".join(f"{s}M" for s in info["sizes_mb"])
        used = f"{info['used_bytes'] >> 20}M"
        print(f"{info['digest'][7:19]:<20}{sizes:<16}{used:>10}  {info['reference']}")
    return 0


def _cmd_image_import(args: argparse.Namespace) -> int:
    from distrokit.vm import rootfs

    store, host = Store(), Host(debug=args.debug)
    for ref in args.refs:
        image = _pull(args, ref)
        rootfs.import_image(host, store, image, _size(args.size))
        print(image.digest)
    return 0


def _match(known: Sequence[Mapping[str, Any]], what: str) -> Mapping[str, Any]:
    for info in known:
        digest = str(info["digest"])
        if what in (info["reference"], digest) or digest.removeprefix("sha256:").startswith(what):
            return info
    raise VmError(f"nothing imported is named {what!r}")


def _cmd_image_rm(args: argparse.Namespace) -> int:
    from distrokit.vm import rootfs

    return _remove_imported(args.refs, "image", rootfs.list_images, rootfs.remove_image)


def _cmd_kernel_ls(args: argparse.Namespace) -> int:
    from distrokit.vm import kernel as vmkernel

    print(f"{'DIGEST':<20}REFERENCE")
    for info in vmkernel.list_kernels(Store()):
        print(f"{str(info['digest'])[7:19]:<20}{info['reference']}")
    return 0


def _cmd_kernel_import(args: argparse.Namespace) -> int:
    from distrokit.vm import kernel as vmkernel

    store = Store()
    for ref in args.refs:
        image = _pull(args, ref)
        vmkernel.import_kernel(store, image)
        print(image.digest)
    return 0


def _cmd_kernel_rm(args: argparse.Namespace) -> int:
    from distrokit.vm import kernel as vmkernel

    return _remove_imported(args.refs, "kernel", vmkernel.list_kernels, vmkernel.remove_kernel)


def _remove_imported(
    refs: list[str],
    kind: str,
    listing: Callable[[Store], Sequence[Mapping[str, Any]]],
    remove: Callable[[Store, str], None],
) -> int:
    """``vm image rm`` / ``vm kernel rm``: refused while a VM uses it."""
    store = Store()
    for what in refs:
        info = _match(listing(store), what)
        digest = str(info["digest"])
        users = [c.name for c in store.all() if getattr(c, f"{kind}_digest") == digest]
        if users:
            raise VmError(f"{kind} {info['reference']} is used by VMs: {', '.join(users)}")
        remove(store, digest)
        print(digest)
    return 0
