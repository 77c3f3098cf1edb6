"""The VM lifecycle: create, start, stop, kill, remove, exec, inspect; each under the VM's lock.

`create` resolves the image and the kernel from the image cache (pulling what is missing is
the CLI's job), imports them once (`rootfs`, `kernel`) and gives the VM its overlay; `start`
writes the guest's configuration disk and starts QEMU (`machine`).
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from distrokit.errors import RunError
from distrokit.host import Host
from distrokit.oci.image import CachedImage
from distrokit.runners.config import parse_publish
from distrokit.vm import guest, machine, rootfs
from distrokit.vm.kernel import VmKernel, import_kernel, kernel_dir
from distrokit.vm.store import Store, VmConfig, VmError


@dataclass(frozen=True, kw_only=True)
class CreateRequest:
    """`vm create` / `vm run` flags, parsed."""

    name: str | None = None
    size_mb: int = 1024
    cpus: int = 1
    memory_mb: int = 512
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    copy_files: tuple[str, ...] = ()
    interactive: bool = False
    ssh: str | None = None  # None: no SSH; "": generate a key pair; else a public key file


SSH_KEY = "id_ed25519"  # a generated key pair, in the VM's state directory
AUTHORIZED_KEYS = "authorized_keys"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for --ssh)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ssh_files(host: Host, directory: Path, ssh: str) -> str:
    """The VM's authorized_keys (from the given public key, or a key pair made here) as a
    --copy-files spec."""
    if ssh:
        key = Path(ssh)
        if not key.is_file():
            raise VmError(f"--ssh public key {ssh} does not exist")
        text = key.read_text()
    else:
        private = directory / SSH_KEY
        host.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", directory.name,
                  "-f", str(private)])  # fmt: skip
        text = (directory / f"{SSH_KEY}.pub").read_text()
    keys = directory / AUTHORIZED_KEYS
    keys.write_text(text if text.endswith("\n") else text + "\n")
    keys.chmod(0o600)
    return f"{keys}:/root/.ssh/authorized_keys"


def parse_copy(spec: str) -> tuple[Path, str]:
    """``SRC:DST`` (DST absolute in the guest)."""
    src, sep, dst = spec.rpartition(":")
    if not sep or not src or not dst.startswith("/"):
        raise VmError(f"invalid --copy-files {spec!r}", hint="use HOST_PATH:/GUEST/PATH")
    path = Path(src)
    if not path.exists():
        raise VmError(f"--copy-files source {src} does not exist")
    return path.resolve(), dst


def create(
    host: Host,
    store: Store,
    image: CachedImage,
    kernel_image: CachedImage,
    request: CreateRequest,
) -> VmConfig:
    """A new VM of `image` booting `kernel_image` (imported now if not yet)."""
    for spec in request.publish:
        parse_publish(spec)
    for spec in request.copy_files:
        parse_copy(spec)
    if request.ssh and not Path(request.ssh).is_file():
        raise VmError(f"--ssh public key {request.ssh} does not exist")
    if request.size_mb < 16:
        raise VmError(f"--size {request.size_mb}M is too small", hint="give at least 16M")
    name = store.new_name(request.name)  # a taken name fails before any import
    import_kernel(store, kernel_image)
    base = rootfs.import_image(host, store, image, request.size_mb)
    ssh_port = free_port() if request.ssh is not None else None
    publish = request.publish + ((f"{ssh_port}:22",) if ssh_port else ())
    config = VmConfig(
        id=store.new_id(),
        name=name,
        image=image.reference,
        image_digest=image.digest,
        kernel_image=kernel_image.reference,
        kernel_digest=kernel_image.digest,
        size_mb=request.size_mb,
        cpus=request.cpus,
        memory_mb=request.memory_mb,
        command=request.command,
        entrypoint=request.entrypoint,
        env=request.env,
        publish=publish,
        copy_files=request.copy_files,
        ssh_port=ssh_port,
        interactive=request.interactive,
        created=time.time(),
    )
    directory = store.create_dir(config)
    try:
        if request.ssh is not None:
            spec = _ssh_files(host, directory, request.ssh)
            config = replace(config, copy_files=(*config.copy_files, spec))
            store.save(config)
        rootfs.create_overlay(host, base, directory / machine.OVERLAY)
    except BaseException:
        store.remove_dir(config.id)
        raise
    return config


def _merged_env(image_env: list[str], extra: tuple[str, ...]) -> tuple[str, ...]:
    env: dict[str, str] = {}
    for item in [*image_env, *extra]:
        key, _, value = item.partition("=")
        env[key] = value
    env.setdefault("PATH", guest.DEFAULT_PATH)
    env.setdefault("HOME", "/root")
    return tuple(f"{k}={v}" for k, v in env.items())


def guest_config(config: VmConfig, info: dict[str, Any], first: bool) -> guest.GuestConfig:
    """What the VM init is told: the image's own init, or the workload's argv and settings.

    The image's init runs when no command was given, the image has /sbin/init (or /init) and
    its ENTRYPOINT/CMD is empty or names that init (Ignite's OS images)."""
    entrypoint = config.entrypoint if config.entrypoint is not None else info.get("entrypoint")
    cmd = config.command if config.command is not None else info.get("cmd")
    argv = (*(entrypoint or []), *(cmd or []))
    env = _merged_env(list(info.get("env") or []), config.env)
    own = info.get("init")
    asked = config.command is not None or config.entrypoint is not None
    if own and not asked and (not argv or argv[0] in (own, "/sbin/init", "/init")):
        return guest.GuestConfig(name=config.name, mode="init", init=own, copy=first)
    path = dict(e.split("=", 1) for e in env).get("PATH", guest.DEFAULT_PATH)
    return guest.GuestConfig(
        name=config.name,
        mode="workload",
        argv=argv,
        env=env,
        workdir=str(info.get("working_dir") or "/"),
        user=str(info.get("user") or ""),
        path=path,
        copy=first,
        console_stdin=config.interactive,
    )


def start(host: Host, store: Store, config: VmConfig, accel: str = "auto") -> VmConfig:
    """Start a stopped VM (its lock must be held)."""
    directory = store.vm_dir(config.id)
    if machine.status(directory) != "stopped":
        raise VmError(f"VM {config.name} is already running")
    info = rootfs.load_image(store, config.image_digest, config.size_mb).info
    gc = guest_config(config, info, first=not config.started_once)
    files = [parse_copy(spec) for spec in config.copy_files] if gc.copy else []
    (directory / machine.CONFIG_DISK).write_bytes(guest.config_tar(gc, files))
    kdir = kernel_dir(store, config.kernel_digest)
    kernel = VmKernel(kdir, config.kernel_image, config.kernel_digest)
    m = machine.Machine(
        state_dir=directory,
        kernel=kernel.boot_kernel,
        initrd=kernel.ensure_initrd(),
        cpus=config.cpus,
        memory_mb=config.memory_mb,
        publish=tuple(parse_publish(p) for p in config.publish),
        accel=accel,
    )
    machine.start(host, m)
    if not config.started_once:
        config = replace(config, started_once=True)
        store.save(config)
    return config


def stop(store: Store, config: VmConfig, grace: float = 20.0) -> None:
    """Ask the workload (agent) or the image's init (ACPI power button) to end, then kill."""
    directory = store.vm_dir(config.id)
    if machine.status(directory) == "stopped":
        return
    if not machine.agent_stop(directory, timeout=min(grace, 5.0)):
        with contextlib.suppress(RunError):  # QEMU may be going away already
            machine.qmp(directory, "system_powerdown")
    if not machine.wait_stopped(directory, grace):
        machine.kill(directory)


def remove(store: Store, config: VmConfig, force: bool) -> None:
    """Delete the VM's state directory (the image's base stays for other VMs)."""
    directory = store.vm_dir(config.id)
    if machine.status(directory) != "stopped":
        if not force:
            raise VmError(f"VM {config.name} is running", hint=f"vm stop {config.name}, or rm -f")
        machine.kill(directory)
    store.remove_dir(config.id)


def exec_script(config: VmConfig, info: dict[str, Any], argv: tuple[str, ...]) -> str:
    """The script the agent runs for ``vm exec``: the command in the image's root, with the
    image's environment, as root, from /."""
    env = _merged_env(list(info.get("env") or []), config.env)
    path = dict(e.split("=", 1) for e in env).get("PATH", guest.DEFAULT_PATH)
    words = ["env", "-i", *env, "/bin/dk-exec", path, "/", "", *argv]
    return "exec " + " ".join(shlex.quote(w) for w in words) + "\n"


def run_exec(store: Store, config: VmConfig, argv: tuple[str, ...]) -> machine.ExecResult:
    """``vm exec``: run `argv` in the running VM through its agent."""
    directory = store.vm_dir(config.id)
    if machine.status(directory) == "stopped":
        raise VmError(f"VM {config.name} is not running", hint=f"vm start {config.name}")
    info = rootfs.load_image(store, config.image_digest, config.size_mb).info
    if guest_config(config, info, first=False).mode == "init":
        raise VmError(
            f"VM {config.name} runs its image's own init: vm exec needs the distrokit VM init",
            hint="give the VM a command, or use --ssh",
        )
    return machine.agent_exec(directory, exec_script(config, info, argv))


def inspect(store: Store, config: VmConfig) -> dict[str, Any]:
    """``vm inspect``: the config, the live status and the workload's exit status."""
    directory = store.vm_dir(config.id)
    return {
        **config.to_json(),
        "status": machine.status(directory),
        "exit_status": machine.exit_status(directory),
        "state_dir": str(directory),
    }
