#!/usr/bin/env bash
# Builds the deployable C library for C programs on machines without a Swift toolchain
# (docs/C-LIBRARY.md): two files, which are installed together in one directory.
#
#   scripts/build-clib.sh
#
# Leaves in .build/clib/ (names from scripts/clib.env):
#   libkqueue.so.12.0.0                 the front: SONAME libkqueue.so.12, plain C
#   libkqueue.so.12 -> libkqueue.so.12.0.0   what programs load (their NEEDED entry)
#   libkqueue.so    -> libkqueue.so.12       what `cc ... -lkqueue` links with
#   libkqueue-engine.so.12.0.0          the engine: the Swift code, loaded by the front from
#                                       its own directory on the first kqueue()
#
# The front (Sources/CKQueueFront/front.c and the C shim's objects, Sources/CKQueueShim, with
# the aio_* functions, Sources/CKQueueAIO) holds the interposers and the shim's state, and defines kqueue, kqueuex and kevent, which
# load the engine with dlopen on first use and call it through function pointers. A program
# that links it maps and relocates only this small library at start-up: the Swift runtime's
# relocations are paid by the first kqueue() instead (docs/C-LIBRARY.md, "Start-up cost").
#   lld -z defs            everything it uses is in libc: NEEDED is libc.so.6 alone
#   --version-script scripts/libkqueue.map
#                          exports the C ABI, the interposed libc calls and the kq_shim_*
#                          functions the engine calls (resolved to the front at load: one
#                          copy of the shim's state)
#   -soname, -z nodelete   SONAME libkqueue.so.12; never unloaded (it installs signal and
#                          fork handlers); no RUNPATH
#   -z pack-relative-relocs, --gc-sections, -O1, -s
#
# The engine: a release build of the `kqueue` product's Swift objects in its own scratch path
# (.build/clib-build, so the debug .build is left as it is), linked here again without the C
# shim's objects (SwiftPM's own list of the product's objects, kqueue.product/
# Objects.LinkFileList, minus CKQueueShim.build/*.o):
#   -DKQUEUE_C_LIBRARY     names the entry points kqueue_engine_kqueue, kqueue_engine_kqueuex,
#                          kqueue_engine_kevent (Sources/KQueueCABI/Exports.swift), and leaves
#                          out the one Swift API (KEvent.timer(_:at:), ContinuousClock) that
#                          pulls in the _Concurrency runtime and libdispatch
#   -static-stdlib         the Swift runtime and standard library linked in (no libswift*.so)
#   libstdc++.a, -static-libgcc
#                          the C++ runtime the Swift runtime needs, linked in too: NEEDED is
#                          only libc, libm and the dynamic loader
#   --version-script scripts/libkqueue-engine.map
#                          exports only the three entry points
#   -z undefs              its kq_shim_* references stay undefined: the front defines them
#                          (scripts/check-clib.sh checks that it defines every one)
#   -soname                the file name; no RUNPATH at all
#   lld: -z pack-relative-relocs (DT_RELR, glibc >= 2.36), --gc-sections, -O1; -s strips
# Every flag is given here: Package.swift has no unsafeFlags, so a package that depends on
# KQueue by URL is not affected.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=clib.env
. scripts/clib.env
die() { echo "build-clib.sh: $*" >&2; exit 2; }

swift_bin=$(dirname "$(readlink -f "$(command -v swift)")")
[ -x "$swift_bin/ld.lld" ] || die "no ld.lld next to $swift_bin/swift"
[ -x "$swift_bin/clang" ] || die "no clang next to $swift_bin/swift"

# libstdc++.a for the Swift runtime: a directory that holds only it, searched first, makes the
# static-stdlib link's -lstdc++ find the archive instead of libstdc++.so.
cxx_archive=$("$swift_bin/clang" -print-file-name=libstdc++.a)
[ -f "$cxx_archive" ] || die "no libstdc++.a (install libstdc++-dev)"
static_cxx=$root/$KQ_CLIB_SCRATCH/static-cxx
mkdir -p "$static_cxx"
ln -sf "$cxx_archive" "$static_cxx/libstdc++.a"

# 1. Compile: the `kqueue` product, release. SwiftPM also links it (a by-product that is not
#    used: it contains the shim); what is kept is its objects and its list of them.
swift build -c release --product kqueue --scratch-path "$KQ_CLIB_SCRATCH" -Xswiftc -DKQUEUE_C_LIBRARY
bin=$(swift build -c release --scratch-path "$KQ_CLIB_SCRATCH" --show-bin-path)
list=$bin/kqueue.product/Objects.LinkFileList
[ -f "$list" ] || die "no $list: SwiftPM did not write the product's object list"

