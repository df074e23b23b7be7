#!/usr/bin/env bash
# Start-up cost of linking libkqueue.so (issue item 8; results in docs/BENCHMARKS.md,
# "Start-up of a C program"):
#
#   scripts/build-clib.sh                                   # the deployable library, .build/clib
#   swift build -c release --product kqueue                 # optional: the library as it was
#                                                           # (dynamic Swift runtime), .build/release
#   Benchmarks/Startup/startup.sh [--runs N] [--lib DIR] [--before DIR]
#
#   --runs N      spawns of each program (default 2000), interleaved
#   --lib DIR     the library under test (default .build/clib)
#   --before DIR  a libkqueue.so to compare with (default .build/release when it has one)
#
# Programs, each compiled with cc -O2 and spawned (posix_spawn + wait4) by spawn_median.c:
#   trivial            trivial.c (main returns 0), not linked with the library
#   trivial+lib        the same, linked with -Wl,--no-as-needed -lkqueue: start-up alone
#   epoll_close        epoll_create1() + close(), not linked
#   kqueue_close+lib   kqueue() + close(), linked: start-up and the first call
# Prints, per program, the median wall time from spawn to reaped exit, the 10th and 90th
# percentiles and the median of the child's minor page faults; then the ratios
# trivial+lib / trivial and kqueue_close+lib / epoll_close (the target: at most 1.3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
runs=2000
lib=.build/clib
before=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --lib) lib=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "startup.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f "$lib/libkqueue.so" ] || { echo "startup.sh: no $lib/libkqueue.so (run scripts/build-clib.sh)" >&2; exit 2; }
lib=$(cd "$lib" && pwd)
if [ -z "$before" ] && [ -f .build/release/libkqueue.so ]; then before=.build/release; fi
[ -z "$before" ] || before=$(cd "$before" && pwd)

out=$(mktemp -d "${TMPDIR:-/tmp}/kq-startup.XXXXXX")
trap 'rm -rf "$out"' EXIT
include=$root/Sources/CKQueue/include
cc -O2 -Wall -Werror "$here/spawn_median.c" -o "$out/spawn_median"
cc -O2 "$here/trivial.c" -o "$out/trivial"
cc -O2 "$here/epoll_close.c" -o "$out/epoll_close"
linked() { # name dir: trivial+lib and kqueue_close+lib against the libkqueue.so in dir
  cc -O2 "$here/trivial.c" -o "$out/trivial+$1" -Wl,--no-as-needed -L "$2" -lkqueue "-Wl,-rpath,$2"
  cc -O2 -I "$include" "$here/kqueue_close.c" -o "$out/kqueue_close+$1" -L "$2" -lkqueue "-Wl,-rpath,$2"
}
linked lib "$lib"
programs=(trivial trivial+lib epoll_close kqueue_close+lib)
[ -z "$before" ] || { linked before "$before"; programs+=(trivial+before kqueue_close+before); }

echo "libkqueue.so under test (lib): $lib ($(readelf -d "$lib/libkqueue.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/SONAME \1/p'))"
[ -z "$before" ] || echo "compared with (before): $before/libkqueue.so"
echo "$runs spawns of each program, interleaved; load average $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$out" && ./spawn_median "$runs" "${programs[@]/#/./}") >"$out/result"

printf '%-22s %10s %10s %10s %8s\n' program "median µs" "p10 µs" "p90 µs" faults
while read -r name median p10 p90 faults; do
  printf '%-22s %10s %10s %10s %8s\n' "${name#./}" "$median" "$p10" "$p90" "$faults"
done <"$out/result"
median() { awk -v n="./$1" '$1 == n { print $2 }' "$out/result"; }
ratio() { awk -v a="$(median "$1")" -v b="$(median "$2")" 'BEGIN { printf "%.2f", a / b }'; }
echo "start-up ratio, trivial+lib / trivial:              $(ratio trivial+lib trivial)"
echo "with a kqueue, kqueue_close+lib / epoll_close:      $(ratio kqueue_close+lib epoll_close)"
if [ -n "$before" ]; then
  echo "before: trivial+before / trivial:                   $(ratio trivial+before trivial)"
  echo "before: kqueue_close+before / epoll_close:          $(ratio kqueue_close+before epoll_close)"
fi
