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

# A bundle's plan: shell code that prepare_bundle and start_service eval, made from its
# runtime.json: first a line `ns=... needs_pid=...` (the containerd namespace, empty for the
# default; yes when interfaces or bindNS need the container's pid between create and start),
# then the "mounts" in order, the "mkdir" directories (after the mounts, as LinuxKit, so a
# directory can be made in a mount) and the "cgroups" directories, every value quoted as
# jq's @sh quotes it. PLAN_JQ makes it from any runtime.json; PLAN_AWK makes the same lines
# without jq's start (~0.3 s under emulation, busybox awk's is ~0.01 s) for the JSON LinuxKit
# and distrokit write: strings without escapes, arrays, objects and null. On anything else
# (an escape, a number, a value of an unexpected type) it fails and jq plans instead.
PLAN_JQ='@sh "ns=\(.namespace // "") needs_pid=\(if ((.interfaces // []) | length) +
            ([(.bindNS // {})[] | select(. != "")] | length) > 0 then "yes" else "no" end)",
        (.mounts[]? | @sh "mount_one \(.destination) \(.type // "") \(.source // "") \((.options // []) | join(","))" + " || return 1"),
        (.mkdir[]? | select(. != "") | @sh "make_dir \(.)"),
        (.cgroups[]? | select(. != "") | @sh "mkdir -p \"$DK_ROOT/sys/fs/cgroup/\"\(.)")'
# PLAN_AWK FILE...: each file's name after "#@", then its plan. A value's path is its keys and
# indexes joined by SUBSEP; T holds its type (o a s n), V a string, N an array's length and
# K an object's keys. (Reading T[p] would create p: `in` is asked first.)
PLAN_AWK='
function fail() { bad = 1; exit 1 }
function skip() { while (I <= L && index(" \t\r\n", substr(S, I, 1)) > 0) I++ }
function jstring(   rest, s) {
    rest = substr(S, I + 1)
    if (!match(rest, /^[^"\\]*"/)) fail()
    s = substr(rest, 1, RLENGTH - 1)
    if (index(s, "\n") || index(s, "\t") || index(s, "\r")) fail()
    I += RLENGTH + 1
    return s
}
function value(path,   c, k) {
    skip()
    c = substr(S, I, 1)
    if (c == "\"") { T[path] = "s"; V[path] = jstring(); return }
    if (substr(S, I, 4) == "null") { T[path] = "n"; I += 4; return }
    if (c == "[") {
        T[path] = "a"; N[path] = 0; I++; skip()
        if (substr(S, I, 1) == "]") { I++; return }
        for (;;) {
            value(path SUBSEP N[path]); N[path]++; skip()
            c = substr(S, I++, 1)
            if (c == "]") return
            if (c != ",") fail()
        }
    }
    if (c == "{") {
        T[path] = "o"; K[path] = ""; I++; skip()
        if (substr(S, I, 1) == "}") { I++; return }
        for (;;) {
            skip()
            if (substr(S, I, 1) != "\"") fail()
            k = jstring(); skip()
            if (substr(S, I++, 1) != ":") fail()
            if (!((path SUBSEP k) in T)) K[path] = K[path] SUBSEP k
            value(path SUBSEP k); skip()
            c = substr(S, I++, 1)
            if (c == "}") return
            if (c != ",") fail()
        }
    }
    fail()
}
function q(s,   out, i) {
    out = ""
    while ((i = index(s, Q)) > 0) { out = out substr(s, 1, i - 1) Q "\\" Q Q; s = substr(s, i + 1) }
    return Q out s Q
}
function str(path, optional) {
    if ((path in T) && T[path] == "s") return V[path]
    if (optional && (!(path in T) || T[path] == "n")) return ""
    fail()
}
function count(path) {
    if (!(path in T) || T[path] == "n") return 0
    if (T[path] != "a") fail()
    return N[path]
}
function strings(path, cmd,   i, s) {
    for (i = 0; i < count(path); i++) {
        s = str(path SUBSEP i)
        if (s != "") print cmd q(s)
    }
}
function plan(file,   ns, pids, keys, n, i, m, opts, o) {
    split("", T); split("", V); split("", N); split("", K)
    I = 1; L = length(S)
    value(""); skip()
    if (I <= L || T[""] != "o") fail()
    ns = str(SUBSEP "namespace", 1)
    pids = count(SUBSEP "interfaces")
    if ((SUBSEP "bindNS") in T && T[SUBSEP "bindNS"] != "n") {
        if (T[SUBSEP "bindNS"] != "o") fail()
        n = split(substr(K[SUBSEP "bindNS"], 2), keys, SUBSEP)
        for (i = 1; i <= n; i++) {
            o = SUBSEP "bindNS" SUBSEP keys[i]
            if (!(T[o] == "s" && V[o] == "")) pids++
        }
    }
    print "#@" file
    print "ns=" q(ns) " needs_pid=" q(pids > 0 ? "yes" : "no")
    for (i = 0; i < count(SUBSEP "mounts"); i++) {
        m = SUBSEP "mounts" SUBSEP i
        if (T[m] != "o") fail()
        opts = ""
        for (o = 0; o < count(m SUBSEP "options"); o++)
            opts = opts (o ? "," : "") str(m SUBSEP "options" SUBSEP o)
        print "mount_one " q(str(m SUBSEP "destination")) " " q(str(m SUBSEP "type", 1)) " " \
            q(str(m SUBSEP "source", 1)) " " q(opts) " || return 1"
    }
    strings(SUBSEP "mkdir", "make_dir ")
    strings(SUBSEP "cgroups", "mkdir -p \"$DK_ROOT/sys/fs/cgroup/\"")
}
FNR == 1 && NR > 1 { plan(file); S = "" }
{ file = FILENAME; S = S $0 "\n" }
END { if (bad) exit 1; if (NR > 0) plan(file) }
'
# Plans live under PLAN_DIR, at the bundle directory's path.
PLAN_DIR=$DK_ROOT/run/distrokit/plan

# bundle_plan RUNTIME_JSON: the bundle's plan, as plan_bundles kept it earlier in this boot,
# or else from jq (which reads any JSON, and says what is wrong with a broken file).
bundle_plan() {
    local dir=${1%/runtime.json}
    local saved=$PLAN_DIR${dir#"$DK_ROOT"}
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

# plan_bundles DIR...: the plans of several bundles from one awk start, or one jq start when
# awk cannot read them all, kept under PLAN_DIR for bundle_plan. Each input's name comes before
# its plan lines. When jq fails on any of them too, none is kept: bundle_plan then runs jq for
# each bundle and the one at fault fails alone.
plan_bundles() {
    local n=$# dir line out= made= all=$DK_ROOT/run/distrokit/plans.$$
    for dir; do
        [ -f "$PLAN_DIR$dir" ] && continue  # planned earlier in this boot
        [ -f "$DK_ROOT$dir/runtime.json" ] && set -- "$@" "$DK_ROOT$dir/runtime.json"
    done
    shift "$n"
    [ $# -gt 0 ] || return 0
    mkdir -p "${all%/*}"
    if ! awk -v Q="'" "$PLAN_AWK" "$@" >"$all" 2>/dev/null &&
        ! jq -r "\"#@\" + input_filename, $PLAN_JQ" "$@" >"$all" 2>/dev/null; then
        rm -f "$all"
        return 0
    fi
    while IFS= read -r line; do
        case $line in
        "#@"*)
            dir=${line#??} dir=${dir%/runtime.json}
            out=$PLAN_DIR${dir#"$DK_ROOT"}
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
