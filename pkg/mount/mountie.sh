#!/bin/sh
# mountie: mount a Linux partition at a path, visible to the host and to later containers
# (LinuxKit's `mount` package; the container binds /var with shared propagation).
#
#   mountie [--device DEV | --label LABEL | --uuid UUID] MOUNTPOINT
#   mountie DEV MOUNTPOINT
#
# Without a device the first Linux partition (MBR type 83 or the GPT Linux GUID) that is not
# mounted yet is used, looking at the disks of /sys/block in name order. /dev/disk/by-label
# and /dev/disk/by-uuid links are made for every partition found.
#
# DK_SYS, DK_DEV, DK_MOUNTS and DK_DISK_WAIT (default /sys, /dev, /proc/mounts, 50 tenths of a
# second to wait for a first disk) let the tests run the
# selection on the host against a fake sysfs tree and disk image files; DK_MOUNTIE_LIB=1 only
# defines the functions.
PATH=/sbin:/usr/sbin:/bin:/usr/bin
SYS=${DK_SYS:-/sys}
DEV=${DK_DEV:-/dev}
MOUNTS=${DK_MOUNTS:-/proc/mounts}
DISK_WAIT=${DK_DISK_WAIT:-50}
LINUX_GPT=0FC63DAF-8483-4772-8E79-3D69D8477DE4

log() {
    echo "mount: $*"
}

# disks: whole-disk device paths in name order (partitions, loop, nbd, ram and CDs skipped).
disks() {
    for entry in "$SYS"/block/*; do
        [ -e "$entry" ] || continue
        name=${entry##*/}
        case "$name" in loop* | nbd* | ram* | zram* | sr* | fd*) continue ;; esac
        echo "$DEV/$name"
    done
}

# linux_partitions DISK: device paths of DISK's Linux partitions, in table order.
linux_partitions() {
    sfdisk --dump "$1" 2>/dev/null |
        grep -i -e "type=83" -e "type=$LINUX_GPT" |
        while read -r part _rest; do echo "$part"; done
}

# is_mounted DEV: whether DEV is the source of a mount.
is_mounted() {
    grep -q "^$1 " "$MOUNTS" 2>/dev/null
}

# first_unmounted: the first Linux partition of any disk that is not mounted yet.
first_unmounted() {
    for disk in $(disks); do
        for part in $(linux_partitions "$disk"); do
            is_mounted "$part" || { echo "$part"; return 0; }
        done
    done
    return 1
}

# all_partitions: every partition of every disk, for the by-label / by-uuid links.
all_partitions() {
    for disk in $(disks); do
        sfdisk --dump "$disk" 2>/dev/null | grep "^$disk" | while read -r part _rest; do
            echo "$part"
        done
    done
}

# make_links: /dev/disk/by-label/L and /dev/disk/by-uuid/U -> the partition, as udev does.
# (Its variables are local: main's label and uuid are the user's choice of partition.)
make_links() {
    local part part_label part_uuid
    for part in $(all_partitions); do
        [ -b "$part" ] || continue
        part_label=$(blkid -o value -s LABEL "$part" 2>/dev/null)
        part_uuid=$(blkid -o value -s UUID "$part" 2>/dev/null)
        if [ -n "$part_label" ]; then
            mkdir -p "$DEV/disk/by-label" &&
                ln -sfn "../../${part##*/}" "$DEV/disk/by-label/$part_label"
        fi
        if [ -n "$part_uuid" ]; then
            mkdir -p "$DEV/disk/by-uuid" &&
                ln -sfn "../../${part##*/}" "$DEV/disk/by-uuid/$part_uuid"
        fi
    done
}

usage() {
    echo "usage: mountie [--device DEV | --label LABEL | --uuid UUID] MOUNTPOINT" >&2
    echo "       mountie DEV MOUNTPOINT" >&2
    exit 2
}

# wait_for_disks: the disk may still be probed when the first onboot container runs.
wait_for_disks() {
    tries=0
    while [ -z "$(disks)" ] && [ $tries -lt "$DISK_WAIT" ]; do
        tries=$((tries + 1))
        sleep 0.1
    done
}

main() {
    device="" label="" uuid="" target=""
    while [ $# -gt 0 ]; do
        case "$1" in
        -device | --device) [ $# -ge 2 ] || usage; device=$2; shift ;;
        -label | --label) [ $# -ge 2 ] || usage; label=$2; shift ;;
        -uuid | --uuid) [ $# -ge 2 ] || usage; uuid=$2; shift ;;
        -*) usage ;;
        *) if [ -z "$target" ]; then target=$1; else device=$target target=$1; fi ;;
        esac
        shift
    done
    [ -n "$target" ] || usage
    wait_for_disks
    make_links
    if [ -n "$label" ]; then
        device=$(blkid -L "$label" 2>/dev/null)
        [ -n "$device" ] || { log "no partition with label '$label'"; exit 1; }
    elif [ -n "$uuid" ]; then
        device=$(blkid -U "$uuid" 2>/dev/null)
        [ -n "$device" ] || { log "no partition with uuid '$uuid'"; exit 1; }
    elif [ -z "$device" ]; then
        device=$(first_unmounted) || {
            log "no unmounted Linux partition found for $target (run format first?)"
            exit 1
        }
    fi
    fstype=$(blkid -o value -s TYPE "$device" 2>/dev/null)
    [ -n "$fstype" ] || { log "$device has no file system"; exit 1; }
    modprobe -q "$fstype" 2>/dev/null
    mkdir -p "$target" || exit 1
    if ! mount -t "$fstype" "$device" "$target"; then
        log "cannot mount $device ($fstype) on $target"
        exit 1
    fi
    log "mounted $device ($fstype) on $target"
}

[ "${DK_MOUNTIE_LIB:-0}" = 1 ] || main "$@"
