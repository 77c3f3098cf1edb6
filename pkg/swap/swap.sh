#!/bin/sh
# swap.sh --path FILE --size N[K|M|G] [--condition part:DIR]...: make FILE a swap file of that
# size (kept if it already is one of that size) and turn it on. SWAP_MOUNTS (default
# /proc/mounts) is where the conditions look; SWAPON replaces swapon (tests).
set -u
usage() { echo "usage: swap.sh --path FILE --size N[K|M|G] [--condition part:DIR]" >&2; exit 2; }

path= size= conditions=
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
        --path) path=$2 ;;
        --size) size=$2 ;;
        --condition) conditions="$conditions $2" ;;
        *) usage ;;
    esac
    shift 2
done
[ -n "$path" ] && [ -n "$size" ] || usage

# bytes N[K|M|G]: the size in bytes
bytes() {
    case $1 in
        *[!0-9KMGkmg]*|[!0-9]*|*[KMGkmg]?*|'') return 1 ;;
        *[Kk]) echo $(( ${1%?} * 1024 )) ;;
        *[Mm]) echo $(( ${1%?} * 1024 * 1024 )) ;;
        *[Gg]) echo $(( ${1%?} * 1024 * 1024 * 1024 )) ;;
        *) echo "$1" ;;
    esac
}

total=$(bytes "$size") || { echo "swap: invalid size '$size'" >&2; exit 2; }
if [ "$total" -lt 40960 ] || [ $((total % 1024)) -ne 0 ]; then
    echo "swap: invalid size '$size': at least 40K, whole KiB" >&2; exit 2
fi

for condition in $conditions; do
    case $condition in
        part:*)
            dir=${condition#part:}
            if ! awk -v d="$dir" '$2 == d { found = 1 } END { exit !found }' \
                "${SWAP_MOUNTS:-/proc/mounts}"; then
                echo "swap: $dir is not a mount point, no swap file"
                exit 0
            fi ;;
        *) echo "swap: unknown condition '$condition'" >&2; exit 2 ;;
    esac
done

if [ -f "$path" ] && [ "$(wc -c <"$path")" -eq "$total" ]; then
    echo "swap: reusing $path"
else
    mkdir -p "${path%/*}"
    rm -f "$path"
    # dd, not fallocate: swapon refuses files with holes or unwritten extents on some fs
    dd if=/dev/zero of="$path" bs=1024 count=$((total / 1024)) 2>/dev/null ||
        { echo "swap: cannot write $path" >&2; exit 1; }
fi
chmod 0600 "$path"
mkswap "$path" >/dev/null || { echo "swap: mkswap $path failed" >&2; exit 1; }
${SWAPON:-swapon} "$path" || { echo "swap: swapon $path failed" >&2; exit 1; }
echo "swap: $path ($size) is on"
