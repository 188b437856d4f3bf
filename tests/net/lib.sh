# shellcheck shell=bash
# libmpt path-emulation harness: network namespaces joined by 1..8 emulated
# paths.  Source this file from bash, then call mpt_net_up; see README.md.
#
#   client ns (C)          router ns (R)                   server ns (S)
#   PFXc1 10.231.1.1 -- PFXrc1 -> tun PFXu1 (mpt-netem) -> PFXrs1 -- PFXs1 10.232.1.1
#   PFXc2 10.231.2.1 -- PFXrc2 <- tun PFXd2 (mpt-netem) <- PFXrs2 -- PFXs2 10.232.2.1
#   ...                                                        lo 10.233.0.1 (service)
#
# With --bottleneck RATE the R->S links are replaced by one shared link
# through a fourth namespace (B), so all paths share one rate-limited queue:
#   R PFXrb 10.234.0.1 -- 10.234.0.2 PFXbr  B  PFXbs 10.232.0.2 -- 10.232.0.1 PFXs0 S
#
# A path is chosen by the client's SOURCE address: ip rule "from 10.231.i.1"
# in C, and "iif PFXrci" in R.  The server routes replies by destination
# (10.231.i.0/24 back over path i), so the path of a connection is fixed by
# the client address it uses, whatever server address it talks to.
#
# Every packet crossing R goes through mpt-netem: R routes it into a tun,
# the emulator delays it and writes it back into the same tun, and a second
# rule (iif tun) sends it on.  Rates are tbf (or htb) on the tun devices'
# egress in R, i.e. before the propagation delay, and on the shared link in
# R/B: never on the end hosts, whose own qdiscs would push back on the
# sender and hide the queue from TCP.
#
# Safety: all namespace and interface names start with the prefix (default
# mptn<PID>); mpt_net_up refuses to reuse an existing namespace and
# mpt_net_down deletes only the namespaces this topology recorded as created.

MPT_NET_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MPT_NET_RUNDIR=${MPT_NET_RUNDIR:-/run/mpt-net}

_mpt_log() { echo "mpt-net: $*" >&2; }
_mpt_die() { _mpt_log "error: $*"; return 1; }

# Exported state (also written to $MPT_STATE/state.sh so that topo.sh can
# act on a topology made by an earlier invocation).
_mpt_state_vars="MPT_PREFIX MPT_STATE MPT_PATHS MPT_SHARED MPT_NS_C MPT_NS_R MPT_NS_S MPT_NS_B
 MPT_NETEM MPT_PROBE MPT_NETEM_PID MPT_NETEM_CTL MPT_SERVER_ADDR MPT_SHAPER MPT_QUEUE_MS
 MPT_CREATED_NS MPT_TIMELINE_PID MPT_TIMELINE_T0_MS"
MPT_NETEM_SYNC=${MPT_NETEM_SYNC:-}
# Defined but empty unless set, so callers may use "set -u".
for _mpt_v in $_mpt_state_vars; do printf -v "$_mpt_v" '%s' "${!_mpt_v:-}"; done
unset _mpt_v

_mpt_save_state() {
    local v
    [ -n "$MPT_STATE" ] && [ -d "$MPT_STATE" ] || return 0
    {
        for v in $_mpt_state_vars; do
            printf '%s=%q\n' "$v" "${!v}"
        done
    } > "$MPT_STATE/state.sh.tmp" && mv "$MPT_STATE/state.sh.tmp" "$MPT_STATE/state.sh"
}

# mpt_net_load PREFIX: adopt a topology created by another process.
mpt_net_load() {
    local f="$MPT_NET_RUNDIR/$1/state.sh"
    [ -f "$f" ] || { _mpt_die "no topology with prefix '$1' ($f missing)"; return 1; }
    # shellcheck disable=SC1090
    . "$f"
}

_mpt_need_up() {
    [ -n "$MPT_NS_C" ] || { _mpt_die "no topology is up (call mpt_net_up or mpt_net_load)"; return 1; }
}

# Run a command in a namespace: mpt_ns c|r|s|b CMD...
mpt_ns() {
    local which=$1 ns; shift
    case $which in
        c) ns=$MPT_NS_C ;; r) ns=$MPT_NS_R ;; s) ns=$MPT_NS_S ;; b) ns=$MPT_NS_B ;;
        *) _mpt_die "mpt_ns: c|r|s|b expected"; return 1 ;;
    esac
    [ -n "$ns" ] || { _mpt_die "mpt_ns: namespace '$which' does not exist"; return 1; }
    ip netns exec "$ns" "$@"
}

