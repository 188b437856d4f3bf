# Helpers for the benchmark scripts tests/bench/<name>.sh (sourced, not run).
# Every benchmark prints CSV lines `scenario,contender,metric,value,unit` on
# stdout and everything else on stderr.
#
# Environment:
#   MPT_BENCH_BUILD  build directory to use (default: build/default, configured
#                    like tests/bootstrap.sh does if it does not exist yet)
#   MPT_BENCH_JOBS   parallel make jobs (default: nproc)

bench_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench_build=${MPT_BENCH_BUILD:-$bench_top/build/default}
case $bench_build in /*) ;; *) bench_build=$bench_top/$bench_build ;; esac
bench_jobs=${MPT_BENCH_JOBS:-$(nproc 2>/dev/null || echo 2)}

bench_log() { echo "bench: $*" >&2; }
bench_die() { echo "bench: error: $*" >&2; exit 1; }

# bench_configure: make sure $bench_build holds a configured tree.
bench_configure() {
    if [ ! -f "$bench_build/Makefile" ]; then
        bench_log "configuring $bench_build"
        if [ ! -x "$bench_top/configure" ]; then
            (cd "$bench_top" && ./autogen.sh) >&2 || bench_die "autogen.sh failed"
        fi
        mkdir -p "$bench_build"
        (cd "$bench_build" && "$bench_top/configure" --enable-werror) >&2 \
            || bench_die "configure failed (see $bench_build/config.log)"
    fi
}

# bench_make TARGET...: build the given make targets (paths relative to the
# build directory, e.g. tests/sim/mpt-simbench); output goes to stderr.
bench_make() {
    bench_configure
    make -C "$bench_build" -j"$bench_jobs" "$@" >&2 || bench_die "building $* failed"
}

# ---- Scenarios over real kernel TCP: contenders, namespaces, results ---------
# Used by the scenario scripts (aggregation.sh, loopback.sh, ...). Each runs
# every contender alternately, BENCH_REPS times, in both directions, and
# prints the median per contender and metric as CSV; per-repetition values,
# logs, per-path rate samples, results.csv, results.md and plots go to the
# results folder tests/bench/results/<timestamp>-p<PID of tests/bench/run>/
# (BENCH_RESULTS overrides; results/latest points at the newest).
#
# Environment:
#   BENCH_REPS         repetitions (default 3)
#   BENCH_SCHEDS       libmpt schedulers to run (default: minrtt roundrobin)
#   BENCH_CCS          libmpt congestion controls to run as contenders
#                      libmpt-<cc> (default scheduler), e.g. "uncoupled lia"
#   BENCH_TCP_CC       TCP_CONGESTION of every TCP socket of every contender
#                      (cubic, reno, bbr; default: the system's)
#   BENCH_CONTENDERS   only these contenders, e.g. "tcp libmpt-minrtt"
#   BENCH_DIRS         directions (default: up down; up = the client sends)
#   BENCH_QUICK=1      smaller transfers (scripts document what shrinks)

BENCH_REPS=${BENCH_REPS:-3}
BENCH_SCHEDS=${BENCH_SCHEDS-minrtt roundrobin}
BENCH_CCS=${BENCH_CCS:-}
BENCH_TCP_CC=${BENCH_TCP_CC:-}
BENCH_CONTENDERS=${BENCH_CONTENDERS:-}
BENCH_DIRS=${BENCH_DIRS:-up down}
bench_port=$((20000 + ($$ % 20000)))
bench_failures=0

# bench_setup NAME: build the contenders, open the results folder.
bench_setup() {
    bench_scenario=$1
    if [ "$(id -u)" -ne 0 ]; then
        bench_log "$bench_scenario: SKIP: needs root (network namespaces)"
        exit 77
    fi
    bench_make tests/bench/mpt-bench tests/bench/mpt-tcpbench
    BENCH_MPT=$bench_build/tests/bench/mpt-bench
    BENCH_TCP=$bench_build/tests/bench/mpt-tcpbench
    if [ -n "${BENCH_RESULTS:-}" ]; then
        bench_resdir=$BENCH_RESULTS
    else
        local base=$bench_top/tests/bench/results d
        d=$(ls -d "$base"/*-p"$PPID" 2>/dev/null | tail -n 1)
        [ -n "$d" ] || d=$base/$(date +%Y%m%d-%H%M%S)-p$PPID
        bench_resdir=$d
        mkdir -p "$base" && ln -sfn "$(basename "$d")" "$base/latest"
    fi
    mkdir -p "$bench_resdir/logs" || bench_die "cannot create $bench_resdir"
    [ -f "$bench_resdir/raw.csv" ] || echo "scenario,contender,metric,value,unit,rep" > "$bench_resdir/raw.csv"
    [ -f "$bench_resdir/results.csv" ] || echo "scenario,contender,metric,value,unit" > "$bench_resdir/results.csv"
    echo "$(date -u +%FT%TZ) $bench_scenario: $(uptime)" >> "$bench_resdir/load.txt"
    bench_log "$bench_scenario: results in $bench_resdir ($(uptime | sed 's/.*load/load/'))"
}

# bench_contenders: the contender names, filtered by BENCH_CONTENDERS.
bench_contenders() {
    local c all="tcp kernel-mptcp" s
    for s in $BENCH_SCHEDS $BENCH_CCS; do all="$all libmpt-$s"; done
    for c in $all; do
        if [ -z "$BENCH_CONTENDERS" ] || [[ " $BENCH_CONTENDERS " == *" $c "* ]]; then echo "$c"; fi
    done
}

# bench_ns_loopback: one private namespace with lo up (127.0.0.1 and
# 127.0.0.2 are the two paths) and kernel MPTCP endpoints in it. Deleted on
# exit. Sets BENCH_NS_S BENCH_NS_C BENCH_SRV BENCH_SRC (array) BENCH_BEST.
bench_ns_loopback() {
    bench_lo_ns=mptb$$lo
    ip netns add "$bench_lo_ns" || bench_die "cannot create namespace $bench_lo_ns"
    trap bench_ns_loopback_down EXIT
    trap 'exit 130' INT TERM
    ip -n "$bench_lo_ns" link set lo up
    ip netns exec "$bench_lo_ns" ip mptcp limits set subflow 2 add_addr_accepted 2
    ip netns exec "$bench_lo_ns" ip mptcp endpoint add 127.0.0.2 dev lo subflow signal
    BENCH_NS_S=$bench_lo_ns BENCH_NS_C=$bench_lo_ns BENCH_SRV=127.0.0.1 BENCH_BEST=127.0.0.1
    BENCH_SRC=(127.0.0.1 127.0.0.2)
    bench_sampling=0
}
bench_ns_loopback_down() {
    local pid
    [ -n "${bench_lo_ns:-}" ] || return 0
    for pid in $(ip netns pids "$bench_lo_ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$bench_lo_ns" 2>/dev/null
    bench_lo_ns=
}

# bench_topo_up ARGS...: tests/net topology (mpt_net_up ARGS, prefix
# mptb<PID>, torn down on exit) plus kernel MPTCP endpoints: the client
# has a "subflow" endpoint per extra path address, both ends accept
# subflows (BENCH_KERNEL_PATHS: only paths 1..N). Sets the same variables
# as bench_ns_loopback.
bench_topo_up() {
    local i
    # shellcheck disable=SC1091
    . "$bench_top/tests/net/lib.sh"
    export MPT_NETEM MPT_PROBE
    mkdir -p "$bench_build/tests/net"
    mpt_build_tools "$bench_build/tests/net" || bench_die "cannot build the emulator"
    MPT_NETEM=$bench_build/tests/net/mpt-netem MPT_PROBE=$bench_build/tests/net/mpt-probe
    mpt_net_up --prefix "mptb$$" "$@" >&2 || bench_die "mpt_net_up $* failed"
    ip netns exec "$MPT_NS_C" ip mptcp limits set subflow 8 add_addr_accepted 8
    ip netns exec "$MPT_NS_S" ip mptcp limits set subflow 8 add_addr_accepted 8
    for i in $(seq 2 "${BENCH_KERNEL_PATHS:-$MPT_PATHS}"); do
        ip netns exec "$MPT_NS_C" ip mptcp endpoint add "$(mpt_client_addr "$i")" \
            dev "${MPT_PREFIX}c$i" subflow
    done
    BENCH_NS_S=$MPT_NS_S BENCH_NS_C=$MPT_NS_C BENCH_SRV=$MPT_SERVER_ADDR
    BENCH_SRC=()
    for i in $(seq 1 "$MPT_PATHS"); do BENCH_SRC+=("$(mpt_client_addr "$i")"); done
    BENCH_BEST=${BENCH_SRC[0]}
    bench_sampling=1
}

# bench_kv FILE KEY: the value of KEY= on FILE's role= line.
bench_kv() {
    grep -m 1 '^role=' "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# bench_kill_tree PID: end a background job this script started and its
# children (a hook's sleep), by their ids.
bench_kill_tree() {
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill "$c" 2>/dev/null; done
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# bench_sampler_start FILE / bench_sampler_stop: the emulator's per-path
# byte counters every 100 ms ("t_ms path dir tx_bytes" lines, t in Unix
# epoch ms), whatever the contender.
bench_sampler_start() {
    [ "${bench_sampling:-0}" = 1 ] || return 0
    bench_sampler_out=$1
    mkdir -p "$1.d"
    (
        # One "stats FILE" command to the emulator per sample (bash builtins
        # only, so the 100 ms hold under load); parsed when stopped.
        while :; do
            t=${EPOCHREALTIME/./}
            printf 'stats %s\n' "$bench_sampler_out.d/${t:0:13}" > "$MPT_NETEM_CTL" || break
            sleep 0.1
        done
    ) &
    bench_sampler_pid=$!
}
bench_sampler_stop() {
    [ -n "${bench_sampler_pid:-}" ] || return 0
    bench_kill_tree "$bench_sampler_pid"
    bench_sampler_pid=
    sleep 0.1
    find "$bench_sampler_out.d" -type f -regextype posix-extended -regex '.*/[0-9]+' -print0 | xargs -0 -r awk '
        FNR == 1 { t = FILENAME; sub(/.*\//, "", t) }
        { delete v; for (i = 1; i < NF; i += 2) v[$i] = $(i + 1)
          if (v["path"] != "") print t, v["path"], v["dir"], v["tx_bytes"] }' | sort -n -k1,1 -k2,2 > "$bench_sampler_out"
    rm -rf "$bench_sampler_out.d"
}

# bench_record CONTENDER METRIC VALUE UNIT: one per-repetition value.
bench_record() {
    [ -n "$3" ] || return 0
    echo "$bench_scenario,$1,$2,$3,$4,${bench_rep:-1}" >> "$bench_resdir/raw.csv"
}

# bench_run CONTENDER DIR BYTES [extra args for both ends]: one transfer.
# BENCH_TCP_ARGS: extra arguments for mpt-tcpbench only (e.g. --nodelay);
# BENCH_MPT_ARGS: for mpt-bench only (e.g. --rcvbuf 1048576).
# DIR up: the client sends; down: the server sends. Hooks: if the function
# bench_during exists it runs in the background during the transfer (with
# the run's log prefix as $1) and is killed afterwards. Sets bench_rx (the
# receiver's output file), bench_tx, bench_log_prefix; returns 0 if the
# transfer completed byte-exact.
bench_run() {
    local cont=$1 dir=$2 bytes=$3 tmo=${BENCH_TIMEOUT:-120}; shift 3
    local port=$((bench_port++)) s c i pid_s pid_h="" rc_s rc_c
    local prefix=$bench_resdir/logs/$bench_scenario-$cont-$dir-r${bench_rep:-1}
    local -a srv cli
    case $cont in
    tcp) srv=("$BENCH_TCP" server --bind "$BENCH_SRV" ${BENCH_TCP_ARGS:-})
         cli=("$BENCH_TCP" client --host "$BENCH_SRV" --src "$BENCH_BEST" ${BENCH_TCP_ARGS:-}) ;;
    kernel-mptcp) srv=("$BENCH_TCP" server --mptcp --bind "$BENCH_SRV" ${BENCH_TCP_ARGS:-})
         cli=("$BENCH_TCP" client --mptcp --host "$BENCH_SRV" --src "$BENCH_BEST" ${BENCH_TCP_ARGS:-}) ;;
    tls) srv=("$BENCH_TCP" server --bind "$BENCH_SRV" --nodelay --tls-cert "$BENCH_TLS/server.pem"
              --tls-key "$BENCH_TLS/server.key" ${BENCH_TCP_ARGS:-})
         cli=("$BENCH_TCP" client --host "$BENCH_SRV" --src "$BENCH_BEST" --nodelay
              --tls-ca "$BENCH_TLS/ca.pem" --tls-name mpt-test.example ${BENCH_TCP_ARGS:-}) ;;
    libmpt-tls) srv=("$BENCH_MPT" server --bind "$BENCH_SRV" --tls-cert "$BENCH_TLS/server.pem"
              --tls-key "$BENCH_TLS/server.key" ${BENCH_MPT_ARGS:-})
         cli=("$BENCH_MPT" client --host "$BENCH_SRV" --tls-ca "$BENCH_TLS/ca.pem"
              --tls-name mpt-test.example ${BENCH_MPT_ARGS:-})
         for i in "${BENCH_SRC[@]}"; do cli+=(--path "$i"); done ;;
    libmpt-*) local algo=${cont#libmpt-} opt=--sched
         case $algo in uncoupled|lia|olia|balia) opt=--cc ;; esac
         srv=("$BENCH_MPT" server --bind "$BENCH_SRV" $opt "$algo" ${BENCH_MPT_ARGS:-})
         cli=("$BENCH_MPT" client --host "$BENCH_SRV" $opt "$algo" ${BENCH_MPT_ARGS:-})
         for i in "${BENCH_SRC[@]}"; do cli+=(--path "$i"); done ;;
    python|python-asyncio) # the Python bindings (tests/bench/mpt-bench.py), from the source tree
         local -a py=(env "MPT_LIBRARY=$bench_build/libmpt/.libs/libmpt.so" "${BENCH_PYTHON:-python3}"
                      "$bench_top/tests/bench/mpt-bench.py")
         [ "$cont" = python-asyncio ] && py+=(--asyncio)
         srv=("${py[@]}" server --bind "$BENCH_SRV" ${BENCH_PY_ARGS:-})
         cli=("${py[@]}" client --host "$BENCH_SRV" ${BENCH_PY_ARGS:-})
         for i in "${BENCH_SRC[@]}"; do cli+=(--path "$i"); done ;;
    *) bench_die "unknown contender $cont" ;;
    esac
    if [ -n "$BENCH_TCP_CC" ]; then srv+=(--tcp-cc "$BENCH_TCP_CC"); cli+=(--tcp-cc "$BENCH_TCP_CC"); fi
    srv+=(--port "$port" --timeout "$tmo" "$@")
    cli+=(--port "$port" --timeout "$tmo" "$@")
    if [ "$dir" = up ]; then
        cli+=(--send "$bytes"); srv+=(--expect "$bytes"); bench_rx=$prefix.server; bench_tx=$prefix.client
    else
        srv+=(--send "$bytes"); cli+=(--expect "$bytes"); bench_rx=$prefix.client; bench_tx=$prefix.server
    fi
    bench_log_prefix=$prefix
    echo "${srv[*]}" > "$prefix.cmd"; echo "${cli[*]}" >> "$prefix.cmd"
    timeout -k 5 $((tmo + 15)) ip netns exec "$BENCH_NS_S" "${srv[@]}" > "$prefix.server" 2> "$prefix.server.err" &
    pid_s=$!
    for i in $(seq 1 100); do grep -q listening "$prefix.server" 2>/dev/null && break; sleep 0.05; done
    bench_sampler_start "$prefix.rates"
    if declare -F bench_during > /dev/null; then bench_during "$prefix" & pid_h=$!; fi
    rc_c=0
    timeout -k 5 $((tmo + 10)) ip netns exec "$BENCH_NS_C" "${cli[@]}" > "$prefix.client" 2> "$prefix.client.err" || rc_c=$?
    rc_s=0; wait "$pid_s" || rc_s=$?
    if [ -n "$pid_h" ]; then
        if [ "${bench_during_wait:-0}" = 1 ]; then wait "$pid_h"; else bench_kill_tree "$pid_h"; fi
    fi
    bench_sampler_stop
    if [ $rc_c -ne 0 ] || [ $rc_s -ne 0 ] || [ "$(bench_kv "$bench_rx" verify)" != ok ]; then
        bench_log "$bench_scenario: $cont-$dir rep ${bench_rep:-1} FAILED (client exit $rc_c, server exit $rc_s):"
        sed 's/^/bench:   /' "$prefix.client" "$prefix.client.err" "$prefix.server" "$prefix.server.err" >&2
        # libmpt is the subject: its failures fail the benchmark; a
        # reference contender failing (e.g. plain TCP under a reset) is a result.
        case $cont in libmpt*) bench_failures=$((bench_failures + 1)) ;; esac
        bench_record "$cont-$dir" completed 0 bool
        return 1
    fi
    bench_record "$cont-$dir" completed 1 bool
    bench_log "$bench_scenario: $cont-$dir rep ${bench_rep:-1}: $(grep -h '^role=' "$bench_rx")"
    return 0
}