# 2. Split SwiftPM's object list: the C shim's objects go to the front, the rest to the
#    engine. The list is a response file, one path a line, single-quoted when it has spaces.
work=$root/$KQ_CLIB_SCRATCH/split
rm -rf "$work"
mkdir -p "$work"
engine_list=$work/engine.LinkFileList
shim_objects=()
: >"$engine_list"
while IFS= read -r entry; do
  [ -n "$entry" ] || continue
  path=$entry
  case "$path" in \'*\') path=${path#\'}; path=${path%\'} ;; esac
  case "$path" in *\'* | *\"* | *\\*) die "unexpected quoting in $list: $entry" ;; esac
  [ -f "$path" ] || die "$list names $path, which does not exist"
  case "$path" in
    */CKQueueShim.build/*.o | */CKQueueAIO.build/*.o) shim_objects+=("$path") ;;
    *) printf '%s\n' "$entry" >>"$engine_list" ;;
  esac
done <"$list"
# Every piece must be there: the whole shim (as many objects as CKQueueShim.build holds), the
# C entry points, the engine.
on_disk=$(find "$bin/CKQueueShim.build" "$bin/CKQueueAIO.build" -maxdepth 1 -name '*.o' | wc -l)
[ "${#shim_objects[@]}" -gt 0 ] && [ "${#shim_objects[@]}" -eq "$on_disk" ] ||
  die "the product's list has ${#shim_objects[@]} CKQueueShim and CKQueueAIO objects, their build directories have $on_disk"
grep -q '/KQueueCABI\.build/Exports\.swift\.o' "$engine_list" || die "no KQueueCABI.build/Exports.swift.o in $list"
grep -q '/KQueue\.build/' "$engine_list" || die "no KQueue.build objects in $list"
engine_count=$(wc -l <"$engine_list")

# 3. The engine.
"$swift_bin/swiftc" -emit-library -module-name kqueue_engine -o "$work/$KQ_CLIB_ENGINE" \
  -static-stdlib -use-ld=lld "-L$static_cxx" -Xclang-linker -static-libgcc \
  -Xlinker "--version-script=$root/scripts/libkqueue-engine.map" \
  -Xlinker "-soname=$KQ_CLIB_ENGINE" \
  -Xlinker -z -Xlinker undefs \
  -Xlinker -z -Xlinker pack-relative-relocs \
  -Xlinker --gc-sections \
  -Xlinker -O1 \
  -Xlinker -s \
  "@$engine_list"

# 4. The front.
"$swift_bin/clang" -shared -fuse-ld=lld -o "$work/$KQ_CLIB_FILE" \
  -std=gnu11 -O2 -fPIC -Wall -Wextra -Werror \
  -I "$root/Sources/CKQueue/include" -I "$root/Sources/CKQueueShim/include" "-DKQ_ENGINE_FILE=\"$KQ_CLIB_ENGINE\"" \
  "$root/Sources/CKQueueFront/front.c" "${shim_objects[@]}" \
  "-Wl,--version-script=$root/scripts/libkqueue.map" \
  "-Wl,-soname=$KQ_CLIB_SONAME" \
  -Wl,-z,defs -Wl,-z,nodelete -Wl,-z,pack-relative-relocs -Wl,--gc-sections -Wl,-O1 -Wl,--build-id -s

mkdir -p "$KQ_CLIB_DIR"
rm -f "$KQ_CLIB_DIR"/libkqueue.so* "$KQ_CLIB_DIR"/libkqueue-engine.so*
cp "$work/$KQ_CLIB_FILE" "$work/$KQ_CLIB_ENGINE" "$KQ_CLIB_DIR/"
ln -s "$KQ_CLIB_FILE" "$KQ_CLIB_DIR/$KQ_CLIB_SONAME"
ln -s "$KQ_CLIB_SONAME" "$KQ_CLIB_DIR/libkqueue.so"
size() { echo "$(du -k "$1" | cut -f1) KiB"; }
echo "built $KQ_CLIB_DIR/$KQ_CLIB_FILE ($(size "$KQ_CLIB_DIR/$KQ_CLIB_FILE"), SONAME $KQ_CLIB_SONAME; ${#shim_objects[@]} shim objects + front.c)"
echo "  and $KQ_CLIB_DIR/$KQ_CLIB_ENGINE ($(size "$KQ_CLIB_DIR/$KQ_CLIB_ENGINE"), $engine_count objects + the static Swift runtime)"
