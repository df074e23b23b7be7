#!/usr/bin/env bash
# Builds the deployable C library: libkqueue.so for C programs on machines without a Swift
# toolchain (docs/C-LIBRARY.md).
#
#   scripts/build-clib.sh
#
# Leaves in .build/clib/ (names from scripts/clib.env):
#   libkqueue.so.12.0.0                 the library, SONAME libkqueue.so.12
#   libkqueue.so.12 -> libkqueue.so.12.0.0   what programs load (their NEEDED entry)
#   libkqueue.so    -> libkqueue.so.12       what `cc ... -lkqueue` links with
#
# A release build of the `kqueue` product in its own scratch path (.build/clib-build, so the
# debug .build is left as it is), linked so that it stands alone and loads fast:
#   -static-stdlib         the Swift runtime and standard library linked in (no libswift*.so)
#   libstdc++.a, -static-libgcc
#                          the C++ runtime the Swift runtime needs, linked in too: NEEDED is
#                          only libc, libm and the dynamic loader
#   -DKQUEUE_C_LIBRARY     leaves out the one Swift API (KEvent.timer(_:at:), ContinuousClock)
#                          that pulls in the _Concurrency runtime and libdispatch, and their
#                          load-time initializers (the C ABI does not use them)
#   --version-script scripts/libkqueue.map
#                          exports only the C ABI and the interposed libc calls
#   -soname, --disable-local-rpath
#                          SONAME libkqueue.so.12; no RUNPATH at all (relocatable)
#   lld: -z pack-relative-relocs (DT_RELR, glibc >= 2.36), --gc-sections, -O1; -s strips
#                          the symbol table and debug information
# Every flag is given on the command line: Package.swift has no unsafeFlags, so a package
# that depends on KQueue by URL is not affected.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=clib.env
. scripts/clib.env

swift_bin=$(dirname "$(readlink -f "$(command -v swift)")")
[ -x "$swift_bin/ld.lld" ] || { echo "build-clib.sh: no ld.lld next to $swift_bin/swift" >&2; exit 2; }

# libstdc++.a for the Swift runtime: a directory that holds only it, searched first, makes the
# static-stdlib link's -lstdc++ find the archive instead of libstdc++.so.
cxx_archive=$("$swift_bin/clang" -print-file-name=libstdc++.a)
[ -f "$cxx_archive" ] || { echo "build-clib.sh: no libstdc++.a (install libstdc++-dev)" >&2; exit 2; }
static_cxx=$root/$KQ_CLIB_SCRATCH/static-cxx
mkdir -p "$static_cxx"
ln -sf "$cxx_archive" "$static_cxx/libstdc++.a"

swift build -c release --product kqueue --scratch-path "$KQ_CLIB_SCRATCH" --disable-local-rpath \
  -Xswiftc -DKQUEUE_C_LIBRARY \
  -Xswiftc -static-stdlib \
  -Xswiftc -use-ld=lld \
  -Xswiftc "-L$static_cxx" \
  -Xswiftc -Xclang-linker -Xswiftc -static-libgcc \
  -Xlinker "--version-script=$root/scripts/libkqueue.map" \
  -Xlinker "-soname=$KQ_CLIB_SONAME" \
  -Xlinker -z -Xlinker pack-relative-relocs \
  -Xlinker --gc-sections \
  -Xlinker -O1 \
  -Xlinker -s

bin=$(swift build -c release --scratch-path "$KQ_CLIB_SCRATCH" --show-bin-path)
mkdir -p "$KQ_CLIB_DIR"
rm -f "$KQ_CLIB_DIR"/libkqueue.so*
cp "$bin/libkqueue.so" "$KQ_CLIB_DIR/$KQ_CLIB_FILE"
ln -s "$KQ_CLIB_FILE" "$KQ_CLIB_DIR/$KQ_CLIB_SONAME"
ln -s "$KQ_CLIB_SONAME" "$KQ_CLIB_DIR/libkqueue.so"
echo "built $KQ_CLIB_DIR/$KQ_CLIB_FILE ($(du -k "$KQ_CLIB_DIR/$KQ_CLIB_FILE" | cut -f1) KiB), SONAME $KQ_CLIB_SONAME"
