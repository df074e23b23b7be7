#!/usr/bin/env bash
# Compiles and runs the C ABI test programs (Tests/C/*.c) against a built libkqueue.so, as
# Tests/KQueueTests/CABITests.swift does in `swift test`, but optionally with a sanitizer:
#
#   scripts/c-tests.sh [--sanitize address|thread] [--lib DIR] [PROGRAM...]
#
#   --lib DIR        directory with libkqueue.so (default: .build/debug, or the sanitizer
#                    stage's .build-asan/debug / .build-tsan/debug); .build/clib is the
#                    deployable library of scripts/build-clib.sh (libkqueue.so is a symlink to
#                    the SONAME libkqueue.so.12, the front, which the programs load through
#                    their rpath, and which loads libkqueue-engine.so.12.0.0 next to it)
#   --sanitize address
#                    programs built with the toolchain's clang -fsanitize=address,undefined
#                    (the ASan-built libkqueue.so expects the ASan runtime in the executable);
#                    LeakSanitizer also checks every forked test child (lsan_at_exit.c)
#   --sanitize thread
#                    programs built with clang -fsanitize=thread; the Mutex annotations of
#                    scripts/sanitizers/tsan_mutex_annotations.c are preloaded
#   PROGRAM...       names (e.g. stress_threads) to run only those; default: all
#
# Each program is killed after 60 s (as the Swift runner does); exit 0 passes, 77 skips.
# Output of a failed program is printed in full; lines of passed programs that carry figures
# (stress_*) are printed too. Ends with "N passed, M failed"; exits 1 if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

sanitize=""
lib=""
programs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) sanitize=$2; shift 2 ;;
    --sanitize=*) sanitize=${1#--sanitize=}; shift ;;
    --lib) lib=$2; shift 2 ;;
    --lib=*) lib=${1#--lib=}; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) programs+=("$1"); shift ;;
  esac
done

case "$sanitize" in
  "") lib=${lib:-.build/debug} ;;
  address) lib=${lib:-.build-asan/debug} ;;
  thread) lib=${lib:-.build-tsan/debug} ;;
  *) echo "c-tests.sh: unknown sanitizer '$sanitize'" >&2; exit 2 ;;
esac
lib=$(cd "$lib" && pwd)
[ -f "$lib/libkqueue.so" ] || { echo "c-tests.sh: no libkqueue.so in $lib (swift build --build-tests first)" >&2; exit 2; }

toolchain_bin=$(dirname "$(readlink -f "$(command -v swift)")")
out=$(mktemp -d "${TMPDIR:-/tmp}/kq-ctests.XXXXXX")
trap 'rm -rf "$out"' EXIT

cflags=(-std=gnu11 -Wall -Werror -g -I "$root/Sources/CKQueue/include")
ldflags=(-L "$lib" -lkqueue "-Wl,-rpath,$lib" -lpthread)
extra_objects=()
run_env=()
cc_cmd=(cc)
case "$sanitize" in
  address)
    cc_cmd=("$toolchain_bin/clang")
    cflags+=(-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined)
    "${cc_cmd[@]}" -c -O1 -fsanitize=address "$root/scripts/sanitizers/lsan_at_exit.c" -o "$out/lsan_at_exit.o"
    extra_objects=("$out/lsan_at_exit.o")
    run_env=(
      "ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}"
      "LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/scripts/sanitizers/lsan.supp:print_suppressions=0}"
      "UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
    )
    ;;
  thread)
    cc_cmd=("$toolchain_bin/clang")
    cflags+=(-O1 -fno-omit-frame-pointer -fsanitize=thread)
    # This toolchain's TSan runtime carries libdispatch interceptors: link what they need.
    swift_libs=$(cd "$toolchain_bin/../lib/swift/linux" && pwd)
    ldflags+=(-L "$swift_libs" -ldispatch -lBlocksRuntime "-Wl,-rpath,$swift_libs")
    "${cc_cmd[@]}" -shared -fPIC -O1 "$root/scripts/sanitizers/tsan_mutex_annotations.c" -o "$out/tsan_mutex_annotations.so" -ldl
    run_env=(
      "TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:exitcode=66}"
      "LD_PRELOAD=$out/tsan_mutex_annotations.so"
    )
    ;;
esac

# The seed example, compiled unchanged, for telnet_seed.c (skipped without it).
seed=$root/../shared/seed/telnet.c
if [ -f "$seed" ]; then
  if "${cc_cmd[@]}" -std=gnu11 -g -I "$root/Sources/CKQueue/include" ${sanitize:+-fsanitize=$sanitize} \
      "$seed" -o "$out/seed-telnet" "${ldflags[@]}" >"$out/seed-telnet.log" 2>&1; then
    run_env+=("KQ_TELNET_BIN=$out/seed-telnet")
  else
    echo "c-tests.sh: ../shared/seed/telnet.c does not compile unchanged:" >&2
    cat "$out/seed-telnet.log" >&2
    exit 1
  fi
fi

if [ ${#programs[@]} -eq 0 ]; then
  for f in Tests/C/*.c; do programs+=("$(basename "$f" .c)"); done
fi

sanitizer_report='(ERROR|WARNING): (Address|Leak|Thread|Memory)Sanitizer|runtime error: |SUMMARY: UndefinedBehaviorSanitizer'
passed=0 failed=0 skipped=0
failures=()
echo "C programs against $lib${sanitize:+ (sanitizer: $sanitize)}"
for name in "${programs[@]}"; do
  src=$root/Tests/C/$name.c
  bin=$out/$name
  if ! "${cc_cmd[@]}" "${cflags[@]}" "$src" "${extra_objects[@]}" -o "$bin" "${ldflags[@]}" >"$out/$name.build.log" 2>&1; then
    echo "FAIL $name: does not compile"
    cat "$out/$name.build.log"
    failed=$((failed + 1)); failures+=("$name"); continue
  fi
  start=$(date +%s.%N)
  set +e
  env "${run_env[@]}" timeout -k 5 60 "$bin" </dev/null >"$out/$name.log" 2>&1
  status=$?
  set -e
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  # A sanitizer report fails the program even when the process it came from ended with
  # status 0: kqtest.h's forked test children end with _exit(), which skips the sanitizers'
  # exit-code handling (TSan's exitcode, UBSan reports from recoverable checks).
  if [ $status -eq 0 ] && grep -qE "$sanitizer_report" "$out/$name.log"; then status=99; fi
  case $status in
    0)
      passed=$((passed + 1))
      echo "ok   $name (${secs} s) $(tail -n 1 "$out/$name.log")"
      grep -E '^stress_[a-z_]+:' "$out/$name.log" | sed 's/^/     /' || true
      ;;
    77)
      skipped=$((skipped + 1))
      echo "skip $name (${secs} s): $(grep -m1 '^skip ' "$out/$name.log" || true)"
      ;;
    *)
      failed=$((failed + 1)); failures+=("$name")
      case $status in
        124|137) why="killed after 60 s" ;;
        99) why="sanitizer report" ;;
        *) why="exit status $status" ;;
      esac
      echo "FAIL $name (${secs} s, $why); output:"
      sed 's/^/  | /' "$out/$name.log"
      ;;
  esac
done
[ $skipped -gt 0 ] && echo "($skipped program(s) skipped)"
[ $failed -gt 0 ] && echo "failed programs: ${failures[*]}"
echo "c-tests: $passed passed, $failed failed${sanitize:+ (sanitizer: $sanitize)}"
[ $failed -eq 0 ]
