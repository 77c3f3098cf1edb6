"""One VM's QEMU: its argv (through `distrokit.runners.qemu`), its status asked over QMP, and
the guest agent.

The VM is a QEMU ``-M microvm`` run detached (``-daemonize``), its kernel booted through PVH
when it has the note, like ``distrokit run qemu``: `runners.qemu.prepare` and `qemu_argv` build
the machine, this module adds the two disks (found by the guest by their serial numbers), the
console (a unix socket for ``attach``, logged to ``console.log``) and a virtio-serial bus with
the status port (a file) and the agent port (a unix socket).

Status is never trusted to files: a VM is running when the pid in ``qemu.pid`` is a live QEMU
started for this state directory and its QMP socket answers ``query-status``. A dead pid
(host restart, ``kill -9``), a pid now used by another program, or an unreachable socket means
stopped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distrokit.errors import RunError
from distrokit.host import Host
from distrokit.runners import qemu, state
from distrokit.runners.config import (
    BootMode,
    BootSource,
    Console,
    NetMode,
    Networking,
    Publish,
    RunConfig,
)
from distrokit.vm import guest

QMP_SOCK = "qmp.sock"
CONSOLE_SOCK = "console.sock"
CONSOLE_LOG = "console.log"
AGENT_SOCK = "agent.sock"
STATUS_FILE = "exit-status"
OVERLAY = "overlay.qcow2"
CONFIG_DISK = "config.tar"
# quiet: under TCG every console line costs; the workload's output is what the console is for.
CMDLINE = "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init"


@dataclass(frozen=True, kw_only=True)
class Machine:
    """What one start of a VM needs."""

    state_dir: Path
    kernel: Path
    initrd: Path
    cpus: int = 1
    memory_mb: int = 512
    publish: tuple[Publish, ...] = ()
    accel: str = "auto"


def run_config(m: Machine) -> RunConfig:
    """The runner's view of the VM (the extra devices are added by `argv`)."""
    source = BootSource(
        mode=BootMode.KERNEL, prefix=str(m.state_dir), kernel=m.kernel, initrd=m.initrd,
        cmdline=CMDLINE,
    )  # fmt: skip
    return RunConfig(
        source=source,
        state_dir=m.state_dir,
        cpus=m.cpus,
        mem_mb=m.memory_mb,
        publish=m.publish,
        networking=Networking(mode=NetMode.USER),
        accel=m.accel,
        console=Console(kind="none"),
        machine="microvm",
        detach=True,
        qmp=m.state_dir / QMP_SOCK,
    )


def extra_args(state_dir: Path) -> list[str]:
    """The VM's own devices: root and config disks, console socket, status and agent ports."""
    d = state_dir
    return [
        "-drive", f"file={d / OVERLAY},format=qcow2,if=none,id=dkroot,discard=unmap",
        "-device", f"virtio-blk-device,drive=dkroot,serial={guest.ROOT_SERIAL}",
        "-drive", f"file={d / CONFIG_DISK},format=raw,if=none,id=dkconfig,readonly=on",
        "-device", f"virtio-blk-device,drive=dkconfig,serial={guest.CONFIG_SERIAL}",
        "-chardev",
        f"socket,id=dkconsole,path={d / CONSOLE_SOCK},server=on,wait=off,"
        f"logfile={d / CONSOLE_LOG},logappend=on",
        "-serial", "chardev:dkconsole",
        "-device", "virtio-serial-device,id=dkserial",
        "-chardev", f"file,id=dkstatus,path={d / STATUS_FILE}",
        "-device", f"virtserialport,bus=dkserial.0,chardev=dkstatus,name={guest.STATUS_PORT}",
        "-chardev", f"socket,id=dkagent,path={d / AGENT_SOCK},server=on,wait=off",
        "-device", f"virtserialport,bus=dkserial.0,chardev=dkagent,name={guest.AGENT_PORT}",
    ]  # fmt: skip


def _without_serial_null(argv: list[str]) -> list[str]:
    # Console(kind="none") gives "-serial null"; the VM's console is its own chardev.
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "-serial" and i + 1 < len(argv) and argv[i + 1] == "null":
            skip = True
            continue
        out.append(arg)
    return out


def start(host: Host, m: Machine) -> int:
    """Start QEMU in the background; returns its pid once it is running."""
    # a pid file left by a QEMU that died (its pid may be another program's now)
    stale = () if vm_pid(m.state_dir) is not None else (state.PID_FILE,)
    for name in (STATUS_FILE, QMP_SOCK, CONSOLE_SOCK, AGENT_SOCK, *stale):
        (m.state_dir / name).unlink(missing_ok=True)
    run, facts = qemu.prepare(host, run_config(m))
    argv = _without_serial_null(qemu.qemu_argv(run, facts)) + extra_args(m.state_dir)
    host.run(argv, stdin=None)
    pid = vm_pid(m.state_dir)
    if pid is None:
        raise RunError(f"QEMU of {m.state_dir} started but is not running")
    return pid


