#!/bin/sh
# format: give the first empty block device one partition and a file system (LinuxKit's
# `format` package), so that `mount` can put persistent state on it.
#
#   format [-type ext4|ext3|ext2] [-label LABEL] [-partition dos|gpt] [-force] [-verbose]
#          [DEVICE]
#
# Without DEVICE the candidates are the disks of /sys/block in name order, skipping loop*,
# nbd*, ram*, zram*, sr*, fd* and names ending in a digit (as LinuxKit does); the first one with
# neither a partition table nor a file system is formatted. A disk that already holds a Linux
# partition is left alone (exit 0). `-force` wipes and reformats DEVICE (or the first
# candidate) on every boot. Exit status 1 and "No eligible disks found" when nothing
# qualifies.
#
# DK_SYS and DK_DEV (default /sys and /dev) let the tests run this on the host against a fake
# sysfs tree and disk image files; DK_FORMAT_LIB=1 only defines the functions.
PATH=/sbin:/usr/sbin:/bin:/usr/bin
SYS=${DK_SYS:-/sys}
DEV=${DK_DEV:-/dev}
LINUX_GPT=0FC63DAF-8483-4772-8E79-3D69D8477DE4

log() {
    echo "format: $*"
}

verbose() {
    [ "$VERBOSE" = 1 ] && log "$@"
    return 0
}

# candidate_disks: device paths of the whole disks LinuxKit considers, in name order.
candidate_disks() {
    for entry in "$SYS"/block/*; do
        [ -e "$entry" ] || continue
        name=${entry##*/}
        case "$name" in
        loop* | nbd* | ram* | zram* | sr* | fd* | *[0-9]) continue ;;
        esac
        [ "$(cat "$entry/size" 2>/dev/null || echo 0)" != 0 ] || continue
        echo "$DEV/$name"
    done
}

# has_table DEV: whether DEV carries a partition table (any kind).
has_table() {
    sfdisk --dump "$1" >/dev/null 2>&1
}

# has_signature DEV: whether blkid finds anything on DEV (file system, RAID, table...).
has_signature() {
    blkid -p "$1" >/dev/null 2>&1
}

# has_linux_partition DEV: whether DEV's table has a Linux partition (MBR 83 or the GPT GUID).
has_linux_partition() {
    sfdisk --dump "$1" 2>/dev/null | grep -qi -e "type=83" -e "type=$LINUX_GPT"
}

# is_empty DEV: no partition table and no file system.
is_empty() {
    ! has_table "$1" && ! has_signature "$1"
}

# partition_path DEV N: the device node of partition N (vda -> vda1, nvme0n1 -> nvme0n1p1).
partition_path() {
    case "$1" in
    *[0-9]) echo "${1}p$2" ;;
    *) echo "$1$2" ;;
    esac
}

# pick_disk: the first empty candidate. Sets PICKED; returns 1 when there is none, 2 when
# none is empty but a disk already has a Linux partition (nothing to do).
pick_disk() {
    PICKED=""
    linux=""
    for disk in $(candidate_disks); do
        if is_empty "$disk"; then
            PICKED=$disk
            return 0
        fi
        if has_linux_partition "$disk"; then
            verbose "$disk already has a Linux partition"
            [ -n "$linux" ] || linux=$disk
        else
            verbose "$disk is not empty (partition table or file system found), skipping"
        fi
    done
    [ -n "$linux" ] && PICKED=$linux && return 2
    return 1
}

# write_table DEV dos|gpt: one partition over the whole disk.
write_table() {
    case "$2" in
    dos) echo "type=83" | sfdisk --quiet --label dos "$1" ;;
    gpt) echo "type=$LINUX_GPT" | sfdisk --quiet --label gpt "$1" ;;
    *) log "unknown partition table type '$2' (dos or gpt)"; return 1 ;;
    esac
}

# wait_for_node PATH: the kernel creates the partition's node in devtmpfs asynchronously.
wait_for_node() {
    tries=0
    while [ ! -b "$1" ] && [ $tries -lt 100 ]; do
        tries=$((tries + 1))
        sleep 0.1
    done
    [ -b "$1" ]
}

# make_fs PART TYPE LABEL
make_fs() {
    case "$2" in
    ext4 | ext3 | ext2)
        modprobe -q "$2" 2>/dev/null
        if [ -n "$3" ]; then
            "mkfs.$2" -F -q -L "$3" "$1"
        else
            "mkfs.$2" -F -q "$1"
        fi
        ;;
    *)
        log "file system type '$2' is not supported by this image (ext4, ext3, ext2)"
        return 1
        ;;
    esac
}

# format_disk DEV: write the table, wait for the partition, make the file system.
format_disk() {
    if [ "$FORCE" = 1 ]; then
        verbose "wiping $1"
        wipefs --all --force "$1" >/dev/null || return 1
    fi
    write_table "$1" "$PARTITION" || return 1
    blockdev --rereadpt "$1" 2>/dev/null
    part=$(partition_path "$1" 1)
    if ! wait_for_node "$part"; then
        log "partition $part did not appear"
        return 1
    fi
    make_fs "$part" "$TYPE" "$LABEL" || return 1
    log "formatted $part as $TYPE (${PARTITION} partition table)"
}

usage() {
    echo "usage: format [-type ext4] [-label LABEL] [-partition dos|gpt] [-force] [-verbose]" \
        "[DEVICE]" >&2
    exit 2
}

main() {
    TYPE=ext4 LABEL="" PARTITION=dos FORCE=0 VERBOSE=0 DEVICE=""
    while [ $# -gt 0 ]; do
        case "$1" in
        -type | --type) [ $# -ge 2 ] || usage; TYPE=$2; shift ;;
        -label | --label) [ $# -ge 2 ] || usage; LABEL=$2; shift ;;
        -partition | --partition) [ $# -ge 2 ] || usage; PARTITION=$2; shift ;;
        -force | --force) FORCE=1 ;;
        -verbose | --verbose) VERBOSE=1 ;;
        -*) usage ;;
        *) DEVICE=$1 ;;
        esac
        shift
    done
    case "$PARTITION" in
    dos | gpt) ;;
    *) log "unknown partition table type '$PARTITION'"; exit 2 ;;
    esac
    if [ -n "$DEVICE" ]; then
        if [ ! -e "$DEVICE" ]; then
            log "device $DEVICE not found"
            exit 1
        fi
        if [ "$FORCE" != 1 ] && ! is_empty "$DEVICE"; then
            if has_linux_partition "$DEVICE"; then
                log "$DEVICE already has a Linux partition, nothing to do"
                exit 0
            fi
            log "$DEVICE is not empty (foreign partition table or file system);" \
                "use -force to wipe it"
            exit 1
        fi
        format_disk "$DEVICE" || exit 1
        exit 0
    fi
    if [ "$FORCE" = 1 ]; then
        PICKED=$(candidate_disks | head -n 1)
        [ -n "$PICKED" ] || { log "No eligible disks found"; exit 1; }
        format_disk "$PICKED" || exit 1
        exit 0
    fi
    pick_disk
    case $? in
    0) format_disk "$PICKED" || exit 1 ;;
    2) log "$PICKED already has a Linux partition, nothing to do" ;;
    *) log "No eligible disks found"; exit 1 ;;
    esac
}

[ "${DK_FORMAT_LIB:-0}" = 1 ] || main "$@"
