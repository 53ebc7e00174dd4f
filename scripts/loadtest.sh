#!/usr/bin/env bash
# End-to-end load test: the bench server bare (`--stack none`) against the crate's whole stack
# (`--stack full`), over loopback only.
#
#   scripts/loadtest.sh [ROUNDS] [SECONDS]     (defaults: 3 rounds, 10 s per run)
#
# For 2 and then 50 connections, runs bare and full in turn, interleaved (bare, full, bare,
# full, …), each run against a freshly started server with one worker thread pinned to one CPU
# and wrk pinned to another, and prints requests/s and p99 latency per run, then the medians
# and the ratios full/bare. Runs that are not pinned and interleaved vary by far more than the
# difference measured.
#
# Every run posts the same 5-item JSON array with a valid key, which both stacks accept (the
# script checks that first, and that the full stack does refuse a bad key); a run with any
# non-2xx answer or socket error is reported and makes the script fail.
#
# Environment: LOADTEST_PORT (38080), LOADTEST_CONNS ("2 50"), LOADTEST_WARMUP (1 s of load
# before each measured run, 0 for none), LOADTEST_SERVER_CPU and LOADTEST_WRK_CPU (default: the
# first two CPUs this shell may run on). wrk is installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
seconds=${2:-10}
port=${LOADTEST_PORT:-38080}
conns_list=${LOADTEST_CONNS:-"2 50"}
warmup=${LOADTEST_WARMUP:-1}
url="http://127.0.0.1:${port}/v1/items"
# The body `bench_server::five_items()` builds (the end-to-end test checks both stacks on it).
body='[{"account_id":"acct_bench","url":"https://hooks.example.com/1","email":"ops1@example.com"},{"account_id":"acct_bench","url":"https://hooks.example.com/2","email":"ops2@example.com"},{"account_id":"acct_bench","url":"https://hooks.example.com/3","email":"ops3@example.com"},{"account_id":"acct_bench","url":"https://hooks.example.com/4","email":"ops4@example.com"},{"account_id":"acct_bench","url":"https://hooks.example.com/5","email":"ops5@example.com"}]'

die() { echo "loadtest: $*" >&2; exit 1; }

[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$rounds'"
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive number, not '$seconds'"

if ! command -v wrk >/dev/null 2>&1; then
    echo "loadtest: installing wrk with apt-get…" >&2
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "wrk is missing and installing it needs root (or sudo)"
        sudo_cmd=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq >&2
    "${sudo_cmd[@]}" apt-get install -y -qq wrk >&2
    command -v wrk >/dev/null 2>&1 || die "apt-get did not install wrk"
fi
command -v taskset >/dev/null 2>&1 || die "taskset (util-linux) is required"

# The CPUs this shell may run on, expanded from the kernel's list ("0-1", "0,2-3", …).
allowed=$(awk '/^Cpus_allowed_list/ {
    n = split($2, parts, ",")
    for (i = 1; i <= n; i++) {
        if (split(parts[i], r, "-") == 2) { for (c = r[1]; c <= r[2]; c++) printf "%d ", c }
        else printf "%d ", parts[i]
    }
}' /proc/self/status)
read -r -a cpus <<<"$allowed"
server_cpu=${LOADTEST_SERVER_CPU:-${cpus[0]:-}}
wrk_cpu=${LOADTEST_WRK_CPU:-${cpus[1]:-}}
[ -n "$server_cpu" ] && [ -n "$wrk_cpu" ] && [ "$server_cpu" != "$wrk_cpu" ] ||
    die "two distinct CPUs are needed to pin the server and wrk apart (allowed: ${allowed:-none})"

cargo build --release --example bench_server >&2
server=target/release/examples/bench_server

work=$(mktemp -d)
server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'stop_server; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '${body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench_key"
LUA

start_server() {
    taskset -c "$server_cpu" "$server" --stack "$1" --addr "127.0.0.1:${port}" --threads 1 \
        >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "the $1 server exited"; }
        sleep 0.05
    done
    die "the $1 server did not start listening on 127.0.0.1:${port}"
}

# One raw HTTP/1.1 POST of the bench body; prints the status line's code and the body.
post_once() {
    local key=$1 response
    exec 3<>"/dev/tcp/127.0.0.1/${port}"
    printf 'POST /v1/items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$key" "${#body}" "$body" >&3
    response=$(cat <&3)
    exec 3<&-
    printf '%s %s\n' "$(printf '%s' "$response" | awk 'NR == 1 { print $2 }')" "${response##*$'\r\n\r\n'}"
}

# Both stacks accept the load test's request alike, and the full stack is really checking keys.
for stack in none full; do
    start_server "$stack"
    answer=$(post_once bench_key)
    [ "$answer" = '200 {"count":5}' ] || die "$stack stack answered '$answer' to the load test's request"
    if [ "$stack" = full ]; then
        answer=$(post_once not_the_key)
        [ "${answer%% *}" = 401 ] || die "the full stack answered '$answer' to a bad key"
    fi
    stop_server
done

# wrk prints latency with units (us, ms, s); normalise to milliseconds.
to_ms() {
    awk '{ v = $1
        if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v) }
        else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 }
        printf "%.3f", v }'
}