mpt_client_addr() { echo "10.231.$1.1"; }
# Per-path server address (the server end of path i's link; without
# --bottleneck only).  Any server address is reachable over any path.
mpt_server_addr() {
    if [ "${MPT_SHARED:-0}" = 1 ]; then echo 10.232.0.1; else echo "10.232.$1.1"; fi
}

# mpt_build_tools DIR: compile mpt-netem and mpt-probe into DIR (skipped
# when they are newer than their sources).
mpt_build_tools() {
    local dir=$1 t cc=${CC:-cc}
    mkdir -p "$dir" || return 1
    for t in mpt-netem mpt-probe; do
        if [ ! -x "$dir/$t" ] || [ "$MPT_NET_LIBDIR/$t.c" -nt "$dir/$t" ]; then
            "$cc" -std=c11 -O2 -Wall -Wextra -o "$dir/$t.tmp$$" "$MPT_NET_LIBDIR/$t.c" -lm \
                && mv "$dir/$t.tmp$$" "$dir/$t" || { _mpt_die "cannot build $t"; return 1; }
        fi
    done
}

# Rate strings as tc understands them: 20mbit, 1.5gbit, 500kbit, 64000bit.
# Prints bits per second, or fails.
_mpt_rate_bps() {
    awk -v r="$1" 'BEGIN {
        if (match(r, /^[0-9]+(\.[0-9]+)?/) == 0) exit 1
        n = substr(r, 1, RLENGTH); u = tolower(substr(r, RLENGTH + 1))
        if (u == "bit") m = 1; else if (u == "kbit") m = 1e3
        else if (u == "mbit") m = 1e6; else if (u == "gbit") m = 1e9; else exit 1
        printf "%.0f\n", n * m }'
}

# _mpt_shape_cmds DEV RATE: "tc -batch" lines that rate-limit DEV's egress.
# The queue holds MPT_QUEUE_MS worth of bytes at that rate, so changing the
# rate keeps the maximum queueing delay, not the byte count, constant.
_mpt_shape_cmds() {
    local dev=$1 rate=$2 bps burst limit pkts
    bps=$(_mpt_rate_bps "$rate") || { _mpt_die "bad rate '$rate' (e.g. 20mbit, 500kbit)"; return 1; }
    # Burst: 2 ms at the rate but at least two full packets, so the
    # shaper neither bursts much nor needs a timer per packet.
    burst=$(( bps / 8 / 500 )); [ "$burst" -ge 3028 ] || burst=3028
    limit=$(( bps / 8 * MPT_QUEUE_MS / 1000 + burst ))
    if [ "${MPT_SHAPER:-tbf}" = htb ]; then
        pkts=$(( limit / 1514 )); [ "$pkts" -ge 2 ] || pkts=2
        echo "qdisc replace dev $dev root handle 1: htb default 1"
        echo "class replace dev $dev parent 1: classid 1:1 htb rate ${bps}bit ceil ${bps}bit burst $burst cburst $burst"
        echo "qdisc replace dev $dev parent 1:1 handle 10: pfifo limit $pkts"
    else
        echo "qdisc replace dev $dev root tbf rate ${bps}bit burst $burst limit $limit"
    fi
}

# _mpt_shape NS DEV RATE: apply now; RATE "none" or "0" removes the limit.
_mpt_shape() {
    local ns=$1 dev=$2 rate=$3 cmds
    if [ "$rate" = none ] || [ "$rate" = 0 ]; then
        tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null
        return 0
    fi
    cmds=$(_mpt_shape_cmds "$dev" "$rate") || return 1
    tc -n "$ns" -batch - <<< "$cmds"
}

