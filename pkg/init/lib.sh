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
NL='
'

log() {
    echo "distrokit: $*"
}

# host_path PATH: sets hp to where a runtime.json path is on the host (no subshell: this runs
# for every mount at boot). As in LinuxKit, a relative path (a mount's destination, a mkdir)
# is inside the container's rootfs: $bundle/rootfs, with bundle set by prepare_bundle.
host_path() {
    case "$1" in
    /*) hp=$DK_ROOT$1 ;;
    *) hp=$DK_ROOT$bundle/rootfs/$1 ;;
    esac
}

# make_dir PATH: runtime.json's "mkdir" entry.
make_dir() {
    host_path "$1"
    mkdir -p "$hp"
}

# mount_one DEST TYPE SOURCE OPTIONS: one runtime.json mount. Propagation flags are applied
# with their own `mount --make-FLAG` call, as the kernel requires; "remount" alone only changes
# propagation.
mount_one() {
    local dest type=$2 src=$3 opts=$4 rest="" props="" only_remount=yes
    host_path "$1"
    dest=$hp
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

# bundle_plan RUNTIME_JSON: one jq pass over runtime.json that prints shell code for
# prepare_bundle and start_service to eval: first a line `ns=... needs_pid=...` (the
# containerd namespace, empty for the default; yes when interfaces or bindNS need the
# container's pid between create and start), then the "mounts" in order, the "mkdir"
# directories (after the mounts, as LinuxKit, so a directory can be made in a mount) and the
# "cgroups" directories. Every value is quoted with @sh. One process per
# bundle: the boot runs this once for every container.
# A plan made earlier by plan_bundles is used as it is.
PLAN_JQ='@sh "ns=\(.namespace // "") needs_pid=\(if ((.interfaces // []) | length) +
            ([(.bindNS // {})[] | select(. != "")] | length) > 0 then "yes" else "no" end)",
        (.mounts[]? | @sh "mount_one \(.destination) \(.type // "") \(.source // "") \((.options // []) | join(","))" + " || return 1"),
        (.mkdir[]? | select(. != "") | @sh "make_dir \(.)"),
        (.cgroups[]? | select(. != "") | @sh "mkdir -p \"$DK_ROOT/sys/fs/cgroup/\"\(.)")'
bundle_plan() {
    local dir=${1%/runtime.json}
    local saved=$DK_ROOT/run/distrokit/plan${dir#"$DK_ROOT"}
    if [ -f "$saved" ]; then
        cat "$saved"
        return
    fi
    jq -r "$PLAN_JQ" "$1"
}

# bundle_dirs SECTION: the bundle directories of /containers/SECTION, one per line (LinuxKit's
# names have no blanks).
bundle_dirs() {
    local dir
    for dir in "$DK_ROOT/containers/$1"/*; do
        [ -d "$dir" ] && echo "${dir#"$DK_ROOT"}"
    done
    return 0
}

# plan_bundles DIR...: the plans of several bundles from one jq start (each start costs ~0.3 s
# under emulation), kept under /run/distrokit/plan for bundle_plan. jq names each input
# before its plan lines. When jq fails on any of them, none is kept: bundle_plan then runs
# jq for each bundle and the one at fault fails alone, as before.
plan_bundles() {
    local n=$# dir line out= made= all=$DK_ROOT/run/distrokit/plans.$$
    for dir; do
        [ -f "$DK_ROOT/run/distrokit/plan$dir" ] && continue  # planned earlier in this boot
        [ -f "$DK_ROOT$dir/runtime.json" ] && set -- "$@" "$DK_ROOT$dir/runtime.json"
    done
    shift "$n"
    [ $# -gt 0 ] || return 0
    mkdir -p "${all%/*}"
    if ! jq -r "\"#@\" + input_filename, $PLAN_JQ" "$@" >"$all" 2>/dev/null; then
        rm -f "$all"
        return 0
    fi
    while IFS= read -r line; do
        case $line in
        "#@"*)
            dir=${line#??} dir=${dir%/runtime.json}
            out=$DK_ROOT/run/distrokit/plan${dir#"$DK_ROOT"}
            [ "${out%/*}" = "$made" ] || { made=${out%/*}; mkdir -p "$made"; }
            : >"$out" ;;
        *) printf '%s\n' "$line" >>"$out" ;;
        esac
    done <"$all"
    rm -f "$all"
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

# prepare_bundle DIR: everything runtime.json asks for before the container is created; sets
# ns and needs_pid (see bundle_plan) for the caller. A bundle is prepared once per boot (its
# mounts would stack otherwise): `service start` after `service stop` reuses it.
prepare_bundle() {
    local runtime=$DK_ROOT$1/runtime.json plan done_mark=$DK_ROOT/run/distrokit/prepared$1
    local bundle=$1
    ns="" needs_pid=no
    [ -f "$runtime" ] || return 0
    plan=$(bundle_plan "$runtime") || return 1
    if [ -e "$done_mark" ]; then
        eval "${plan%%"$NL"*}"
        return 0
    fi
    eval "$plan" || return 1
    mkdir -p "${done_mark%/*}" && : >"$done_mark"
}

# run_to_completion DIR NAME LOGDIR: one onboot/onshutdown container with runc; returns its
# exit status (1 when the status is unknown because it was started with create/start).
run_to_completion() {
    local dir=$1 name=$2 logdir=$3 pid pidfile ns needs_pid
    local runtime=$DK_ROOT$1/runtime.json out="$DK_ROOT$3/$2.log"
    if ! prepare_bundle "$dir" >>"$out" 2>&1; then
        log "$name: runtime.json could not be applied, see $logdir/$name.log"
        return 1
    fi
    if [ "$needs_pid" = no ]; then
        # runc run deletes the container when it exits.
        runc run --bundle "$dir" "$name" </dev/null >>"$out" 2>&1
        return
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
# A failing one is logged and the rest still run (LinuxKit's onboot rule). The onboot plans
# are made with the services' ones: the same jq start serves both.
run_sequence() {
    local section=$1 dir name
    mkdir -p "$DK_ROOT$DK_LOG/$section"
    set -- $(bundle_dirs "$section")
    if [ "$section" = onboot ]; then
        plan_bundles "$@" $(bundle_dirs services)
    else
        plan_bundles "$@"
    fi
    for dir; do
        name=${dir##*/}
        name=${name#[0-9][0-9][0-9]-}
        if run_to_completion "$dir" "$name" "$DK_LOG/$section"; then
            log "$section $name: exited 0"
        else
            log "$section $name: FAILED (status $?), log in $DK_LOG/$section/$name.log"
        fi
    done
}

