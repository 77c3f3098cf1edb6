# Shared shell functions of the distrokit guest init (busybox sh; sourced, not executed).
#
# Owns the boot contract of LinuxKit's `service` tool: applying a container's runtime.json
# (mkdir, mounts, cgroups, interfaces, bindNS) and running containers with runc (onboot and
# onshutdown, each to completion) or containerd (services, namespace services.linuxkit).
#
# DK_ROOT prefixes every path the functions touch; it is empty in the guest and a temporary
# directory in the host's tests, which put recording stand-ins for mount/runc/ctr on PATH.

DK_ROOT=${DK_ROOT:-}
DK_LOG=${DK_LOG:-/var/log}
SEP=$(printf '\037')

log() {
    echo "distrokit: $*"
}

# apply_mkdir RUNTIME_JSON: create the directories listed in "mkdir".
apply_mkdir() {
    jq -r '.mkdir[]?' "$1" | while read -r dir; do
        [ -n "$dir" ] && mkdir -p "$DK_ROOT$dir"
    done
}

# mount_one DEST TYPE SOURCE OPTIONS: one runtime.json mount. Propagation flags are applied
# with their own `mount --make-FLAG` call, as the kernel requires; "remount" alone only changes
# propagation.
mount_one() {
    local dest=$DK_ROOT$1 type=$2 src=$3 opts=$4 rest="" props="" only_remount=yes
    local old_ifs=$IFS opt prop
    mkdir -p "$dest"
    IFS=,
    for opt in $opts; do
        case "$opt" in
        private | rprivate | shared | rshared | slave | rslave | unbindable | runbindable)
            props="$props $opt" ;;
        upperdir=* | workdir=*)
            mkdir -p "$DK_ROOT${opt#*=}"
            rest="$rest,$opt" only_remount=no ;;
        remount) rest="$rest,$opt" ;;
        *) rest="$rest,$opt" only_remount=no ;;
        esac
    done
    IFS=$old_ifs
    rest=${rest#,}
    case "$type" in bind | rbind) rest="${rest:+$rest,}$type" type="" ;; esac
    if [ "$only_remount" = no ] || [ -n "$type" ]; then
        set -- mount
        [ -n "$type" ] && set -- "$@" -t "$type"
        [ -n "$rest" ] && set -- "$@" -o "$rest"
        set -- "$@" "${src:-none}" "$dest"
        "$@" || return 1
    fi
    for prop in $props; do
        mount --make-"$prop" "$dest" || return 1
    done
}

