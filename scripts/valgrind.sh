#!/usr/bin/env bash
# valgrind memcheck on the C example programs, linked with libkqueue.so:
#
#   scripts/valgrind.sh [--lib DIR] [PROGRAM...]
#
#   - the seed example ../shared/seed/telnet.c (when present), compiled unchanged, driven
#     by Tests/C/telnet_seed.c against a loopback server; the telnet process runs under
#     valgrind;
#   - C test programs from Tests/C (default list below, or the names given), each run
#     entirely under valgrind, including the child process of every test.
#
# Every process must end with no memcheck error: no invalid read/write, no use of
# uninitialised memory, no bad free, and no leak ("definitely" or "possibly" lost, with
# --leak-check=full). "Still reachable" memory (the Swift runtime's caches, kqueues still
# open at exit) is not a leak. scripts/valgrind.supp lists the few runtime allocations that
# valgrind cannot classify, each with its reason.
#
# Notes on this toolchain: valgrind 3.19 cannot read the DWARF 5 debug info of the Swift
# build, so the library is run from a copy stripped with `objcopy --strip-debug` (symbols
# stay, so stacks are still named). valgrind does not know epoll_pwait2; the library falls
# back to epoll_wait there (timeouts rounded up to milliseconds), which the programs accept.
# The stress programs are left out: under valgrind they would take minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

lib=.build/debug
programs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --lib) lib=$2; shift 2 ;;
    --lib=*) lib=${1#--lib=}; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) programs+=("$1"); shift ;;
  esac
done
# Left out of the default list, and why: stress_* (minutes under valgrind); timer (its
# precision checks assume native speed); user and threads (a 10,000-knote test and
# multi-threaded timing bounds exceed the per-test watchdog under valgrind); registration
# (one test takes the descriptor just past RLIMIT_NOFILE, where valgrind keeps its own);
# kevent_call (its EINTR tests need a signal to interrupt the wait, which valgrind's
# signal handling delays past their bounds).
[ ${#programs[@]} -gt 0 ] || programs=(bad_input delivery read_write lifetime telnet_client)
# Tests whose names match this are not run under valgrind: they fork while holding kqueues,
# and in the child the library's fork handler deliberately keeps the inherited kqueue objects
# alive without a reference (KQueueRegistry.forkChild: no deinit may run against state a
# parent thread may have held locked), which memcheck reports as "definitely lost". The
# AddressSanitizer stage runs them (its leak check covers the test processes themselves).
exclude_tests='fork'

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 2; }
[ -f "$lib/libkqueue.so" ] || { echo "valgrind.sh: no $lib/libkqueue.so (swift build --product kqueue first)" >&2; exit 2; }

out=$(mktemp -d "${TMPDIR:-/tmp}/kq-valgrind.XXXXXX")
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/lib" "$out/logs"
objcopy --strip-debug "$lib/libkqueue.so" "$out/lib/libkqueue.so"

cflags=(-std=gnu11 -g -O0 -I "$root/Sources/CKQueue/include")
ldflags=(-L "$out/lib" -lkqueue "-Wl,-rpath,$out/lib" -lpthread)
vg=(valgrind --quiet --tool=memcheck --leak-check=full --show-leak-kinds=definite,possible
    --errors-for-leak-kinds=definite,possible --track-origins=yes --error-exitcode=99
    --suppressions="$root/scripts/valgrind.supp")
valgrind --version

failed=0 ran=0
run_status() { # name status
  ran=$((ran + 1))
  if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1 (exit status $2)"; failed=$((failed + 1)); fi
}

# 1. The seed example under valgrind, driven by the telnet_seed harness (which runs natively).
seed=$root/../shared/seed/telnet.c
if [ -f "$seed" ]; then
  cc "${cflags[@]}" "$seed" -o "$out/seed-telnet" "${ldflags[@]}"
  cat >"$out/telnet-under-valgrind" <<EOF
#!/bin/sh
exec ${vg[*]} --log-file=$out/logs/seed-telnet.%p.log $out/seed-telnet "\$@"
EOF
  chmod +x "$out/telnet-under-valgrind"
  cc "${cflags[@]}" -Wall -Werror "$root/Tests/C/telnet_seed.c" -o "$out/telnet_seed" "${ldflags[@]}"
  set +e
  KQ_TELNET_BIN=$out/telnet-under-valgrind timeout -k 5 120 "$out/telnet_seed" >"$out/logs/telnet_seed.out" 2>&1
  status=$?
  set -e
  sed 's/^/     /' "$out/logs/telnet_seed.out"
  run_status "seed telnet.c under valgrind (Tests/C/telnet_seed.c)" $status
else
  echo "skip seed telnet.c: $seed not found"
fi

# 2. Test programs, every process under valgrind.
for name in "${programs[@]}"; do
  cc "${cflags[@]}" -Wall -Werror "$root/Tests/C/$name.c" -o "$out/$name" "${ldflags[@]}"
  # kqtest.h runs the tests whose names contain one of its arguments: name all but the excluded.
  mapfile -t all_tests < <(sed -n 's/^TEST(\([A-Za-z0-9_]*\)).*/\1/p' "$root/Tests/C/$name.c")
  selected=()
  for t in "${all_tests[@]}"; do [[ $t =~ $exclude_tests ]] || selected+=("$t"); done
  [ ${#selected[@]} -lt ${#all_tests[@]} ] || selected=()
  set +e
  timeout -k 5 300 "${vg[@]}" --log-file="$out/logs/$name.%p.log" "$out/$name" "${selected[@]}" >"$out/logs/$name.out" 2>&1
  status=$?
  set -e
  [ $status -eq 77 ] && status=0
  echo "     $(tail -n 1 "$out/logs/$name.out")"
  [ $status -ne 0 ] && sed 's/^/     | /' "$out/logs/$name.out"
  run_status "$name under valgrind" $status
done

# 3. Every process's log: any error (not only those that changed an exit status).
processes=0 dirty=0
for log in "$out"/logs/*.log; do
  [ -e "$log" ] || continue
  processes=$((processes + 1))
  if [ -s "$log" ]; then
    # --quiet: a log holds only errors (and the leak summary when there is one).
    if grep -qE 'Invalid|uninitialised|definitely lost in|possibly lost in|Mismatched|free\(\)|ERROR SUMMARY: [1-9]' "$log"; then
      dirty=$((dirty + 1))
      echo "memcheck errors in $(basename "$log"):"
      sed 's/^/  | /' "$log" | head -n 200
    fi
  fi
done
echo "valgrind: $processes processes checked, $dirty with memcheck errors"
[ $dirty -eq 0 ] || { echo "FAIL memcheck errors (above)"; failed=$((failed + 1)); }
echo "valgrind: $ran programs run, $failed failed"
[ $failed -eq 0 ]