# write_spec DIR SPEC: DIR's config.json with its root as the absolute path DIR/rootfs. The
# build writes config.json as LinuxKit does (Go's indented JSON, "path" the first key of the
# top-level "root"): sed rewrites that one line, as a jq start costs ~0.3 s under emulation.
# A file in any other shape, or a name sed would need escaped, goes through jq.
write_spec() {
    local root=$1/rootfs config=$DK_ROOT$1/config.json
    case $root in
    *[!A-Za-z0-9/._-]*) ;;
    *)  sed '/^    "root": {$/,/^    }/s|^        "path": "rootfs"|        "path": "'"$root"'"|' \
            "$config" >"$2" && grep -q "^        \"path\": \"$root\"" "$2" && return 0 ;;
    esac
    jq --arg root "$root" '.root.path = $root' "$config" >"$2"
}

# start_service DIR: one service under containerd, logs in $DK_LOG/NAME.log (its output) and
# $DK_LOG/NAME.err.log (preparing and starting it). containerd wants the rootfs as an absolute
# path: the config.json it is given is written under /run/distrokit/services.
start_service() {
    local dir=$1 name=${1##*/} ns needs_pid spec pid
    local runtime=$DK_ROOT$1/runtime.json err=$DK_ROOT$DK_LOG/${1##*/}.err.log
    spec=$DK_ROOT/run/distrokit/services/$name.json
    prepare_bundle "$dir" >>"$err" 2>&1 || return 1
    ns=${ns:-services.linuxkit}
    echo "$ns" >"$DK_ROOT/run/distrokit/services/$name.ns"
    write_spec "$dir" "$spec" 2>>"$err" || return 1
    ctr -n "$ns" run -d --log-uri "file://$DK_LOG/$name.log" --config "$spec" "$name" \
        >>"$err" 2>&1 || return 1
    if [ "$needs_pid" = yes ]; then
        pid=$(ctr -n "$ns" tasks ls | awk -v n="$name" '$1 == n { print $2 }')
        apply_interfaces "$runtime" "$pid" >>"$err" 2>&1 && apply_bindns "$runtime" "$pid" >>"$err" 2>&1
    fi
}

# start_one DIR: start_service and say on the console how it went; a started line gives the
# uptime (seconds) at which the start began and ended.
start_one() {
    local t0 t1
    read -r t0 _ </proc/uptime
    if start_service "$1"; then
        read -r t1 _ </proc/uptime
        log "service ${1##*/}: started (uptime $t0 -> $t1 s)"
    else
        log "service ${1##*/}: FAILED to start; last lines of $DK_LOG/${1##*/}.err.log:"
        tail -n 5 "$DK_ROOT$DK_LOG/${1##*/}.err.log"
    fi
}

# start_services: every directory of /containers/services, all at once (LinuxKit's services
# have no order among themselves); returns when each has been started or has failed (it
# waits for those starts only: the caller's other children, containerd, keep running).
start_services() {
    local dir pids=""
    mkdir -p "$DK_ROOT$DK_LOG" "$DK_ROOT/run/distrokit/services"
    set -- $(bundle_dirs services)
    plan_bundles "$@"
    for dir; do
        start_one "$dir" &
        pids="$pids $!"
    done
    [ -z "$pids" ] || wait $pids
}

# watch_service_exits: one `ctr events` for the life of the system; prints a console line
# when a service's task (not an exec inside it) exits. ctr prints each event as
# `DATE TIME ZONE ZONE NAMESPACE TOPIC JSON`; exit_status is left out of the JSON when 0.
watch_service_exits() {
    local rest id cid status
    ctr events 2>/dev/null | while read -r _ _ _ _ ns topic rest; do
        [ "$topic" = /tasks/exit ] || continue
        cid=${rest#*\"container_id\":\"} cid=${cid%%\"*}
        id=${rest#*\"id\":\"} id=${id%%\"*}
        [ "$id" = "$cid" ] || continue
        status=0
        case "$rest" in *'"exit_status":'*)
            status=${rest#*\"exit_status\":} status=${status%%[!0-9]*} ;;
        esac
        log "service $cid ($ns): exited (status $status)"
    done
}