# apply_mounts RUNTIME_JSON: perform "mounts" in the root mount namespace, in order.
apply_mounts() {
    jq -r --arg s "$SEP" \
        '.mounts[]? | [.destination, (.type // ""), (.source // ""),
         ((.options // []) | join(","))] | join($s)' "$1" |
        while IFS=$SEP read -r dest type src opts; do
            mount_one "$dest" "$type" "$src" "$opts" || exit 1
        done
}

# apply_cgroups RUNTIME_JSON: create the cgroup v2 directories listed in "cgroups".
apply_cgroups() {
    jq -r '.cgroups[]?' "$1" | while read -r cg; do
        [ -n "$cg" ] && mkdir -p "$DK_ROOT/sys/fs/cgroup/$cg"
    done
}

# apply_interfaces RUNTIME_JSON PID: move or create network interfaces into the container's
# network namespace (name: existing interface; add/peer: a veth pair; createInRoot: create
# in the root namespace, then move - which is what happens for every created interface here).
apply_interfaces() {
    jq -r --arg s "$SEP" '.interfaces[]? | [.name, (.add // ""), (.peer // ""),
        (.createInRoot // false | tostring)] | join($s)' "$1" |
        while IFS=$SEP read -r name add peer _in_root; do
            if [ -n "$peer" ] || [ "$add" = veth ]; then
                ip link add "$name" type veth peer name "${peer:-$name-peer}" || exit 1
            elif [ -n "$add" ]; then
                ip link add "$name" type "$add" || exit 1
            fi
            ip link set "$name" netns "$2" || exit 1
        done
}

# apply_bindns RUNTIME_JSON PID: bind-mount the container's namespaces to the given paths.
apply_bindns() {
    jq -r --arg s "$SEP" '.bindNS // {} | to_entries[] | select(.value != "") |
        [.key, .value] | join($s)' "$1" |
        while IFS=$SEP read -r kind path; do
            mkdir -p "$(dirname "$DK_ROOT$path")"
            touch "$DK_ROOT$path"
            mount -o bind "/proc/$2/ns/$kind" "$DK_ROOT$path" || exit 1
        done
}

# prepare_bundle DIR: everything runtime.json asks for before the container is created.
prepare_bundle() {
    runtime=$DK_ROOT$1/runtime.json
    [ -f "$runtime" ] || return 0
    apply_mkdir "$runtime" && apply_mounts "$runtime" && apply_cgroups "$runtime"
}

# needs_pid RUNTIME_JSON: whether the container's pid is needed between create and start.
needs_pid() {
    [ -f "$1" ] || return 1
    [ "$(jq '(.interfaces // [] | length) + ([.bindNS // {} | .[] | select(. != "")] |
        length)' "$1")" != 0 ]
}

# run_to_completion DIR NAME LOGDIR: one onboot/onshutdown container with runc; returns its
# exit status (1 when the status is unknown because it was started with create/start).
run_to_completion() {
    local dir=$1 name=$2 logdir=$3 status pid pidfile
    local runtime=$DK_ROOT$1/runtime.json out="$DK_ROOT$3/$2.log"
    mkdir -p "$DK_ROOT$logdir"
    if ! prepare_bundle "$dir" >>"$out" 2>&1; then
        log "$name: runtime.json could not be applied, see $logdir/$name.log"
        return 1
    fi
    if ! needs_pid "$runtime"; then
        runc run --bundle "$dir" "$name" </dev/null >>"$out" 2>&1
        status=$?
        runc delete -f "$name" >/dev/null 2>&1
        return $status
    fi
    pidfile=$DK_ROOT/run/$name.pid
    runc create --bundle "$dir" --pid-file "$pidfile" "$name" </dev/null >>"$out" 2>&1 ||
        return 1
    pid=$(cat "$pidfile")
    apply_interfaces "$runtime" "$pid" >>"$out" 2>&1 && apply_bindns "$runtime" "$pid" >>"$out" 2>&1 ||
        { runc delete -f "$name" >/dev/null 2>&1; return 1; }
    runc start "$name" >>"$out" 2>&1 || return 1
    while [ "$(runc state "$name" 2>/dev/null | jq -r .status)" = running ]; do
        sleep 0.1
    done
    runc delete -f "$name" >/dev/null 2>&1
    return 0
}

# run_sequence SECTION: run every container of /containers/SECTION in order, to completion.
# A failing one is logged and the rest still run (LinuxKit's onboot rule).
run_sequence() {
    local section=$1 dir name
    for dir in "$DK_ROOT/containers/$section"/*; do
        [ -d "$dir" ] || continue
        dir=${dir#"$DK_ROOT"}
        name=$(basename "$dir")
        name=${name#[0-9][0-9][0-9]-}
        if run_to_completion "$dir" "$name" "$DK_LOG/$section"; then
            log "$section $name: exited 0"
        else
            log "$section $name: FAILED (status $?), log in $DK_LOG/$section/$name.log"
        fi
    done
}

# service_spec DIR: config.json with the absolute rootfs path containerd needs, written next
# to containerd's state; prints its path.
service_spec() {
    local dir=$1 name spec
    name=$(basename "$1")
    spec=$DK_ROOT/run/distrokit/services/$name.json
    mkdir -p "$(dirname "$spec")"
    jq --arg root "$dir/rootfs" '.root.path = $root' "$DK_ROOT$dir/config.json" >"$spec" ||
        return 1
    echo "$spec"
}

# start_service DIR: one service under containerd, logs in $DK_LOG/NAME.log.
start_service() {
    local dir=$1 name runtime ns=services.linuxkit custom spec pid
    name=$(basename "$1")
    runtime=$DK_ROOT$dir/runtime.json
    if [ -f "$runtime" ]; then
        custom=$(jq -r '.namespace // ""' "$runtime")
        [ -n "$custom" ] && ns=$custom
    fi
    mkdir -p "$DK_ROOT$DK_LOG"
    prepare_bundle "$dir" >>"$DK_ROOT$DK_LOG/$name.err.log" 2>&1 || return 1
    spec=$(service_spec "$dir") || return 1
    ctr -n "$ns" run -d --log-uri "file://$DK_LOG/$name.log" --config "$spec" "$name" \
        >>"$DK_ROOT$DK_LOG/$name.err.log" 2>&1 || return 1
    if needs_pid "$runtime"; then
        pid=$(ctr -n "$ns" tasks ls | awk -v n="$name" '$1 == n { print $2 }')
        apply_interfaces "$runtime" "$pid" && apply_bindns "$runtime" "$pid"
    fi
}

# start_services: every directory of /containers/services, in sorted order.
start_services() {
    for dir in "$DK_ROOT/containers/services"/*; do
        [ -d "$dir" ] || continue
        dir=${dir#"$DK_ROOT"}
        if start_service "$dir"; then
            log "service $(basename "$dir"): started"
        else
            log "service $(basename "$dir"): FAILED to start, see $DK_LOG/$(basename "$dir").err.log"
        fi
    done
}