# Split "a,b,c" per path; "x/y" gives up/down.  _mpt_pick LIST I up|down DEFAULT
_mpt_pick() {
    local list=$1 i=$2 dir=$3 def=$4 item
    IFS=, read -r -a _mpt_items <<< "$list"
    if [ "${#_mpt_items[@]}" -eq 0 ]; then echo "$def"; return; fi
    item=${_mpt_items[$((i - 1))]:-${_mpt_items[$(( ${#_mpt_items[@]} - 1 ))]}}
    case $item in
        */*) if [ "$dir" = up ]; then echo "${item%%/*}"; else echo "${item#*/}"; fi ;;
        *) echo "$item" ;;
    esac
}

_mpt_ns_add() {
    local ns=$1
    if ip netns list | awk '{print $1}' | grep -qx -- "$ns"; then
        _mpt_die "namespace $ns already exists; not touching it"; return 1
    fi
    ip netns add "$ns" || return 1
    MPT_CREATED_NS="$MPT_CREATED_NS $ns"
    _mpt_save_state
    ip -n "$ns" link set lo up
    # Asymmetric routing by design (policy routes, tuns): strict reverse
    # path filtering would drop it.  No IPv6: it would only add router
    # solicitations and MLD noise to the emulated paths.
    ip netns exec "$ns" sh -c '
        for k in all default; do
            echo 0 > /proc/sys/net/ipv4/conf/$k/rp_filter
            echo 0 > /proc/sys/net/ipv4/conf/$k/send_redirects
            echo 1 > /proc/sys/net/ipv6/conf/$k/disable_ipv6
        done'
}

# Fixed MAC addresses of the client links (locally administered, unique on
# each veth; the same in every topology, which is fine: each link is its own
# segment).  _mpt_mac c|r I: client / router end of path I.
_mpt_mac() { printf '02:6d:70:74:%02x:%s\n' "$2" "$([ "$1" = c ] && echo 01 || echo 02)"; }

# _mpt_linkup_cmds I: "ip -batch" lines (client namespace) that bring path
# I's client interface up and restore everything taking it down removed:
# the routes (the path's table, and the main default route for path 1) and
# the static neighbour entry of the router.  Used by path_up and by the
# timeline's linkup, so both leave the same state as mpt_net_up.
# With a second argument, every line starts with it (timeline runner).
_mpt_linkup_cmds() {
    local i=$1 P=$MPT_PREFIX x=${2:-}
    echo "${x}link set ${P}c$i up"
    echo "${x}neigh replace 10.231.$i.2 lladdr $(_mpt_mac r "$i") dev ${P}c$i nud permanent"
    echo "${x}route replace default via 10.231.$i.2 dev ${P}c$i table $((100 + i))"
    if [ "$i" = 1 ]; then echo "${x}route replace default via 10.231.1.2 dev ${P}c1"; fi
}

_mpt_veth() {   # NS1 DEV1 NS2 DEV2
    ip -n "$1" link add name "$2" type veth peer name "$4" netns "$3" &&
    ip -n "$1" link set "$2" up && ip -n "$3" link set "$4" up
}

_mpt_usage_up() {
    cat >&2 <<'EOF'
mpt_net_up [options]
  --paths N          number of paths, 1..8 (default 2)
  --rate LIST        per-path rate, e.g. 20mbit,10mbit; "UP/DOWN" per direction;
                     "none" = unshaped (default none)
  --delay LIST       one-way delay in ms per direction, e.g. 10,40 or 10/30 (default 0)
  --jitter LIST      +/- uniform jitter in ms (default 0)
  --loss LIST        random loss in percent per direction (default 0)
  --bottleneck RATE  paths share one link of this rate (both directions)
  --queue MS         shaper queue size in ms at its rate (default 50)
  --shaper tbf|htb   (default tbf)
  --limit PKTS       emulator queue limit per direction (default 4096)
  --seed N           emulator PRNG seed (default 1)
  --prefix NAME      name prefix, [a-z0-9], at most 11 chars (default mptn<PID>)
  --no-trap          do not install the EXIT/INT/TERM cleanup trap
EOF
}

# mpt_net_up [options]: build the topology.  Unless --no-trap, installs a
# trap that tears it down when the calling shell exits or is interrupted.
mpt_net_up() {
    local paths=2 rate="" delay="" jitter="" loss="" bottleneck="" seed=1 limit=4096
    local prefix="mptn$$" trap=1 i
    MPT_QUEUE_MS=50 MPT_SHAPER=tbf
    while [ $# -gt 0 ]; do
        case $1 in
            --paths) paths=$2; shift ;;
            --rate) rate=$2; shift ;;
            --delay) delay=$2; shift ;;
            --jitter) jitter=$2; shift ;;
            --loss) loss=$2; shift ;;
            --bottleneck) bottleneck=$2; shift ;;
            --queue) MPT_QUEUE_MS=$2; shift ;;
            --shaper) MPT_SHAPER=$2; shift ;;
            --limit) limit=$2; shift ;;
            --seed) seed=$2; shift ;;
            --prefix) prefix=$2; shift ;;
            --no-trap) trap=0 ;;
            -h|--help) _mpt_usage_up; return 2 ;;
            *) _mpt_usage_up; _mpt_die "unknown option '$1'"; return 2 ;;
        esac
        shift || { _mpt_die "missing value"; return 2; }
    done
    [[ $paths =~ ^[1-8]$ ]] || { _mpt_die "--paths must be 1..8"; return 2; }
    [[ $prefix =~ ^[a-z0-9]{1,11}$ ]] || { _mpt_die "--prefix must be [a-z0-9]{1,11}"; return 2; }
    [[ $MPT_QUEUE_MS =~ ^[0-9]+$ ]] || { _mpt_die "--queue must be whole ms"; return 2; }
    case $MPT_SHAPER in tbf|htb) ;; *) _mpt_die "--shaper tbf|htb"; return 2 ;; esac
    [ "$(id -u)" = 0 ] || { _mpt_die "must run as root"; return 77; }
    [ -z "$MPT_NS_C" ] || { _mpt_die "a topology ($MPT_PREFIX) is already up in this shell"; return 1; }

    MPT_PREFIX=$prefix MPT_PATHS=$paths MPT_STATE="$MPT_NET_RUNDIR/$prefix"
    MPT_NS_C=${prefix}c MPT_NS_R=${prefix}r MPT_NS_S=${prefix}s MPT_NS_B=""
    MPT_SHARED=0 MPT_CREATED_NS="" MPT_NETEM_PID="" MPT_TIMELINE_PID=""
    MPT_SERVER_ADDR=10.233.0.1
    [ -n "$bottleneck" ] && MPT_SHARED=1 MPT_NS_B=${prefix}b

    if [ -e "$MPT_STATE" ]; then
        local stale=1 ns
        for ns in "$MPT_NS_C" "$MPT_NS_R" "$MPT_NS_S"; do
            [ -e "/run/netns/$ns" ] && stale=0
        done
        if [ $stale = 0 ]; then
            MPT_NS_C=""
            _mpt_die "topology '$prefix' is already up (topo.sh down --prefix $prefix)"; return 1
        fi
        rm -rf "$MPT_STATE"
    fi
    mkdir -p "$MPT_STATE" || return 1
    if [ $trap = 1 ]; then
        _MPT_TRAPPED=1
        trap 'mpt_net_down' EXIT
        trap 'mpt_net_down; trap - INT; kill -INT $$' INT
        trap 'mpt_net_down; trap - TERM; kill -TERM $$' TERM
    fi
    if ! _mpt_net_build "$paths" "$rate" "$delay" "$jitter" "$loss" "$bottleneck" "$seed" "$limit"; then
        _mpt_log "setup failed, cleaning up"
        mpt_net_down
        return 1
    fi
    _mpt_save_state
}

