"""What runs inside a VM before the image does: the VM init (/init of the initramfs) and the
configuration it reads.

The init is busybox sh from the host's busybox-static (the same binary the root finder uses;
the initramfs is built on the host, so no package build is needed to run a VM). It loads the
modules in the order computed on the host (no depmod at boot), finds its two disks by their
virtio serial numbers (``distrokit-root``: the VM's overlay; ``distrokit-config``: a small tar
with ``config.sh`` and the ``--copy-files``), sets up QEMU user networking statically
(10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3: no DHCP wait), then either ``switch_root``s into
the image's own init, or runs the workload (ENTRYPOINT + CMD with its Env, WorkingDir and User)
chrooted into the image's root through the initramfs busybox (bind-mounted read-only at
``/.distrokit/busybox``, so images without a shell work). When the workload exits, its status is
written to the virtio-serial port ``distrokit.status`` (a file on the host, which no console
output can forge; its first line ``up`` says the console is open), the disk is unmounted and
the VM powers off.

While the workload runs, an agent answers on the port ``distrokit.agent`` (a unix socket on the
host): one request line ``EXEC <base64 script>`` gives ``OUT <base64>``, ``ERR <base64>`` and
``RC <n>`` lines; ``STOP`` sends SIGTERM to the workload (``vm stop``). The script is run by the
initramfs shell and enters the image with ``chroot``.
"""

from __future__ import annotations

import io
import shlex
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distrokit.formats.rootfinder import PRELUDE

# Modules the VM init needs from a modular (Debian) kernel: virtio-mmio devices found through
# ACPI, the disks, the network, the serial ports and the root file system.
VM_MODULES = (
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "crc32c_generic",
    "ext4",
)
CONFIG_MAGIC = "distrokit-vm-config"
STATUS_PORT = "distrokit.status"
AGENT_PORT = "distrokit.agent"
ROOT_SERIAL = "distrokit-root"
CONFIG_SERIAL = "distrokit-config"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUEST_IP = "10.0.2.15/24"
GATEWAY = "10.0.2.2"
DNS = "10.0.2.3"

INIT = r"""#!/bin/busybox sh
# distrokit VM init: modules, disks, network, then the image's init or its workload.
@PRELUDE@# One modprobe loads every module (a process per insmod costs under emulation): a
# modules.dep listing them in the computed order, each without dependencies.
rel=/lib/modules/$(uname -r)
ln -s . "$rel"
while read -r mod; do echo "$mod:"; done </lib/modules/order >"$rel/modules.dep"
mods=
while read -r mod; do m=${mod##*/}; mods="$mods ${m%.ko}"; done </lib/modules/order
die() {
    echo "distrokit-vm: $*" >&2
    s=$(port_of @STATUS@); [ -n "$s" ] && echo 127 >"$s"
    poweroff -f
}
# The modules carry no signature (distrokit.formats.rootfinder.lean_module): a kernel that
# enforces signatures refuses them.
[ -z "$mods" ] || modprobe -a $mods || die "the kernel refused the VM init's modules" \
    "(does it enforce module signatures?)"
find_disks() {
    for b in /sys/block/vd*; do
        [ -e "$b/serial" ] || continue
        serial=; read -r serial <"$b/serial"  # (no newline at its end: read says 1)
        case "$serial" in
        @ROOT@) root=/dev/${b##*/} ;;
        @CONFIG@) conf=/dev/${b##*/} ;;
        esac
    done
}
port_of() {
    for p in /sys/class/virtio-ports/*; do
        name=; read -r name <"$p/name" 2>/dev/null
        [ "$name" = "$1" ] && echo "/dev/${p##*/}" && return
    done
}
i=0
root=; conf=
while find_disks; [ -z "$root" ] || [ -z "$conf" ] || [ ! -b "$root" ] || [ ! -b "$conf" ]; do
    i=$((i + 1)); [ "$i" -ge 1000 ] && die "disks not found"
    sleep 0.01
done
status=$(port_of @STATUS@)
# "up": the console is open (vm run -i and attach send input only from now on, as bytes
# sent earlier are lost in the serial port)
[ -n "$status" ] && echo up >"$status"
mkdir -p /run/dk
tar -xf "$conf" -C /run/dk || die "cannot read the configuration disk"
. /run/dk/config.sh
mount -t ext4 -o noinit_itable "$root" /root || die "cannot mount the root disk $root"
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
    ip link set eth0 up
    ip addr add @IP@ dev eth0
    ip route add default via @GW@
fi
hostname "$DK_NAME"
if [ -d /root/etc ] && [ ! -L /root/etc/resolv.conf ]; then
    echo "nameserver @DNS@" >/root/etc/resolv.conf
fi
if [ "$DK_COPY" = 1 ] && [ -d /run/dk/files ]; then cp -a /run/dk/files/. /root/; fi
if [ "$DK_MODE" = init ]; then
    umount /proc /sys
    mount --move /dev /root/dev || umount /dev
    exec switch_root /root "$DK_INIT"
fi
for d in proc sys dev tmp; do [ -d "/root/$d" ] || mkdir -p "/root/$d"; done
mount -t proc proc /root/proc
mount -t sysfs sysfs /root/sys
mount -t devtmpfs -o mode=0755 devtmpfs /root/dev
mkdir -p /root/dev/pts /root/dev/shm /root/.distrokit
mount -t devpts devpts /root/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /root/dev/shm
: >/root/.distrokit/busybox
mount --bind /bin/busybox /root/.distrokit/busybox
mount -o remount,bind,ro /root/.distrokit/busybox
bb=/.distrokit/busybox
eval "set -- $DK_ARGV"
[ "$#" -gt 0 ] || die "the image has no ENTRYPOINT or CMD and no command was given"
ids=
if [ -n "$DK_USER" ]; then
    u=${DK_USER%%:*}; g=
    case "$DK_USER" in *:*) g=${DK_USER#*:} ;; esac
    case "$u" in *[!0-9]*) line=$(grep "^$u:" /root/etc/passwd) || die "no user $u in the image"
        uid=$(echo "$line" | cut -d: -f3); [ -n "$g" ] || g=$(echo "$line" | cut -d: -f4) ;;
    *) uid=$u ;;
    esac
    case "$g" in "") g=$uid ;; *[!0-9]*) g=$(grep "^$g:" /root/etc/group | cut -d: -f3) ;; esac
    ids=$uid:$g
fi
# An asynchronous command's stdin is /dev/null unless redirected: -i gives it the console.
in=/dev/null
[ "$DK_STDIN" = console ] && in=/dev/console
eval "env -i $DK_ENV /bin/dk-exec \"\$DK_PATH\" \"\$DK_WORKDIR\" \"\$ids\" \"\$@\"" <"$in" &
wpid=$!
agent() {
    port=$(port_of @AGENT@)
    [ -n "$port" ] || return
    while :; do
        if ! read -r verb data <"$port"; then sleep 0.2; continue; fi
        case "$verb" in
        EXEC)
            echo "$data" | base64 -d >/run/dk/exec.sh
            sh /run/dk/exec.sh >/run/dk/out 2>/run/dk/err </dev/null
            rc=$?
            { echo "OUT $(base64 -w0 </run/dk/out)"; echo "ERR $(base64 -w0 </run/dk/err)"
              echo "RC $rc"; } >"$port" ;;
        STOP) kill -TERM "$wpid"; echo "OK" >"$port" ;;
        esac
    done
}
agent &
wait "$wpid"
rc=$?
[ -n "$status" ] && echo "$rc" >"$status"
sync
for m in dev/shm dev/pts dev sys proc .distrokit/busybox; do umount "/root/$m" 2>/dev/null; done
umount /root 2>/dev/null || mount -o remount,ro /root
poweroff -f
"""

