#!/usr/bin/env bash
# The test suite under a sanitizer, as CI runs it:
#
#   scripts/sanitize.sh address    # AddressSanitizer + LeakSanitizer + UndefinedBehaviorSanitizer
#   scripts/sanitize.sh thread     # ThreadSanitizer
#
# 1. swift build --build-tests with the sanitizer, in its own scratch path (.build-asan,
#    .build-tsan), so the plain .build stays as it is;
# 2. swift test --skip-build with the same flags: every Swift Testing suite, in one
#    instrumented process; the C programs (and the README example) are left out: CABITests
#    compiles them with
#    the plain `cc`, which cannot link an instrumented libkqueue.so; step 3 covers Tests/C);
# 3. scripts/c-tests.sh --sanitize MODE: every Tests/C program built with the same sanitizer
#    against the instrumented libkqueue.so.
# Any sanitizer report fails the stage (the runtimes' exit codes, and a scan of the output
# for reports from processes whose exit status does not carry them).
#
# What each mode covers on Swift 6.3 / Linux:
#  address: swift's -sanitize=address instruments the Swift code and the C targets (the
#    close/dup2/fork shim); `-sanitize=undefined` is refused for Swift on Linux, so UBSan
#    comes in through -Xcc -fsanitize=undefined: it instruments the C targets (CKQueueShim,
#    CKQueueCalls, CKQueue), and its handlers are part of the ASan runtime that swiftc links.
#    Swift code itself traps on overflow and out-of-bounds in debug builds, UBSan's job there.
#    LeakSanitizer runs at the end of the test process (and of every C test child).
#  thread: all Swift and C code instrumented; the contended paths of Synchronization.Mutex
#    are annotated by a preloaded shim (sanitizers/tsan_mutex_annotations.c explains why).
#
# Suppressions: sanitizers/lsan.supp (toolchain-only allocations, each justified). No TSan
# and no UBSan suppressions.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-}

extra_skip=()
case "$mode" in
  address)
    scratch=.build-asan
    flags=(--sanitize=address -Xcc -fsanitize=undefined)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1}
    export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/scripts/sanitizers/lsan.supp:print_suppressions=0}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    ;;
  thread)
    scratch=.build-tsan
    flags=(--sanitize=thread)
    # The Swift suites left out under TSan fork the multi-threaded test process and run Swift
    # code in the child. Under TSan the Swift runtime's swift_once takes each lazy global's
    # lock on every access, even after initialisation (so that TSan sees the ordering), so a
    # fork can copy such a lock while another thread holds it for a moment, and the child
    # waits on it forever (seen with gdb: FUTEX_LOCK_PI on a lock owned by a parent thread;
    # CI's TSan stage lost a PROCDESC child that way). Plain builds never lock a completed
    # once. The same guarantees run under TSan from C, forked from a single-threaded test
    # process (Tests/C/lifetime.c: test_lifetime_fork_child_sees_kqueue_closed_ebadf;
    # Tests/C/procdesc.c), and these suites run in the plain and ASan stages.
    extra_skip=(--skip 'DescriptorLifetimeForkTests|ProcessDescriptorTests')
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:exitcode=66}
    ;;
  *)
    echo "usage: scripts/sanitize.sh address|thread" >&2
    exit 2
    ;;
esac

echo "== $mode: swift build --build-tests ${flags[*]} --scratch-path $scratch"
set +e
swift build --build-tests "${flags[@]}" --scratch-path "$scratch" 2>&1 |
  grep -vE '^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Write|Wrapping|Planning|Applying|Linking|Merging)'
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || { echo "== $mode: FAILED (build)"; exit 1; }

preload=()
if [ "$mode" = thread ]; then
  toolchain_bin=$(dirname "$(readlink -f "$(command -v swift)")")
  shim=$root/$scratch/tsan_mutex_annotations.so
  "$toolchain_bin/clang" -shared -fPIC -O1 "$root/scripts/sanitizers/tsan_mutex_annotations.c" -o "$shim" -ldl
  preload=("LD_PRELOAD=$shim")
fi

echo "== $mode: swift test --skip-build ${flags[*]} (the C programs follow in step 3)"
log=$(mktemp "${TMPDIR:-/tmp}/kq-sanitize-$mode.XXXXXX")
trap 'rm -f "$log"' EXIT
set +e
env "${preload[@]}" swift test --skip-build "${flags[@]}" --scratch-path "$scratch" \
  --skip 'CABITests/cProgram' --skip 'CABITests/readmeExample' "${extra_skip[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
reports=$(grep -cE '(ERROR|WARNING): (Address|Leak|Thread)Sanitizer|runtime error: |SUMMARY: UndefinedBehaviorSanitizer' "$log" || true)
echo "== $mode: swift test exit status $status, sanitizer reports: $reports"
swift_ok=1
if [ "$status" -ne 0 ] || [ "$reports" -ne 0 ]; then swift_ok=0; fi

echo "== $mode: C programs"
c_ok=1
bash scripts/c-tests.sh --sanitize "$mode" --lib "$scratch/debug" || c_ok=0

[ $swift_ok -eq 1 ] || echo "== $mode: FAILED: swift test (exit status $status, $reports sanitizer reports)"
[ $c_ok -eq 1 ] || echo "== $mode: FAILED: C programs"
[ $swift_ok -eq 1 ] && [ $c_ok -eq 1 ]