_mpt_net_build() {
    local paths=$1 rate=$2 delay=$3 jitter=$4 loss=$5 bottleneck=$6 seed=$7 limit=$8
    local P=$MPT_PREFIX C=$MPT_NS_C R=$MPT_NS_R S=$MPT_NS_S B=$MPT_NS_B i d ns r
    local -a ecmds specs
    # Commands are collected per namespace and run with "ip -batch": one
    # process per namespace instead of ~20 per path keeps setup fast on a
    # loaded machine.  Links are created from R (with "netns" for the peer)
    # so nothing ever appears in the caller's namespace.
    local links="" cb="" rb="" sb="" bb="" tcr="" tcb=""
    if [ -n "$MPT_NETEM" ] && [ -x "$MPT_NETEM" ] && [ -n "$MPT_PROBE" ] && [ -x "$MPT_PROBE" ]; then
        :
    else
        mpt_build_tools "$MPT_STATE/bin" || return 1
        MPT_NETEM=$MPT_STATE/bin/mpt-netem MPT_PROBE=$MPT_STATE/bin/mpt-probe
    fi
    for ns in "$C" "$R" "$S" $B; do
        _mpt_ns_add "$ns" || return 1
    done
    for ns in "$R" $B; do
        ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward' || return 1
    done
    sb+="addr add $MPT_SERVER_ADDR/32 dev lo"$'\n'

    if [ "$MPT_SHARED" = 1 ]; then
        links+="link add name ${P}rb type veth peer name ${P}br netns $B
link add name ${P}bs netns $B type veth peer name ${P}s0 netns $S
"
        bb+="link set ${P}br up
link set ${P}bs up
addr add 10.234.0.2/24 dev ${P}br
addr add 10.232.0.2/24 dev ${P}bs
route add 10.231.0.0/16 via 10.234.0.1
route add $MPT_SERVER_ADDR/32 via 10.232.0.1
"
        rb+="link set ${P}rb up
addr add 10.234.0.1/24 dev ${P}rb
rule add iif ${P}rb table 300 pref 300
"
        sb+="link set ${P}s0 up
addr add 10.232.0.1/24 dev ${P}s0
route add 10.231.0.0/16 via 10.232.0.2
"
        tcr+=$(_mpt_shape_cmds "${P}rb" "$bottleneck")$'\n' || return 1
        tcb+=$(_mpt_shape_cmds "${P}br" "$bottleneck")$'\n' || return 1
    fi

    for i in $(seq 1 "$paths"); do
        links+="link add name ${P}rc$i address $(_mpt_mac r "$i") type veth peer name ${P}c$i address $(_mpt_mac c "$i") netns $C
tuntap add dev ${P}u$i mode tun
tuntap add dev ${P}d$i mode tun
"
        # Client: the source address selects the path.  The client link
        # uses static (permanent) neighbour entries at both ends, so that
        # taking it down and up (path_down/path_up, timeline linkdown/
        # linkup) involves no ARP.  With ARP, the client's first request
        # after link up races the kernel's deferred (linkwatch) re-activation
        # of the router end's qdisc; when it loses, the router's reply is
        # dropped and the client retries only after retrans_time (1 s),
        # holding every packet meanwhile: RTTs of up to 1 s for a second
        # after each link up.  And while the link is down the router would
        # queue packets for the client in its unresolved neighbour entry and
        # deliver them, late, after link up, instead of losing them.
        cb+="addr add 10.231.$i.1/24 dev ${P}c$i
rule add from 10.231.$i.1 table $((100 + i)) pref $((100 + i))
$(_mpt_linkup_cmds "$i")
"
        # Router: everything from the client link goes into tun u<i>; what
        # the emulator writes back there goes on towards the server.  From
        # the server side, table 300 picks tun d<i> by client address; what
        # comes back out of d<i> takes the main table's connected route.
        rb+="link set ${P}rc$i up
addr add 10.231.$i.2/24 dev ${P}rc$i
neigh replace 10.231.$i.1 lladdr $(_mpt_mac c "$i") dev ${P}rc$i nud permanent
link set ${P}u$i mtu 1500 txqueuelen 1000 up
link set ${P}d$i mtu 1500 txqueuelen 1000 up
route add default dev ${P}u$i table $((100 + i))
rule add iif ${P}rc$i table $((100 + i)) pref $((100 + i))
route add 10.231.$i.0/24 dev ${P}d$i table 300
rule add iif ${P}u$i table $((200 + i)) pref $((200 + i))
"
        if [ "$MPT_SHARED" = 1 ]; then
            rb+="route add default via 10.234.0.2 dev ${P}rb table $((200 + i))"$'\n'
        else
            links+="link add name ${P}rs$i type veth peer name ${P}s$i netns $S"$'\n'
            rb+="link set ${P}rs$i up
addr add 10.232.$i.2/24 dev ${P}rs$i
route add default via 10.232.$i.1 dev ${P}rs$i table $((200 + i))
rule add iif ${P}rs$i table 300 pref 300
"
            sb+="link set ${P}s$i up
addr add 10.232.$i.1/24 dev ${P}s$i
route add 10.231.$i.0/24 via 10.232.$i.2 dev ${P}s$i
"
        fi
        for d in up down; do
            r=$(_mpt_pick "$rate" "$i" $d none)
            if [ "$r" != none ] && [ "$r" != 0 ]; then
                tcr+=$(_mpt_shape_cmds "${P}${d:0:1}$i" "$r")$'\n' || return 1
            fi
            ecmds+=(-e "$i $d delay $(_mpt_pick "$delay" "$i" $d 0) $(_mpt_pick "$jitter" "$i" $d 0)")
            ecmds+=(-e "$i $d loss $(_mpt_pick "$loss" "$i" $d 0)")
        done
        specs+=("$i:${P}u$i:${P}d$i")
    done
    ip -n "$R" -batch - <<< "$links" || return 1
    ip -n "$C" -batch - <<< "$cb" && ip -n "$R" -batch - <<< "$rb" &&
        ip -n "$S" -batch - <<< "$sb" || return 1
    if [ -n "$B" ]; then ip -n "$B" -batch - <<< "$bb" || return 1; fi
    if [ -n "$tcr" ]; then tc -n "$R" -batch - <<< "$tcr" || return 1; fi
    if [ -n "$tcb" ]; then tc -n "$B" -batch - <<< "$tcb" || return 1; fi

    MPT_NETEM_CTL=$MPT_STATE/ctl
    rm -f "$MPT_STATE/ready"
    # The emulator outlives this function (topo.sh up returns while the
    # topology stays up); it reports its own PID in the ready file.
    ip netns exec "$R" "$MPT_NETEM" -c "$MPT_NETEM_CTL" -r "$MPT_STATE/ready" \
        -R "${MPT_NETEM_RTPRIO:-10}" \
        -s "$seed" -l "$limit" "${ecmds[@]}" "${specs[@]}" \
        < /dev/null >> "$MPT_STATE/netem.log" 2>&1 &
    for i in $(seq 1 100); do
        [ -s "$MPT_STATE/ready" ] && break
        kill -0 $! 2>/dev/null || break
        sleep 0.05
    done
    if [ ! -s "$MPT_STATE/ready" ]; then
        _mpt_die "mpt-netem did not start:"; sed 's/^/  /' "$MPT_STATE/netem.log" >&2
        return 1
    fi
    MPT_NETEM_PID=$(cat "$MPT_STATE/ready")
    _mpt_save_state
    _mpt_log "up: prefix $MPT_PREFIX, $paths paths, namespaces $C $R $S $B"
}