model=$(lscpu 2>/dev/null | awk -F: '/Model name/ { sub(/^[ \t]+/, "", $2); print $2; exit }')
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs (${model:-unknown model}), $(uname -sr)"
echo "# scripts/loadtest.sh $rounds $seconds: $(wrk --version 2>&1 | head -n 1 | awk '{ print $1, $2 }'), server on CPU $server_cpu (1 worker thread), wrk on CPU $wrk_cpu (1 thread), ${seconds} s per run, ${warmup} s warm-up"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

results="$work/results.tsv"
failed=0
printf '\n| conns | round | stack | req/s | p99 (ms) | load avg (1 min) |\n| ---: | ---: | --- | ---: | ---: | ---: |\n'
for conns in $conns_list; do
    for round in $(seq 1 "$rounds"); do
        for stack in none full; do
            start_server "$stack"
            if [ "$warmup" -gt 0 ]; then
                taskset -c "$wrk_cpu" wrk -t1 -c"$conns" -d"${warmup}s" -s "$work/post.lua" "$url" >/dev/null
            fi
            out=$(taskset -c "$wrk_cpu" wrk -t1 -c"$conns" -d"${seconds}s" --latency -s "$work/post.lua" "$url")
            stop_server
            load=$(cut -d' ' -f1 /proc/loadavg)
            rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
            p99=$(awk '$1 == "99%" { print $2 }' <<<"$out" | to_ms)
            non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
            errors=$(awk '/Socket errors/ { print }' <<<"$out")
            [ -n "$rps" ] && [ -n "$p99" ] || { echo "$out" >&2; die "could not read wrk's output"; }
            note=""
            if [ -n "$non2xx" ] || [ -n "$errors" ]; then
                note=" (invalid: ${non2xx:+$non2xx non-2xx answers}${errors:+ ${errors# }})"
                failed=1
            fi
            name=$([ "$stack" = none ] && echo bare || echo full)
            printf '%s\t%s\t%s\t%s\t%s\n' "$conns" "$round" "$name" "$rps" "$p99" >>"$results"
            printf '| %s | %s | %s | %.0f | %.3f | %s |%s\n' "$conns" "$round" "$name" "$rps" "$p99" "$load" "$note"
        done
    done
done
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "Medians over $rounds rounds, full / bare (and the median of each round's own ratio):"
echo
echo "| conns | bare req/s | full req/s | ratio | per-round ratio | bare p99 (ms) | full p99 (ms) | ratio | per-round ratio |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for conns in $conns_list; do
    awk -F'\t' -v c="$conns" '
        function median(a, n,   i, j, t, s) {
            for (i = 1; i <= n; i++) s[i] = a[i]
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (s[j] + 0 < s[i] + 0) { t = s[i]; s[i] = s[j]; s[j] = t }
            return (n % 2) ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
        }
        $1 == c && $3 == "bare" { brps[$2] = $4; bp99[$2] = $5 }
        $1 == c && $3 == "full" { frps[$2] = $4; fp99[$2] = $5 }
        END {
            for (r in brps) { n++; b[n] = brps[r]; f[n] = frps[r]; bl[n] = bp99[r]; fl[n] = fp99[r]
                rr[n] = frps[r] / brps[r]; rl[n] = fp99[r] / bp99[r] }
            printf "| %s | %.0f | %.0f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", c,
                median(b, n), median(f, n), median(f, n) / median(b, n), median(rr, n),
                median(bl, n), median(fl, n), median(fl, n) / median(bl, n), median(rl, n)
        }' "$results"
done
echo
echo "Targets at 50 connections: full >= 0.95x bare req/s, full p99 <= 1.1x bare (ratios of the medians)."

[ "$failed" -eq 0 ] || die "some runs had non-2xx answers or socket errors: their figures are not comparable"
