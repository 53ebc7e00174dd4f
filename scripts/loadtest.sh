#!/usr/bin/env bash
# End-to-end load test: the bare axum server against the full stack, over loopback.
#
#   scripts/loadtest.sh [ROUNDS] [SECONDS]     (defaults: 3 rounds, 10 s per run)
#
# Runs bare and full interleaved (bare, full, bare, full, …) at 2 and 50 connections, the server
# pinned to CPU 0 and wrk to CPU 1, and prints requests/s and p99 latency per run and the median
# ratio full/bare. Unpinned, non-interleaved runs vary by far more than the difference measured.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
seconds=${2:-10}
port=${LOADTEST_PORT:-38080}
url="http://127.0.0.1:${port}/v1/items"

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk…" >&2
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >&2
    $sudo_cmd apt-get install -y -qq wrk >&2
fi
command -v taskset >/dev/null 2>&1 || { echo "taskset (util-linux) is required" >&2; exit 1; }

cargo build --release --example bench_server >&2
server=target/release/examples/bench_server

work=$(mktemp -d)
trap 'kill "${server_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '[{"n":1},{"n":2},{"n":3},{"n":4},{"n":5}]'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench_key"
LUA

wait_ready() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "server did not start" >&2
    exit 1
}

# wrk prints latency with units (us, ms, s); normalise to milliseconds.
to_ms() {
    awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); v=v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v) } else if (v ~ /s$/) { sub(/s$/,"",v); v=v*1000 }; printf "%.3f", v }'
}

results="$work/results.tsv"
for conns in 2 50; do
    for round in $(seq 1 "$rounds"); do
        for stack in none full; do
            taskset -c 0 "$server" --stack "$stack" --addr "127.0.0.1:${port}" --threads 1 >/dev/null 2>&1 &
            server_pid=$!
            wait_ready
            out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${seconds}s" --latency -s "$work/post.lua" "$url")
            kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
            rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
            p99=$(echo "$out" | awk '$1 == "99%" {print $2}' | to_ms)
            non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$conns" "$round" "$stack" "$rps" "$p99" "${non2xx:-0}" >> "$results"
            printf 'conns=%-3s round=%s stack=%-4s  %10s req/s  p99 %8s ms  non-2xx %s\n' \
                "$conns" "$round" "$stack" "$rps" "$p99" "${non2xx:-0}"
        done
    done
done

echo
echo "median over $rounds rounds, full / bare:"
for conns in 2 50; do
    awk -F'\t' -v c="$conns" '
        $1 == c && $3 == "none" { nb++; brps[nb]=$4; bp99[nb]=$5 }
        $1 == c && $3 == "full" { nf++; frps[nf]=$4; fp99[nf]=$5 }
        function median(a, n,   i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        END {
            printf "  %2s connections: req/s bare %.0f full %.0f ratio %.3f | p99 bare %.3f ms full %.3f ms ratio %.3f\n",
                c, median(brps, nb), median(frps, nf), median(frps, nf) / median(brps, nb),
                median(bp99, nb), median(fp99, nf), median(fp99, nf) / median(bp99, nb)
        }' "$results"
done