# Is PID our emulator (and not a recycled PID)?
_mpt_is_netem() {
    local name=${MPT_NETEM##*/}
    [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "${name:0:15}" ]
}

# mpt_net_down: stop the emulator and any timeline runner, kill processes
# left inside our namespaces, delete the namespaces we created.  Safe to
# call more than once.
mpt_net_down() {
    local ns pid i
    [ -n "$MPT_PREFIX" ] || return 0
    if [ -n "$MPT_TIMELINE_PID" ] && kill -0 "$MPT_TIMELINE_PID" 2>/dev/null; then
        kill "$MPT_TIMELINE_PID" 2>/dev/null
    fi
    if _mpt_is_netem "$MPT_NETEM_PID"; then
        kill -TERM "$MPT_NETEM_PID" 2>/dev/null
        for i in $(seq 1 40); do _mpt_is_netem "$MPT_NETEM_PID" || break; sleep 0.05; done
        _mpt_is_netem "$MPT_NETEM_PID" && kill -KILL "$MPT_NETEM_PID" 2>/dev/null
    fi
    for ns in $MPT_CREATED_NS; do
        # Only processes inside a namespace we created: servers a test
        # left running there would otherwise keep it alive.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -TERM "$pid" 2>/dev/null
        done
    done
    for ns in $MPT_CREATED_NS; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            sleep 0.2; kill -KILL "$pid" 2>/dev/null
        done
        ip netns del "$ns" 2>/dev/null || _mpt_log "warning: could not delete namespace $ns"
    done
    [ -n "$MPT_STATE" ] && [ -d "$MPT_STATE" ] && rm -rf "$MPT_STATE"
    MPT_PREFIX="" MPT_NS_C="" MPT_NS_R="" MPT_NS_S="" MPT_NS_B="" MPT_CREATED_NS=""
    MPT_NETEM_PID="" MPT_TIMELINE_PID=""
    # Remove only traps we installed: a caller's own traps stay.
    if [ "${_MPT_TRAPPED:-0}" = 1 ]; then
        _MPT_TRAPPED=0
        trap - EXIT INT TERM
    fi
}

# mpt_netem CMD: send one command to the emulator and wait until it has
# been applied (see mpt-netem -h for the grammar).
mpt_netem() {
    _mpt_need_up || return 1
    _mpt_is_netem "$MPT_NETEM_PID" || { _mpt_die "mpt-netem is not running"; return 1; }
    local sync="$MPT_STATE/sync.$BASHPID.$RANDOM" i
    # The FIFO always has a reader (the emulator holds it open), and
    # lines under PIPE_BUF are atomic, so concurrent callers are safe;
    # timeout guards against an emulator that died just now.
    timeout 2 sh -c 'printf "%s\nsync %s\n" "$1" "$2" > "$3"' sh "$*" "$sync" "$MPT_NETEM_CTL" ||
        { _mpt_die "cannot write to $MPT_NETEM_CTL"; return 1; }
    for i in $(seq 1 400); do
        if [ -e "$sync" ]; then
            # "now_ns T timeline_start_ns T0 errors N last_error MSG"
            read -r MPT_NETEM_SYNC < "$sync"
            rm -f "$sync"
            set -- $MPT_NETEM_SYNC
            if [ "${6:-0}" != 0 ]; then
                shift 7
                _mpt_die "mpt-netem rejected the command: $*"
                return 1
            fi
            return 0
        fi
        sleep 0.005
    done
    _mpt_die "mpt-netem did not apply '$*'"
}

# mpt_netem_stats [FILE]: counters per path and direction (key value ...).
mpt_netem_stats() {
    local f=${1:-$MPT_STATE/stats}
    rm -f "$f"
    mpt_netem "stats $f" && cat "$f"
}

_mpt_dir() { case ${1:-both} in up|down|both) echo "${1:-both}" ;; *) return 1 ;; esac; }

