#!/usr/bin/env bash
# Start-up cost of linking libkqueue.so (issue item 8; results in docs/C-LIBRARY.md,
# "Start-up cost", and docs/BENCHMARKS.md, "Start-up of a C program"):
#
#   scripts/build-clib.sh                                   # the deployable library, .build/clib
#   Benchmarks/Startup/startup.sh [--runs N] [--lib DIR] [--compare NAME=DIR]...
#
#   --runs N            spawns of each program (default 2000), interleaved; the first-kqueue()
#                       program runs N/4 times
#   --lib DIR           the library under test (default .build/clib: the front
#                       libkqueue.so.12 and the engine it loads on the first kqueue())
#   --compare NAME=DIR  another libkqueue.so to measure the same way, e.g. the one-file library
#                       an earlier scripts/build-clib.sh made (Swift runtime linked in, loaded
#                       at start-up), or `swift build -c release --product kqueue`'s (dynamic
#                       Swift runtime); repeatable. --before DIR is --compare before=DIR
#
# Programs, each compiled with cc -O2 and spawned (posix_spawn + wait4) by spawn_median.c:
#   trivial            trivial.c (main returns 0), not linked with the library
#   trivial+NAME       the same, linked with -Wl,--no-as-needed -lkqueue: start-up alone
#   epoll_close        epoll_create1() + close(), not linked
#   kqueue_close+NAME  kqueue() + close(), linked: start-up and the first call
# (NAME is `lib` for --lib.) Prints, per program, the median wall time from spawn to reaped
# exit, the 10th and 90th percentiles and the median of the child's minor page faults; then
# the ratios trivial+NAME / trivial and kqueue_close+NAME / epoll_close (the target: at most
# 1.3 for the first). Then first_kqueue.c, run N/4 times per library: the median time of the
# process's first kqueue() (with the split library: loading the engine), of a second one, and
# the page faults of the first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
runs=2000
lib=.build/clib
compare=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --lib) lib=$2; shift 2 ;;
    --compare) compare+=("$2"); shift 2 ;;
    --before) compare+=("before=$2"); shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "startup.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f "$lib/libkqueue.so" ] || { echo "startup.sh: no $lib/libkqueue.so (run scripts/build-clib.sh)" >&2; exit 2; }
names=(lib)
dirs=("$(cd "$lib" && pwd)")
for entry in "${compare[@]}"; do
  name=${entry%%=*} dir=${entry#*=}
  case "$name" in "" | *[!a-z0-9_-]* | lib) echo "startup.sh: bad --compare name '$name'" >&2; exit 2 ;; esac
  [ -f "$dir/libkqueue.so" ] || { echo "startup.sh: no $dir/libkqueue.so" >&2; exit 2; }
  names+=("$name")
  dirs+=("$(cd "$dir" && pwd)")
done

out=$(mktemp -d "${TMPDIR:-/tmp}/kq-startup.XXXXXX")
trap 'rm -rf "$out"' EXIT
include=$root/Sources/CKQueue/include
cc -O2 -Wall -Werror "$here/spawn_median.c" -o "$out/spawn_median"
cc -O2 "$here/trivial.c" -o "$out/trivial"
cc -O2 "$here/epoll_close.c" -o "$out/epoll_close"
programs=(trivial epoll_close)
for i in "${!names[@]}"; do
  name=${names[$i]} dir=${dirs[$i]}
  cc -O2 "$here/trivial.c" -o "$out/trivial+$name" -Wl,--no-as-needed -L "$dir" -lkqueue "-Wl,-rpath,$dir"
  cc -O2 -I "$include" "$here/kqueue_close.c" -o "$out/kqueue_close+$name" -L "$dir" -lkqueue "-Wl,-rpath,$dir"
  cc -O2 -I "$include" "$here/first_kqueue.c" -o "$out/first_kqueue+$name" -L "$dir" -lkqueue "-Wl,-rpath,$dir"
  programs+=("trivial+$name" "kqueue_close+$name")
done

for i in "${!names[@]}"; do
  files=$(cd "${dirs[$i]}" && ls -d libkqueue*.so* | tr '\n' ' ')
  echo "${names[$i]}: ${dirs[$i]} ($files)"
done
echo "$runs spawns of each program, interleaved; load average $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$out" && ./spawn_median "$runs" "${programs[@]/#/./}") >"$out/result"

printf '%-22s %10s %10s %10s %8s\n' program "median µs" "p10 µs" "p90 µs" faults
while read -r name median p10 p90 faults; do
  printf '%-22s %10s %10s %10s %8s\n' "${name#./}" "$median" "$p10" "$p90" "$faults"
done <"$out/result"
median() { awk -v n="./$1" '$1 == n { print $2 }' "$out/result"; }
ratio() { awk -v a="$(median "$1")" -v b="$(median "$2")" 'BEGIN { printf "%.2f", a / b }'; }
for name in "${names[@]}"; do
  printf '%-10s start-up, trivial+%s / trivial: %s;  with a kqueue, kqueue_close+%s / epoll_close: %s\n' \
    "$name:" "$name" "$(ratio "trivial+$name" trivial)" "$name" "$(ratio "kqueue_close+$name" epoll_close)"
done

first_runs=$((runs / 4 > 0 ? runs / 4 : 1))
echo "first kqueue() of a process, $first_runs runs each (median µs of the first call, of a second call; page faults of the first):"
for name in "${names[@]}"; do
  for _ in $(seq "$first_runs"); do "$out/first_kqueue+$name"; done >"$out/first-$name"
  col() { cut -d' ' -f"$1" "$out/first-$name" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
  printf '%-10s first %8s µs   second %6s µs   faults %5s\n' "$name:" "$(col 1)" "$(col 2)" "$(col 3)"
done
