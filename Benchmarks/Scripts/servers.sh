#!/usr/bin/env bash
# KQueueLoop's servers against SwiftNIO's, in one run (docs/BENCHMARKS.md, "KQueueLoop
# against SwiftNIO"):
#   HTTP hello: `kq http-hello --loops 2` vs NIOServers http --threads 2, under
#               `wrk -t2 -c100 --latency` (requests/s, p99 latency)
#   line echo:  `kq echo-server --loops 2` vs NIOServers echo --threads 2, under EchoLoad
#               with 100 connections (requests/s, p99 latency)
# Also the server's CPU time (user + system, /proc/PID/stat) per request: the load client
# shares the 2 cores, so requests/s understates how much less CPU a server needs.
# Each round runs every (workload, server) pair once, the server order alternating between
# rounds; the table gives the median over rounds of each figure, and the median over rounds
# of the paired ratio ours/NIO (the two servers of one round ran seconds apart, so on a
# shared, noisy machine the paired ratio is steadier than the ratio of the medians).
#
#   bash Benchmarks/Scripts/servers.sh [ROUNDS=8] [SECONDS=5]
set -euo pipefail
rounds=${1:-8}
seconds=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/.." && pwd)
command -v wrk > /dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

echo "building (release)..." >&2
(cd "$root" && swift build -c release --product kq > /dev/null)
(cd "$here" && swift build -c release --product NIOServers > /dev/null && swift build -c release --product EchoLoad > /dev/null)
kq="$root/.build/release/kq"
nio="$here/.build/release/NIOServers"
load="$here/.build/release/EchoLoad"

server_pid=""
stop_server() { if [ -n "$server_pid" ]; then kill "$server_pid" 2> /dev/null || true; wait "$server_pid" 2> /dev/null || true; server_pid=""; fi; }
trap stop_server EXIT

# start NAME WORKLOAD PORT: starts a server and waits until it listens.
start() {
    local log
    log=$(mktemp)
    case "$1/$2" in
        kqueueloop/http) "$kq" http-hello --port "$3" --loops 2 > "$log" 2>&1 & ;;
        kqueueloop/echo) "$kq" echo-server --port "$3" --loops 2 > "$log" 2>&1 & ;;
        nio/http) "$nio" http --port "$3" --threads 2 > "$log" 2>&1 & ;;
        nio/echo) "$nio" echo --port "$3" --threads 2 > "$log" 2>&1 & ;;
    esac
    server_pid=$!
    for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.05; done
    grep -q listening "$log" || { echo "$1 $2 did not start:" >&2; cat "$log" >&2; exit 1; }
    rm -f "$log"
}

# The server's CPU time so far (user + system), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }

# measure WORKLOAD PORT: prints "REQUESTS_PER_SECOND P99_MICROSECONDS SERVER_CPU_US_PER_REQUEST".
measure() {
    local before output requests
    before=$(cpu_ticks)
    if [ "$1" = http ]; then
        output=$(wrk -t2 -c100 -d"${seconds}s" --latency "http://127.0.0.1:$2/" | awk '
            /Requests\/sec/ { rps = $2 }
            / requests in / { total = $1 }
            $1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); p = v } else if (v ~ /ms$/) { sub(/ms/, "", v); p = v * 1000 } else if (v ~ /s$/) { sub(/s/, "", v); p = v * 1000000 } }
            / Non-2xx| Socket errors/ { print "wrk: " $0 > "/dev/stderr" }
            END { printf "%.0f %.0f %d\n", rps, p, total }')
    else
        output=$("$load" "$2" 100 "$seconds" 1 | awk '{ printf "%.0f %.0f %d\n", $2, $6, $12 }')
    fi
    requests=$(echo "$output" | cut -d' ' -f3)
    echo "$output" | awk -v ticks=$(($(cpu_ticks) - before)) -v hz="$(getconf CLK_TCK)" \
        '{ printf "%s %s %.2f\n", $1, $2, ticks / hz * 1e6 / $3 }'
}

declare -A results ratios
echo "machine: $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then order="nio kqueueloop"; else order="kqueueloop nio"; fi
    for workload in http echo; do
        for server in $order; do
            port=$((18000 + RANDOM % 2000))
            start "$server" "$workload" "$port"
            result=$(measure "$workload" "$port")
            stop_server
            echo "round $round $workload $server: $result (req/s, p99 us, server CPU us/request)" >&2
            results[$workload/$server]+="$result;"
            eval "last_$server=(\$result)"
        done
        ratios[$workload/rps]+="$(awk -v a="${last_kqueueloop[0]}" -v b="${last_nio[0]}" 'BEGIN { print a / b }');"
        ratios[$workload/p99]+="$(awk -v a="${last_kqueueloop[1]}" -v b="${last_nio[1]}" 'BEGIN { print a / b }');"
        ratios[$workload/cpu]+="$(awk -v a="${last_kqueueloop[2]}" -v b="${last_nio[2]}" 'BEGIN { print a / b }');"
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

median() { tr ';' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf "%-8s %-12s %12s %10s %14s\n" workload server "requests/s" "p99 (us)" "CPU us/request"
for workload in http echo; do
    for server in nio kqueueloop; do
        rps=$(echo "${results[$workload/$server]}" | tr ';' '\n' | cut -d' ' -f1 | tr '\n' ';' | median)
        p99=$(echo "${results[$workload/$server]}" | tr ';' '\n' | cut -d' ' -f2 | tr '\n' ';' | median)
        cpu=$(echo "${results[$workload/$server]}" | tr ';' '\n' | cut -d' ' -f3 | tr '\n' ';' | median)
        printf "%-8s %-12s %12s %10s %14s\n" "$workload" "$server" "$rps" "$p99" "$cpu"
    done
    rps_ratio=$(echo "${ratios[$workload/rps]}" | median)
    p99_ratio=$(echo "${ratios[$workload/p99]}" | median)
    cpu_ratio=$(echo "${ratios[$workload/cpu]}" | median)
    awk -v a="$rps_ratio" -v c="$p99_ratio" -v d="$cpu_ratio" -v w="$workload" \
        'BEGIN { printf "%-8s %-12s %11.2fx %9.2fx %13.2fx   (medians of the per-round ratios)\n", w, "ours/NIO", a, c, d }'
done
