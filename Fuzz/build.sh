#!/usr/bin/env bash
# Builds the kevent() fuzzer: libkqueue.so instrumented for libFuzzer (coverage of the Swift
# engine, AddressSanitizer) into .build-fuzz/, and the C harness against it.
#
#   bash Fuzz/build.sh            # -> .build-fuzz/kevent_fuzz
#
# Environment:
#   CLANG=...              clang with libFuzzer (default: the Swift toolchain's, /opt/swift/usr/bin/clang)
#   KQ_FUZZ_LIB=plain      do not instrument the library: coverage of the harness only
#                          (library from `swift build -c release` in .build-fuzz-plain)
#   KQ_FUZZ_CONFIG=debug   build the library in debug (slower, more assertions) instead of release
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

find_clang() {
  if [ -n "${CLANG:-}" ]; then echo "$CLANG"; return; fi
  for c in /opt/swift/usr/bin/clang "$(dirname "$(command -v swift 2>/dev/null || echo /x/x)")/clang"; do
    [ -x "$c" ] && { echo "$c"; return; }
  done
  command -v clang || { echo "build.sh: no clang with libFuzzer found (set CLANG)" >&2; exit 1; }
}
clang=$(find_clang)
config=${KQ_FUZZ_CONFIG:-release}
mode=${KQ_FUZZ_LIB:-instrumented}

if [ "$mode" = plain ]; then
  scratch=.build-fuzz-plain
  swift build -c "$config" --product kqueue --scratch-path "$scratch" >&2
else
  scratch=.build-fuzz
  # One -sanitize= flag with a list: a second -sanitize= would replace the first.
  # -sanitize=fuzzer instruments for libFuzzer (inline 8-bit counters, PC table, trace-cmp)
  # without linking libFuzzer into the library; the harness brings it.
  swift build -c "$config" --product kqueue --scratch-path "$scratch" \
    -Xswiftc -sanitize=fuzzer,address \
    -Xcc -fsanitize=fuzzer-no-link,address >&2
fi
libdir=$root/$scratch/$config
lib=$libdir/libkqueue.so
[ -f "$lib" ] || { echo "build.sh: $lib was not built" >&2; exit 1; }
if [ "$mode" != plain ] && ! nm -D "$lib" | grep __sanitizer_cov_8bit_counters_init >/dev/null; then
  echo "build.sh: $lib carries no coverage instrumentation" >&2
  exit 1
fi

out=$root/$scratch/kevent_fuzz
src=$root/Fuzz/kevent_fuzz.c
if [ ! -x "$out" ] || [ "$src" -nt "$out" ] || [ "$lib" -nt "$out" ] || [ "$0" -nt "$out" ]; then
  ld=()
  [ -x "$(dirname "$clang")/ld.lld" ] && ld=(-fuse-ld=lld)
  "$clang" -g -O1 -std=gnu11 -Wall -Wextra -Werror \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    "${ld[@]}" -I "$root/Sources/CKQueue/include" "$src" \
    -L "$libdir" -Wl,-rpath,"$libdir" -lkqueue -o "$out.tmp"
  mv "$out.tmp" "$out"
fi
echo "$out"
