#!/usr/bin/env bash
# The cost of one kevent() call through the deployable library (kevent_cost.c; figures in
# docs/C-LIBRARY.md, "The hot path"):
#
#   scripts/build-clib.sh
#   Benchmarks/KeventCall/run.sh [--lib DIR] [--before DIR] [--times N]
#
#   --lib DIR     the split library under test (default .build/clib): kevent() through the
#                 front, and the engine's entry point called directly, in the same process
#   --before DIR  a one-file libkqueue.so to compare with (e.g. the build of an earlier
#                 commit's scripts/build-clib.sh): kevent() straight into the Swift engine
#   --times N     runs of each program, alternated (default 3)
# Then, with valgrind, the instructions per user-event call through kevent() and through the
# entry point (callgrind), and their difference: what the front adds, exactly, in a measure
# that other work on the machine does not disturb.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
# shellcheck source=../../scripts/clib.env
. scripts/clib.env
lib=$KQ_CLIB_DIR
before=""
times=3
while [ $# -gt 0 ]; do
  case "$1" in
    --lib) lib=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    --times) times=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f "$lib/$KQ_CLIB_ENGINE" ] || { echo "run.sh: no $lib/$KQ_CLIB_ENGINE (run scripts/build-clib.sh)" >&2; exit 2; }
lib=$(cd "$lib" && pwd)
[ -z "$before" ] || before=$(cd "$before" && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/kq-kevent-cost.XXXXXX")
trap 'rm -rf "$out"' EXIT
build() { # name dir
  cc -std=gnu11 -O2 -Wall -Werror -I "$root/Sources/CKQueue/include" "$here/kevent_cost.c" -o "$out/$1" \
    -L "$2" -lkqueue "-Wl,-rpath,$2"
}
build split "$lib"
[ -z "$before" ] || build before "$before"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$times"); do
  echo "split library ($lib), run $run:"
  "$out/split" "$lib/$KQ_CLIB_ENGINE" | sed 's/^/  /'
  if [ -n "$before" ]; then
    echo "one-file library ($before), run $run:"
    "$out/before" | sed 's/^/  /'
  fi
done

if command -v valgrind >/dev/null 2>&1; then
  calls=20000
  instructions() { # program engine|- front|engine N: the instructions callgrind counts in the whole run
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$out/$1" "$2" "$3" "$4" 2>&1 |
      sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
  }
  f0=$(instructions split "$lib/$KQ_CLIB_ENGINE" front 0) e0=$(instructions split "$lib/$KQ_CLIB_ENGINE" engine 0)
  f1=$(instructions split "$lib/$KQ_CLIB_ENGINE" front $calls) e1=$(instructions split "$lib/$KQ_CLIB_ENGINE" engine $calls)
  awk -v f0="$f0" -v e0="$e0" -v f1="$f1" -v e1="$e1" -v n="$calls" 'BEGIN {
    printf "callgrind, %d user-event calls: %.1f instructions per call through kevent(), %.1f through the entry point: the front adds %.2f\n",
      n, (f1 - f0) / n, (e1 - e0) / n, ((f1 - f0) - (e1 - e0)) / n }'
  if [ -n "$before" ]; then
    b0=$(instructions before - front 0) b1=$(instructions before - front $calls)
    awk -v b0="$b0" -v b1="$b1" -v f0="$f0" -v f1="$f1" -v n="$calls" 'BEGIN {
      printf "callgrind, the one-file library: %.1f instructions per call through kevent() (the split library: %+.1f)\n",
        (b1 - b0) / n, ((f1 - f0) - (b1 - b0)) / n }'
  fi
else
  echo "(no valgrind: no instruction counts)"
fi
