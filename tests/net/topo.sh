#!/bin/bash
# Command-line front end to lib.sh (see README.md).
#
#   topo.sh up [mpt_net_up options]       leave a topology running; prints its
#                                         variables (eval "$(topo.sh up ...)")
#   topo.sh down --prefix NAME            tear it down
#   topo.sh run [options] -- CMD [ARG..]  up, run CMD with MPT_* exported, always down
#   topo.sh ctl --prefix NAME FUNC [ARG..]
#        FUNC: path_set_rate path_set_delay path_set_loss path_blackhole path_reset
#              path_restore path_down path_up path_set_bottleneck mpt_netem
#              mpt_netem_stats mpt_timeline_start
#   topo.sh exec --prefix NAME c|r|s|b CMD [ARG..]   run CMD in a namespace
#   topo.sh status --prefix NAME
set -u
. "$(dirname "$0")/lib.sh"

print_env() {
    local v
    for v in MPT_PREFIX MPT_NS_C MPT_NS_R MPT_NS_S MPT_NS_B MPT_PATHS MPT_SERVER_ADDR \
             MPT_NETEM MPT_PROBE MPT_STATE; do
        printf '%s=%q\n' "$v" "${!v}"
    done
    for i in $(seq 1 "$MPT_PATHS"); do
        printf 'MPT_CLIENT_ADDR_%d=%s\nMPT_SERVER_ADDR_%d=%s\n' \
            "$i" "$(mpt_client_addr "$i")" "$i" "$(mpt_server_addr "$i")"
    done
}

take_prefix() {
    [ "${1:-}" = --prefix ] && [ -n "${2:-}" ] || { echo "usage: topo.sh $cmd --prefix NAME ..." >&2; exit 2; }
    mpt_net_load "$2" || exit 1
}

cmd=${1:-}
shift || true
case $cmd in
    up)
        # Clean up only if setup fails; on success the topology stays.
        mpt_net_up --no-trap "$@" || exit $?
        print_env
        ;;
    down)
        take_prefix "$@"
        mpt_net_down
        ;;
    run)
        args=()
        while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
        [ "${1:-}" = -- ] && shift
        [ $# -gt 0 ] || { echo "usage: topo.sh run [options] -- CMD [ARG..]" >&2; exit 2; }
        mpt_net_up "${args[@]}" || exit $?
        export MPT_PREFIX MPT_NS_C MPT_NS_R MPT_NS_S MPT_NS_B MPT_PATHS MPT_SERVER_ADDR \
               MPT_NETEM MPT_PROBE MPT_STATE MPT_NET_RUNDIR
        "$@"
        rc=$?
        mpt_net_down
        exit $rc
        ;;
    ctl)
        take_prefix "$@"; shift 2
        case ${1:-} in
            path_set_rate|path_set_delay|path_set_loss|path_blackhole|path_reset|path_restore|\
            path_down|path_up|path_set_bottleneck|mpt_netem|mpt_netem_stats|mpt_timeline_start)
                "$@" ;;
            *) echo "topo.sh ctl: unknown function '${1:-}'" >&2; exit 2 ;;
        esac
        ;;
    exec)
        take_prefix "$@"; shift 2
        mpt_ns "$@"
        ;;
    status)
        take_prefix "$@"
        print_env
        mpt_netem_stats
        ;;
    *)
        sed -n '2,15s/^# \{0,1\}//p' "$0" >&2
        exit 2
        ;;
esac
