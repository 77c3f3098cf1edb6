#!/bin/sh
# metadata: fetch user data and write it under /run/config (LinuxKit's `metadata` package, its
# `cdrom` provider; the only one that works without a cloud).
#
#   metadata [cdrom]
#
# The data is looked for on every block device (CD-ROMs first) whose file system label is
# `cidata` (what `distrokit run qemu --data` and `linuxkit run --data` attach): the file
# `user-data` or `config` at its root. The raw data is saved as /run/config/userdata; when it
# is JSON in LinuxKit's format it also expands into files:
#
#   {"ssh": {"entries": {"authorized_keys": {"perm": "0600", "content": "ssh-ed25519 ..."}}}}
#
# gives /run/config/ssh/authorized_keys (directories: "entries", default perm 0755; files:
# "content", default perm 0644). Names with "/" or ".." are refused.
#
# DK_SYS, DK_DEV and DK_CONFIG (default /sys, /dev, /run/config) let the tests run it on the
# host; DK_METADATA_LIB=1 only defines the functions.
PATH=/sbin:/usr/sbin:/bin:/usr/bin
SYS=${DK_SYS:-/sys}
DEV=${DK_DEV:-/dev}
CONFIG=${DK_CONFIG:-/run/config}
SEP=$(printf '\037')

log() {
    echo "metadata: $*"
}

# devices: CD-ROMs first, then disks and partitions, as device paths.
devices() {
    for entry in "$SYS"/block/sr* "$SYS"/block/*; do
        [ -e "$entry" ] || continue
        name=${entry##*/}
        case "$name" in loop* | nbd* | ram* | zram*) continue ;; esac
        echo "$DEV/$name"
        for part in "$entry/$name"*; do
            [ -e "$part/partition" ] && echo "$DEV/${part##*/}"
        done
    done | awk '!seen[$0]++'
}

# find_cidata: the first device labelled cidata (any case).
find_cidata() {
    for dev in $(devices); do
        label=$(blkid -o value -s LABEL "$dev" 2>/dev/null)
        case "$label" in cidata | CIDATA) echo "$dev"; return 0 ;; esac
    done
    return 1
}

# read_userdata DEV FILE: copy user-data (or config) from the medium DEV into FILE.
read_userdata() {
    mnt=$(mktemp -d)
    fstype=$(blkid -o value -s TYPE "$1" 2>/dev/null)
    if ! mount -o ro ${fstype:+-t "$fstype"} "$1" "$mnt"; then
        rmdir "$mnt"
        log "cannot mount $1 (${fstype:-unknown file system})"
        return 1
    fi
    status=1
    for name in user-data config USER-DATA CONFIG; do
        if [ -f "$mnt/$name" ]; then
            cp "$mnt/$name" "$2" && status=0
            break
        fi
    done
    umount "$mnt"
    rmdir "$mnt"
    [ $status = 0 ] || log "$1 has no user-data or config file"
    return $status
}

# expand_json FILE DIR: LinuxKit's JSON user data format into files under DIR. Prints nothing
# and returns 1 when FILE is not a JSON object.
expand_json() {
    jq -e 'type == "object"' "$1" >/dev/null 2>&1 || return 1
    jq -r --arg s "$SEP" '
        def walk_entries($prefix):
            to_entries[] | .key as $k | .value as $v
            | if ($k | test("/|^\\.\\.?$")) or ($v | type) != "object" then
                  ["B", $prefix + "/" + $k] | join($s)
              elif $v | has("entries") then
                  (["D", $prefix + "/" + $k, ($v.perm // "0755")] | join($s)),
                  ($v.entries | walk_entries($prefix + "/" + $k))
              elif $v | has("content") then
                  ["F", $prefix + "/" + $k, ($v.perm // "0644"), ($v.content | @base64)]
                  | join($s)
              else empty end;
        walk_entries("")' "$1" |
        while IFS=$SEP read -r kind path perm content; do
            case "$kind" in
            B) log "skipping bad entry '$path'" ;;
            D) mkdir -p "$2$path" && chmod "$perm" "$2$path" ;;
            F)
                mkdir -p "$(dirname "$2$path")"
                printf '%s' "$content" | base64 -d >"$2$path" && chmod "$perm" "$2$path"
                ;;
            esac
        done
}

main() {
    case "${1:-cdrom}" in
    cdrom) ;;
    *) log "provider '$1' is not available (only cdrom)"; exit 1 ;;
    esac
    # The init loads drivers for the devices present at boot only; the CD sits behind
    # virtio-scsi (microvm) or AHCI (q35), whose disks appear after their driver is loaded.
    modprobe -q -a virtio_scsi sr_mod isofs 2>/dev/null
    tries=0
    dev=""
    # The CD may still be probed when onboot starts: retry for a few seconds.
    while ! dev=$(find_cidata) && [ $tries -lt 50 ]; do
        tries=$((tries + 1))
        sleep 0.1
    done
    if [ -z "$dev" ]; then
        log "no metadata found (no device labelled cidata)"
        exit 0
    fi
    mkdir -p "$CONFIG"
    read_userdata "$dev" "$CONFIG/userdata" || exit 1
    chmod 0644 "$CONFIG/userdata"
    echo cdrom >"$CONFIG/provider"
    if expand_json "$CONFIG/userdata" "$CONFIG"; then
        log "user data from $dev expanded into $CONFIG"
    else
        log "user data from $dev saved as $CONFIG/userdata (not JSON)"
    fi
}

[ "${DK_METADATA_LIB:-0}" = 1 ] || main "$@"