# bench_record_common CONTENDER-DIR: the metrics every transfer has.
bench_record_common() {
    local name=$1 sf_rx sf_tx
    bench_record "$name" goodput "$(awk -v g="$(bench_kv "$bench_rx" gbps)" 'BEGIN { printf "%.2f", g * 1000 }')" Mbit/s
    bench_record "$name" lost_bytes "$(bench_kv "$bench_rx" lost_bytes)" bytes
    bench_record "$name" max_gap_ms "$(bench_kv "$bench_rx" max_gap_ms)" ms
    sf_rx=$(bench_kv "$bench_rx" subflows); sf_tx=$(bench_kv "$bench_tx" subflows)
    bench_record "$name" subflows "$(( ${sf_rx:-0} > ${sf_tx:-0} ? ${sf_rx:-0} : ${sf_tx:-0} ))" count
    bench_record "$name" reinjected "$(bench_kv "$bench_tx" reinjected)" bytes
}

# bench_summarize: medians of this scenario's per-repetition values to
# stdout and results.csv (with min/max over repetitions in results.md),
# then results.md is rebuilt from results.csv.
bench_summarize() {
    local raw=$bench_resdir/raw.csv
    awk -F, -v sc="$bench_scenario" 'NR > 1 && $1 == sc { k = $2 "," $3 "," $5; n[k]++; v[k, n[k]] = $4
                                          if (!(k in seen)) { seen[k] = 1; order[++m] = k } }
        END { for (j = 1; j <= m; j++) { k = order[j]; c = n[k]
                  for (a = 1; a <= c; a++) x[a] = v[k, a] + 0
                  for (a = 1; a <= c; a++) for (b = a + 1; b <= c; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
                  med = c % 2 ? x[(c + 1) / 2] : (x[c / 2] + x[c / 2 + 1]) / 2
                  split(k, p, ",")
                  printf "%s,%s,%s,%.10g,%s\n", sc, p[1], p[2], med, p[3] } }' "$raw" |
        tee -a "$bench_resdir/results.csv"
    bench_markdown
}