# dk-exec PATH WORKDIR UID:GID PROG ARGS...: run PROG in the image's root with the environment
# it was given. busybox prefers its own applets to programs named without a slash, so the
# program is looked up in the image's PATH first.
EXEC = r"""#!/bin/busybox sh
bb=/.distrokit/busybox
path=$1; workdir=$2; ids=$3; shift 3
prog=$1; shift
case "$prog" in
*/*) ;;
*)  found=
    IFS=:
    for d in $path; do
        # the shell's own test: no process per directory (a symlink counts as found: an
        # absolute one points into the image, not into this initramfs)
        if [ -x "/root$d/$prog" ] || [ -L "/root$d/$prog" ]; then found=$d/$prog; break; fi
    done
    unset IFS
    if [ -z "$found" ]; then echo "$prog: not found in PATH $path" >&2; exit 127; fi
    prog=$found ;;
esac
if [ -n "$ids" ]; then
    set -- "$bb" start-stop-daemon -S -c "$ids" -x "$prog" -- "$@"
else
    set -- "$prog" "$@"
fi
# chroot starts the program in the image's /: a shell only to enter another directory
[ "$workdir" = / ] && exec /bin/chroot /root "$@"
exec /bin/chroot /root "$bb" sh -c 'cd "$0" && exec "$@"' "$workdir" "$@"
"""


def init_script() -> str:
    """The VM init with its constants filled in."""
    values = {
        "@ROOT@": ROOT_SERIAL,
        "@CONFIG@": CONFIG_SERIAL,
        "@IP@": GUEST_IP,
        "@GW@": GATEWAY,
        "@DNS@": DNS,
        "@AGENT@": AGENT_PORT,
        "@STATUS@": STATUS_PORT,
        "@PRELUDE@": PRELUDE,
    }
    text = INIT
    for key, value in values.items():
        text = text.replace(key, value)
    return text


@dataclass(frozen=True, kw_only=True)
class GuestConfig:
    """What the VM init is told at one start."""

    name: str
    mode: str  # "init" (switch_root into the image's init) or "workload"
    init: str = "/sbin/init"
    argv: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    workdir: str = "/"
    user: str = ""
    path: str = DEFAULT_PATH  # the workload's PATH, to find its program
    copy: bool = False  # first start: copy the files into the root disk
    console_stdin: bool = False  # -i: the workload reads the console (else /dev/null)


def _quoted(words: Sequence[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def config_sh(config: GuestConfig) -> str:
    """``config.sh``: shell assignments the init sources (every value quoted)."""
    values = {
        "DK_NAME": config.name,
        "DK_MODE": config.mode,
        "DK_INIT": config.init,
        "DK_ARGV": _quoted(config.argv),
        "DK_ENV": _quoted(config.env),
        "DK_WORKDIR": config.workdir or "/",
        "DK_PATH": config.path,
        "DK_USER": config.user,
        "DK_COPY": "1" if config.copy else "0",
        "DK_STDIN": "console" if config.console_stdin else "null",
    }
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


def config_tar(config: GuestConfig, files: Sequence[tuple[Path, str]] = ()) -> bytes:
    """The configuration disk: a tar whose first member is named `CONFIG_MAGIC`, then
    ``config.sh`` and, under ``files/``, each (host path, guest path) of `files`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))

        add(CONFIG_MAGIC, b"")
        add("config.sh", config_sh(config).encode())
        for src, dst in files:
            tar.add(str(src), arcname="files/" + dst.strip("/"))
    data = buffer.getvalue()
    return data.ljust(-(-len(data) // 4096) * 4096, b"\0")