path_set_delay() {  # I MS [JITTER_MS] [up|down|both]
    local dir=both
    case ${!#} in up|down|both) dir=${!#}; set -- "${@:1:$(($# - 1))}" ;; esac
    mpt_netem "$1 $dir delay $2 ${3:-}"
}
path_set_loss() { mpt_netem "$1 $(_mpt_dir "${3:-}") loss $2"; }      # I PCT [dir]
path_blackhole() { mpt_netem "$1 $(_mpt_dir "${2:-}") blackhole"; }   # I [dir]
path_restore() { mpt_netem "$1 $(_mpt_dir "${2:-}") restore"; }       # I [dir]

# path_reset I [SECONDS]: the path answers every TCP segment with a RST
# (both directions), as a middlebox that lost its state would; non-TCP is
# dropped.  With SECONDS, restore normal forwarding after that long.
path_reset() {
    mpt_netem "$1 both reset" || return 1
    if [ -n "${2:-}" ]; then sleep "$2"; path_restore "$1"; fi
}

# path_set_rate I RATE [up|down|both]: RATE like 20mbit, UP/DOWN like
# 20mbit/5mbit, or none.
path_set_rate() {
    _mpt_need_up || return 1
    local i=$1 rate=$2 dir=${3:-both}
    case $dir in up|both) _mpt_shape "$MPT_NS_R" "${MPT_PREFIX}u$i" "${rate%%/*}" || return 1 ;; esac
    case $dir in down|both) _mpt_shape "$MPT_NS_R" "${MPT_PREFIX}d$i" "${rate#*/}" || return 1 ;; esac
}