# bench_markdown: results.md from results.csv (one table per scenario,
# contenders as rows, metrics as columns; median of the repetitions, and
# [min..max] when they differ).
bench_markdown() {
    local md=$bench_resdir/results.md
    {
        echo "# Benchmark results"
        echo
        echo "Folder \`$(basename "$bench_resdir")\`; medians of BENCH_REPS=$BENCH_REPS repetitions, [min..max] when they differ."
        echo "Load while running:"
        echo
        sed 's/^/    /' "$bench_resdir/load.txt"
        echo
        awk -F, 'FNR == 1 { next }
            FILENAME ~ /raw.csv$/ { k = $1 SUBSEP $2 SUBSEP $3; x = $4 + 0
                                    if (!(k in lo) || x < lo[k]) lo[k] = x; if (!(k in hi) || x > hi[k]) hi[k] = x; next }
            { sc = $1; if (!(sc in sseen)) { sseen[sc] = 1; scs[++ns] = sc }
              if (!((sc, $2) in cseen)) { cseen[sc, $2] = 1; cs[sc, ++nc[sc]] = $2 }
              if (!((sc, $3) in mseen)) { mseen[sc, $3] = 1; ms[sc, ++nm[sc]] = $3; unit[sc, $3] = $5 }
              val[sc, $2, $3] = $4 }
            END { for (i = 1; i <= ns; i++) { sc = scs[i]; printf "## %s\n\n| contender |", sc
                      for (j = 1; j <= nm[sc]; j++) printf " %s (%s) |", ms[sc, j], unit[sc, ms[sc, j]]
                      printf "\n| --- |"; for (j = 1; j <= nm[sc]; j++) printf " --- |"; printf "\n"
                      for (c = 1; c <= nc[sc]; c++) { printf "| %s |", cs[sc, c]
                          for (j = 1; j <= nm[sc]; j++) { m = ms[sc, j]; k = sc SUBSEP cs[sc, c] SUBSEP m
                              if ((sc, cs[sc, c], m) in val) { printf " %s", val[sc, cs[sc, c], m]
                                  if ((k in lo) && lo[k] != hi[k]) printf " [%.10g..%.10g]", lo[k], hi[k]
                                  printf " |" } else printf " |" }
                          printf "\n" }
                      printf "\n" } }' "$bench_resdir/raw.csv" "$bench_resdir/results.csv"
        if [ -f "$bench_resdir/targets.txt" ]; then
            echo "## Targets"; echo
            sed 's/^/- /' "$bench_resdir/targets.txt"; echo
        fi
        for f in "$bench_resdir"/*.png; do
            [ -e "$f" ] && printf '![%s](%s)\n\n' "$(basename "$f" .png)" "$(basename "$f")"
        done
    } > "$md.tmp" && mv "$md.tmp" "$md"
}

# bench_event NAME: note "NAME epoch_ms" in the current run's events file
# (for bench_during hooks; bench_rejoin_ms and the plots read it).
bench_event() {
    echo "$1 $(date +%s%3N)" >> "$bench_log_prefix.events"
}

# bench_target TEXT met|MISSED: a target check, on stderr and in results.md.
bench_target() {
    echo "$bench_scenario: $1: $2" >> "$bench_resdir/targets.txt"
    bench_log "target: $bench_scenario: $1: $2"
}

# bench_median CONTENDER METRIC: this scenario's median from results.csv.
bench_median() {
    awk -F, -v sc="$bench_scenario" -v c="$1" -v m="$2" '$1 == sc && $2 == c && $3 == m { v = $4 } END { print v }' \
        "$bench_resdir/results.csv"
}

# bench_rejoin_ms PREFIX EVENT PATH DIR [MBIT]: ms from EVENT (in
# PREFIX.events) until PATH carries at least MBIT (default 2) Mbit/s of DIR
# traffic in one 100 ms sample of PREFIX.rates; empty if never.
bench_rejoin_ms() {
    local t_ev
    t_ev=$(awk -v e="$2" '$1 == e { print $2; exit }' "$1.events" 2>/dev/null)
    [ -n "$t_ev" ] || return 0
    awk -v t0="$t_ev" -v p="$3" -v d="$4" -v mb="${5:-2}" '$2 == p && $3 == d {
            if (have && $1 > t0 && lt >= t0 - 50 && ($4 - lb) * 8 / ($1 - lt) / 1000 >= mb) { print $1 - t0; exit }
            have = 1; lt = $1; lb = $4 }' "$1.rates"
}

# bench_rates_table PREFIX DIR: "t_s mbit_path1 mbit_path2 ..." from
# PREFIX.rates (DIR traffic), t from the first sample.
bench_rates_table() {
    awk -v d="$2" '$3 == d { p = $2; if (p > np) np = p
            if (!t0) t0 = $1
            if (p in lt && $1 > lt[p]) { r[$1, p] = ($4 - lb[p]) * 8 / ($1 - lt[p]) / 1000; ts[$1] = 1 }
            lt[p] = $1; lb[p] = $4 }
        END { n = 0; for (t in ts) tl[++n] = t
              for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (tl[j] + 0 < tl[i] + 0) { x = tl[i]; tl[i] = tl[j]; tl[j] = x }
              for (i = 1; i <= n; i++) { printf "%.2f", (tl[i] - t0) / 1000
                  for (p = 1; p <= np; p++) printf " %.3f", ((tl[i], p) in r) ? r[tl[i], p] : 0
                  printf "\n" } }' "$1.rates"
}

# bench_plot: one PNG per direction for this scenario: throughput over time
# per path (emulator counters, 100 ms samples), one panel per contender,
# repetition 1; outage events as vertical lines.
bench_plot() {
    local dir f n name ev title
    command -v gnuplot > /dev/null || { bench_log "gnuplot not found: no plots"; return 0; }
    for dir in $BENCH_DIRS; do
        local files=()
        for f in "$bench_resdir"/logs/"$bench_scenario"-*-"$dir"-r1.rates; do
            [ -s "$f" ] && files+=("$f")
        done
        [ ${#files[@]} -gt 0 ] || continue
        n=${#files[@]}
        {
            echo "set terminal pngcairo size 900,$((220 * n + 60)) font ',9'"
            echo "set output '$bench_resdir/$bench_scenario-$dir.png'"
            echo "set multiplot layout $n,1 title '$bench_scenario, $dir (client $([ "$dir" = up ] && echo sends || echo receives)): Mbit/s per path, 100 ms samples'"
            echo "set grid; set key top right; set ylabel 'Mbit/s'; set yrange [0:*]"
            for f in "${files[@]}"; do
                name=$(basename "$f" .rates); name=${name#"$bench_scenario"-}
                bench_rates_table "${f%.rates}" "$dir" > "${f%.rates}.$dir.dat"
                title=${name%-r1}
                echo "unset arrow"
                if [ -f "${f%.rates}.events" ]; then
                    local t0
                    t0=$(awk -v d="$dir" '$3 == d { print $1; exit }' "$f")
                    while read -r ev t; do
                        [ -n "$t0" ] || continue
                        echo "set arrow from $(awk -v a="$t" -v b="$t0" 'BEGIN { print (a - b) / 1000 }'),graph 0 to $(awk -v a="$t" -v b="$t0" 'BEGIN { print (a - b) / 1000 }'),graph 1 nohead dt 2 lc rgb 'red'"
                    done < "${f%.rates}.events"
                fi
                local cols np
                np=$(awk '{ print NF - 1; exit }' "${f%.rates}.$dir.dat")
                cols=""
                for ((i = 1; i <= ${np:-0}; i++)); do
                    cols="$cols${cols:+, }'${f%.rates}.$dir.dat' using 1:$((i + 1)) with lines lw 1.5 title 'path $i'"
                done
                echo "set title '$title'"
                [ -n "$cols" ] && echo "plot $cols"
            done
            echo "unset multiplot"
        } > "$bench_resdir/logs/$bench_scenario-$dir.gp"
        gnuplot "$bench_resdir/logs/$bench_scenario-$dir.gp" 2>&1 | sed 's/^/bench: gnuplot: /' >&2
    done
}

# ---- Shared by the simple transfer scenarios (aggregation-4, highbdp) ----
# bench_transfer_setup NAME VAR FULL QUICK TOPO-ARGS...: bench_setup NAME,
# the transfer size in MiB into bench_mib ($VAR if set, else QUICK under
# BENCH_QUICK=1, else FULL), then the topology.
bench_transfer_setup() {
    local name=$1 var=$2 full=$3 quick=$4
    shift 4
    bench_setup "$name"
    bench_mib=${!var:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo "$quick" || echo "$full")}
    bench_topo_up "$@"
}

# bench_transfer_all [HOOK]: BENCH_REPS x BENCH_DIRS x contenders transfers
# of bench_mib MiB, each recorded; HOOK CONTENDER-DIR CONTENDER, if given,
# runs after each successful one (extra metrics).
bench_transfer_all() {
    local hook=${1:-}
    for bench_rep in $(seq 1 "$BENCH_REPS"); do
        for dir in $BENCH_DIRS; do
            for c in $(bench_contenders); do
                bench_run "$c" "$dir" $((bench_mib * 1024 * 1024)) || continue
                bench_record_common "$c-$dir"
                [ -z "$hook" ] || "$hook" "$c-$dir" "$c"
            done
        done
    done
}

# bench_goodput_target MIN TEXT: each libmpt contender's median goodput per
# direction against MIN Mbit/s (TEXT explains it, e.g. "93% of 40").
bench_goodput_target() {
    local min=$1 text=$2 g
    for dir in $BENCH_DIRS; do
        for c in $(bench_contenders); do
            case $c in libmpt-*) ;; *) continue ;; esac
            g=$(bench_median "$c-$dir" goodput)
            [ -n "$g" ] || { bench_target "$c-$dir goodput (no result)" MISSED; continue; }
            bench_target "$c-$dir goodput $g Mbit/s >= $min ($text)" \
                "$(awk -v g="$g" -v m="$min" 'BEGIN { print (g >= m ? "met" : "MISSED") }')"
        done
    done
}