# -- QMP ---------------------------------------------------------------------------------------


def qmp(state_dir: Path, command: str, timeout: float = 5.0) -> dict[str, Any]:
    """Run one QMP command on the VM's socket; its ``return`` value (RunError if unreachable)."""
    path = state_dir / QMP_SOCK
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            f = s.makefile("rwb")
            f.readline()  # greeting
            for cmd in ("qmp_capabilities", command):
                f.write(json.dumps({"execute": cmd}).encode() + b"\n")
                f.flush()
                while True:
                    line = f.readline()
                    if not line:
                        raise RunError(f"QMP of {state_dir} closed the connection")
                    reply = json.loads(line)
                    if "return" in reply or "error" in reply:
                        break
            if "error" in reply:
                raise RunError(f"QMP {command} failed: {reply['error'].get('desc', reply)}")
            value = reply.get("return")
            return value if isinstance(value, dict) else {}
    except (OSError, ValueError) as err:
        raise RunError(f"QMP socket {path} does not answer: {err}") from err


def status(state_dir: Path) -> str:
    """``running`` (or QEMU's own word: ``paused``, ...) or ``stopped``."""
    if vm_pid(state_dir) is None:
        return "stopped"
    try:
        answer = qmp(state_dir, "query-status", timeout=2.0)
    except RunError:
        return "stopped"
    return str(answer.get("status", "running"))


def exit_status(state_dir: Path) -> int | None:
    """The workload's exit status the guest wrote, if it did."""
    try:
        lines = (state_dir / STATUS_FILE).read_text().split()
    except OSError:
        return None
    last = lines[-1] if lines else ""
    return int(last) if last.lstrip("-").isdigit() else None


def guest_up(state_dir: Path) -> bool:
    """Whether the VM init has opened the console (its first status line)."""
    try:
        return (state_dir / STATUS_FILE).read_text().startswith("up")
    except OSError:
        return False


def _alive(pid: int, state_dir: Path) -> bool:
    """Whether `pid` is this VM's QEMU: a QEMU whose command line names the state directory
    (after a host restart the pid in ``qemu.pid`` may belong to anything, even another VM)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"qemu" in argv[0] and any(str(state_dir).encode() in a for a in argv)


def vm_pid(state_dir: Path) -> int | None:
    """The pid of this VM's QEMU, if it runs."""
    pid = state.read_pid(state_dir)
    return pid if pid is not None and _alive(pid, state_dir) else None


def wait_stopped(state_dir: Path, timeout: float) -> bool:
    """Wait until QEMU is gone (its process, not just its pid file); whether it went within
    `timeout` seconds."""
    pid = vm_pid(state_dir)
    deadline = time.monotonic() + timeout
    while pid is not None and _alive(pid, state_dir):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def kill(state_dir: Path) -> None:
    """Stop QEMU now: QMP ``quit``, else SIGKILL to its pid; returns once it is gone."""
    pid = vm_pid(state_dir)
    if pid is None:
        return
    with contextlib.suppress(RunError):
        qmp(state_dir, "quit", timeout=2.0)
    deadline = time.monotonic() + 5
    while _alive(pid, state_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid, state_dir):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid, state_dir):
            time.sleep(0.05)


# -- the guest agent ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecResult:
    """What a command run through the agent gave."""

    stdout: bytes
    stderr: bytes
    status: int


def _agent(state_dir: Path, request: str, replies: int, timeout: float) -> list[str]:
    path = state_dir / AGENT_SOCK
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(path))
            s.settimeout(max(0.1, deadline - time.monotonic()))
            f = s.makefile("rwb")
            f.write(request.encode() + b"\n")
            f.flush()
            lines = []
            for _ in range(replies):
                line = f.readline()
                if not line:
                    break
                lines.append(line.decode().rstrip("\n"))
            return lines
    except (OSError, TimeoutError) as err:
        raise RunError(f"the agent of {state_dir} does not answer: {err}") from err


def agent_exec(state_dir: Path, script: str, timeout: float = 120.0) -> ExecResult:
    """Run `script` with the VM init's shell (see `guest.exec_script`)."""
    encoded = base64.b64encode(script.encode()).decode()
    lines = _agent(state_dir, f"EXEC {encoded}", 3, timeout)
    fields = {line.partition(" ")[0]: line.partition(" ")[2] for line in lines}
    if not {"OUT", "ERR", "RC"} <= fields.keys():
        raise RunError(f"the agent of {state_dir} gave an incomplete answer: {lines!r}")
    return ExecResult(
        base64.b64decode(fields["OUT"]), base64.b64decode(fields["ERR"]), int(fields["RC"])
    )


def agent_stop(state_dir: Path, timeout: float = 10.0) -> bool:
    """Ask the VM init to send SIGTERM to the workload; whether it acknowledged."""
    try:
        return _agent(state_dir, "STOP", 1, timeout) == ["OK"]
    except RunError:
        return False