# path_set_bottleneck RATE: the shared link (--bottleneck topologies only).
path_set_bottleneck() {
    _mpt_need_up || return 1
    [ "$MPT_SHARED" = 1 ] || { _mpt_die "no shared bottleneck in this topology"; return 1; }
    _mpt_shape "$MPT_NS_R" "${MPT_PREFIX}rb" "$1" && _mpt_shape "$MPT_NS_B" "${MPT_PREFIX}br" "$1"
}

# path_down I / path_up I: take the client's interface of path I down or up.
# Unlike a blackhole this is visible to the client (routes vanish, sends
# fail with ENETUNREACH).  path_up restores the path's routes and its static
# neighbour entry (see _mpt_linkup_cmds).  Packets the router forwards to
# the client in the first few ms after link up can still be lost: the
# kernel re-activates the router end's qdisc asynchronously (linkwatch).
path_down() {
    _mpt_need_up || return 1
    ip -n "$MPT_NS_C" link set "${MPT_PREFIX}c$1" down
}
path_up() {
    _mpt_need_up || return 1
    ip -n "$MPT_NS_C" -batch - <<< "$(_mpt_linkup_cmds "$1")"
}

# mpt_timeline_start FILE: start a timeline now.  Lines are
# "SECONDS TARGET [DIR] ACTION [ARGS]", e.g. "10 1 delay 200",
# "20 1 blackhole", "30 1 restore", "40 2 linkdown", "45 2 linkup".
# The emulator runs the emulator actions with sub-millisecond precision; a
# background shell runs linkdown/linkup (precision: a few ms).
mpt_timeline_start() {
    _mpt_need_up || return 1
    local file f t0ns
    # Absolute (the emulator has another working directory); no readlink:
    # every process spawned here delays the start on a loaded machine.
    file=$1; [[ $file = /* ]] || file=$PWD/$file
    [ -r "$file" ] || { _mpt_die "cannot read timeline '$1'"; return 1; }
    if [ -n "$MPT_TIMELINE_PID" ] && kill -0 "$MPT_TIMELINE_PID" 2>/dev/null; then
        kill "$MPT_TIMELINE_PID"
    fi
    MPT_TIMELINE_PID=""
    f=$(awk '!/^[ \t]*(#|$)/ && ($3 == "linkdown" || $3 == "linkup" ||
            $4 == "linkdown" || $4 == "linkup")' "$file" | sort -g -s -k1,1)
    if [ -z "$f" ]; then
        mpt_netem "timeline $file" || return 1
    else
        # Everything slow happens before the timeline starts: events are
        # rendered to "MICROSECONDS ip-command" lines, and the runner is
        # started (real-time priority, one long-lived "ip -batch") and
        # blocks until it is told when the timeline started.  It then only
        # waits (bash builtins: read -t on a FIFO nobody writes) and feeds
        # ip.  Spawning processes costs tens of ms on a loaded machine, up
        # to a second for all of the above.
        local ev="" t tgt a b p us fr P=$MPT_PREFIX
        while read -r t tgt a b _; do
            [ "$a" = linkdown ] || [ "$a" = linkup ] || a=$b
            if [[ $t =~ ^([0-9]*)\.?([0-9]*)$ ]]; then
                fr=${BASH_REMATCH[2]}000000
                us=$(( 10#0${BASH_REMATCH[1]} * 1000000 + 10#${fr:0:6} ))
            else
                us=$(awk -v t="$t" 'BEGIN { printf "%d", t * 1e6 }')
            fi
            if [ "$tgt" = all ]; then tgt=""; for ((p = 1; p <= MPT_PATHS; p++)); do tgt+=" $p"; done; fi
            for p in $tgt; do
                if [ "$a" = linkdown ]; then
                    ev+="$us link set ${P}c$p down"$'\n'
                else
                    # The same state as path_up.
                    ev+=$(_mpt_linkup_cmds "$p" "$us ")$'\n'
                fi
            done
        done <<< "$f"
        # Offset of bash's realtime clock (EPOCHREALTIME, us) from
        # CLOCK_MONOTONIC (the emulator's), both read back to back by one
        # process.  (Reading the monotonic clock in a child between two
        # EPOCHREALTIME samples is not good enough: starting the child takes
        # tens of ms on a loaded machine, and events fired that much early.)
        local clk cmono crt off tlw
        clk=$("$MPT_PROBE" clocks) || return 1
        read -r cmono crt <<< "$clk"
        off=$(( crt - ${cmono//[!0-9]/} ))
        rm -f "$MPT_STATE/tl.wait" && mkfifo "$MPT_STATE/tl.wait" || return 1
        # Opened here (read-write: never blocks), inherited by the runner:
        # the start time is written to it once known.
        exec {tlw}<> "$MPT_STATE/tl.wait" || return 1
        # Same real-time priority as the emulator (if chrt is there): a
        # busy machine would otherwise delay link events by tens of ms.
        local rt=()
        if [ "${MPT_NETEM_RTPRIO:-10}" -gt 0 ] && command -v chrt > /dev/null; then
            rt=(chrt -f "${MPT_NETEM_RTPRIO:-10}")
        fi
        (
            [ ${#rt[@]} -gt 0 ] && "${rt[@]:0:2}" -p "${rt[2]}" "$BASHPID" > /dev/null 2>&1
            read -r -t 60 -u "$tlw" start && [ -n "$start" ] || exit 1
            while read -r us cmd; do
                [ -n "$us" ] || continue
                wait=$(( start + us - ${EPOCHREALTIME//[!0-9]/} ))
                if [ "$wait" -gt 0 ]; then
                    # printf -v, not $(printf): a command substitution
                    # forks, which made every event ~10 ms late.
                    printf -v frac %06d $((wait % 1000000))
                    read -r -t "$((wait / 1000000)).$frac" -u "$tlw" _
                fi
                echo "$cmd"
            done <<< "$ev"
        ) > >("${rt[@]}" ip -force -n "$MPT_NS_C" -batch - > /dev/null) &
        MPT_TIMELINE_PID=$!
        if ! mpt_netem "timeline $file"; then
            kill "$MPT_TIMELINE_PID" 2>/dev/null
            exec {tlw}>&-
            MPT_TIMELINE_PID=""
            return 1
        fi
    fi
    # Start of the timeline on CLOCK_MONOTONIC (ms), to line up other
    # measurements (mpt-probe -o logs the same clock).  Sync reply:
    # "now_ns T timeline_start_ns T0 ...".
    read -r _ _ _ t0ns _ <<< "$MPT_NETEM_SYNC"
    printf -v MPT_TIMELINE_T0_MS '%d.%03d' $((t0ns / 1000000)) $((t0ns / 1000 % 1000))
    if [ -n "$f" ]; then
        # The runner's start, on the realtime clock (us).
        echo "$(( t0ns / 1000 + off ))" >&"$tlw"
        exec {tlw}>&-
    fi
    _mpt_save_state
}
