#!/usr/bin/env bash
# Checks the deployable C library that scripts/build-clib.sh left in .build/clib, both of its
# files (CI runs it after building; it fails, never skips, when a file is missing):
#
#   scripts/check-clib.sh
#
#  1. The front, libkqueue.so.12.0.0: SONAME libkqueue.so.12; no RUNPATH or RPATH; NEEDED only
#     libc and the dynamic loader (libdl and libpthread allowed, for an older glibc); the
#     symlinks libkqueue.so.12 and libkqueue.so lead to it.
#     The engine, libkqueue-engine.so.12.0.0: SONAME its file name; no RUNPATH or RPATH;
#     NEEDED only libc, libm and the dynamic loader (no libswift*, libstdc++, libgcc_s,
#     libdispatch, nor the front: it is found loaded); no STATIC_TLS (it is loaded by dlopen).
#  2. Exports: the front's exactly scripts/libkqueue.map (the C ABI, the interposers, the
#     kq_shim_* functions the engine calls), and every libc name the C shim's objects define
#     is among them; the engine's exactly scripts/libkqueue-engine.map; every symbol the
#     engine leaves undefined that is not libc's is defined by the front, and the front's
#     kq_shim_* exports are exactly the engine's undefined kq_shim_* references.
#  3. A C program (Examples/countdown.c) linked with -lkqueue records NEEDED libkqueue.so.12
#     and runs with the Swift toolchain's lib directory hidden (an empty tmpfs mounted over
#     it in a private mount namespace); that the hiding works is shown by the debug
#     libkqueue.so of `swift build` (dynamic Swift runtime), which must then fail to load.
#     Without unshare(1) or the right to mount, `ldd` and LD_DEBUG=libs must show that
#     nothing is loaded from the toolchain instead (said so in the output).
#  4. scripts/install.sh --no-build into a temporary prefix; a program built with
#     `pkg-config --cflags --libs kqueue-freebsd` runs against the installed library.
#  5. Relocation and loading (scripts/clib-probe.c): the installed directory moved elsewhere
#     (the engine is loaded from the new place); a directory holding only a symbolic link to
#     the front; a relative LD_LIBRARY_PATH entry and a chdir before the first kqueue(); the
#     front loaded with dlopen(RTLD_LOCAL) by a program not linked with it; the front without
#     the engine: kqueue() and kqueuex() fail with ELIBACC, kevent() with EBADF, nothing is
#     printed.
# Ends with "N passed, M failed"; exits 1 if any check failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=clib.env
. scripts/clib.env

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() {
  echo "check-clib: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

lib=$root/$KQ_CLIB_DIR
real=$lib/$KQ_CLIB_FILE
engine=$lib/$KQ_CLIB_ENGINE
clib_objects=$(cd "$root" && swift build -c release --scratch-path "$KQ_CLIB_SCRATCH" --show-bin-path)
missing_files=0
for file in "$real" "$engine"; do
  [ -f "$file" ] || { fail "no $file: run scripts/build-clib.sh first"; missing_files=1; }
done
if [ $missing_files -eq 1 ]; then
  finish
  exit 1
fi
swift_bin=$(dirname "$(readlink -f "$(command -v swift)")")
toolchain_lib=$(cd "$swift_bin/../lib" && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/kq-check-clib.XXXXXX")
trap 'rm -rf "$out"' EXIT

# 1. ELF dynamic sections and file names.
entries() { # tag dynamic-section: the values of that tag
  sed -n "s/.*($1).*\\[\\(.*\\)\\]/\\1/p" <<<"$2"
}
check_elf() { # label file soname allowed-NEEDED-regex
  local label=$1 file=$2 want_soname=$3 allowed=$4 dynamic soname needed unexpected
  dynamic=$(readelf -d "$file")
  soname=$(entries SONAME "$dynamic")
  [ "$soname" = "$want_soname" ] && pass "$label: SONAME $soname" || fail "$label: SONAME is '$soname', not $want_soname"
  if grep -qE '\((RUNPATH|RPATH)\)' <<<"$dynamic"; then
    fail "$label: has a run path: $(grep -E '\((RUNPATH|RPATH)\)' <<<"$dynamic" | sed 's/.*\[/[/' | tr '\n' ' ')"
  else
    pass "$label: no RUNPATH or RPATH"
  fi
  needed=$(entries NEEDED "$dynamic" | sort | tr '\n' ' ')
  unexpected=$(entries NEEDED "$dynamic" | grep -vxE "$allowed" || true)
  [ -z "$unexpected" ] && pass "$label: NEEDED: $needed" || fail "$label: NEEDED has $(echo $unexpected) (all: $needed)"
  if ldd "$file" | grep -qE "libswift|$toolchain_lib"; then
    fail "$label: ldd finds toolchain libraries: $(ldd "$file" | grep -E "libswift|$toolchain_lib" | tr -s ' \t' ' ')"
  else
    pass "$label: ldd: nothing from the toolchain ($(ldd "$file" | awk '{print $1}' | tr '\n' ' '))"
  fi
}
loader='ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1'
check_elf "front $KQ_CLIB_FILE" "$real" "$KQ_CLIB_SONAME" "libc\.so\.6|libdl\.so\.2|libpthread\.so\.0|$loader"
check_elf "engine $KQ_CLIB_ENGINE" "$engine" "$KQ_CLIB_ENGINE" "libc\.so\.6|libm\.so\.6|$loader"
[ "$(readlink "$lib/$KQ_CLIB_SONAME")" = "$KQ_CLIB_FILE" ] && [ "$(readlink "$lib/libkqueue.so")" = "$KQ_CLIB_SONAME" ] &&
  pass "symlinks libkqueue.so -> $KQ_CLIB_SONAME -> $KQ_CLIB_FILE" ||
  fail "symlinks: libkqueue.so -> $(readlink "$lib/libkqueue.so" || true), $KQ_CLIB_SONAME -> $(readlink "$lib/$KQ_CLIB_SONAME" || true)"
if readelf -d "$engine" | grep -q 'STATIC_TLS'; then
  fail "engine: STATIC_TLS (initial-exec TLS): dlopen could fail with 'cannot allocate memory in static TLS block'"
else
  pass "engine: no STATIC_TLS (safe to load with dlopen)"
fi

# 2. Exported symbols = the version scripts' lists; what the engine needs, the front has.
map_names() { sed -n '/global:/,/local:/p' "$1" | sed -e 's/global://' -e 's/local:.*//' | tr ';' '\n' | tr -d ' ' | grep -v '^$' | sort; }
expected=$(map_names scripts/libkqueue.map)
exported=$(nm -D --defined-only "$real" | awk '{print $3}' | sort)
if [ "$exported" = "$expected" ]; then
  pass "front exports exactly the $(wc -l <<<"$expected") symbols of scripts/libkqueue.map"
else
  fail "front exports differ from scripts/libkqueue.map: $(diff <(echo "$expected") <(echo "$exported") | grep '^[<>]' | tr '\n' ' ')"
fi
engine_expected=$(map_names scripts/libkqueue-engine.map)
engine_exported=$(nm -D --defined-only "$engine" | awk '{print $3}' | sort)
if [ "$engine_exported" = "$engine_expected" ]; then
  pass "engine exports exactly scripts/libkqueue-engine.map: $(echo $engine_exported)"
else
  fail "engine exports differ from scripts/libkqueue-engine.map: $(diff <(echo "$engine_expected") <(echo "$engine_exported") | grep '^[<>]' | tr '\n' ' ')"
fi
# The engine's strong undefined symbols without a version (its libc calls carry GLIBC_*
# versions; unversioned ones are what it expects from the front).
engine_undefined=$(nm -D --undefined-only "$engine" | awk '$1 == "U" && $2 !~ /@/ {print $2}' | sort)
not_in_front=$(comm -23 <(echo "$engine_undefined") <(echo "$exported") | grep -v '^$' || true)
if [ -n "$engine_undefined" ] && [ -z "$not_in_front" ]; then
  pass "the front defines all $(wc -l <<<"$engine_undefined") unversioned symbols the engine leaves undefined"
else
  fail "the engine needs symbols the front does not export: $(echo $not_in_front)"
fi
shim_exported=$(grep '^kq_\(shim\|aio\)_' <<<"$exported" || true)
shim_needed=$(grep '^kq_\(shim\|aio\)_' <<<"$engine_undefined" || true)
if [ "$shim_exported" = "$shim_needed" ]; then
  pass "the front's kq_shim_* and kq_aio_* exports are exactly the engine's $(wc -l <<<"$shim_needed") references"
else
  fail "kq_shim_*/kq_aio_* exported but not used by the engine: $(comm -23 <(echo "$shim_exported") <(echo "$shim_needed") | tr '\n' ' ')"
fi

# 2b. Every libc call the shim interposes is in the front's list: the C shim's objects define
#     them (the Swift engine defines no libc name), so a new interposer missing from the map
#     (it would be local: silently not interposing) fails here.
libc_names=$(nm -D --defined-only "$(cc -print-file-name=libc.so.6)" | awk '{print $3}' | sed 's/@.*//' | sort -u)
shim_defined=$(for object in "$clib_objects"/CKQueueShim.build/*.o; do nm --defined-only "$object" | awk '$2 == "T" {print $3}'; done | sort -u)
interposed=$(comm -12 <(echo "$libc_names") <(echo "$shim_defined"))
missing=$(comm -23 <(echo "$interposed") <(echo "$expected"))
if [ -n "$interposed" ] && [ -z "$missing" ]; then
  pass "every libc call the shim defines ($(wc -l <<<"$interposed")) is exported"
else
  fail "interposers missing from scripts/libkqueue.map: $(echo $missing)"
fi

# 3. A C program, with the toolchain hidden.
cflags=(-std=gnu11 -Wall -Werror -I "$root/Sources/CKQueue/include")
cc "${cflags[@]}" Examples/countdown.c -o "$out/countdown" -L "$lib" -lkqueue "-Wl,-rpath,$lib"
prog_needed=$(readelf -d "$out/countdown" | sed -n 's/.*(NEEDED).*\[\(libkqueue[^]]*\)\]/\1/p')
[ "$prog_needed" = "$KQ_CLIB_SONAME" ] && pass "a program linked with -lkqueue needs $prog_needed" ||
  fail "a program linked with -lkqueue needs '$prog_needed', not $KQ_CLIB_SONAME"
hidden() { # command...: runs it with an empty tmpfs over the toolchain's lib directory
  unshare --mount --propagation private -- sh -c 'mount -t tmpfs kq-hide "$0" && exec "$@"' "$toolchain_lib" "$@"
}
if command -v unshare >/dev/null 2>&1 && hidden true 2>/dev/null; then
  if hidden "$out/countdown" >"$out/countdown.log" 2>&1 && grep -q 'done$' "$out/countdown.log"; then
    pass "Examples/countdown.c runs with $toolchain_lib hidden (the engine loaded at its first kqueue())"
  else
    fail "Examples/countdown.c with $toolchain_lib hidden: $(tail -n 3 "$out/countdown.log")"
  fi
  if [ -f .build/debug/libkqueue.so ]; then
    cc "${cflags[@]}" Examples/countdown.c -o "$out/countdown-debug" -L .build/debug -lkqueue "-Wl,-rpath,$root/.build/debug"
    if hidden "$out/countdown-debug" >"$out/countdown-debug.log" 2>&1; then
      fail "the hiding does not work: the debug libkqueue.so (dynamic Swift runtime) still loads"
    else
      pass "the hiding works: the debug libkqueue.so fails without the toolchain ($(grep -o 'libswift[A-Za-z_]*\.so' "$out/countdown-debug.log" | head -n 1))"
    fi
  else
    echo "note: no .build/debug/libkqueue.so, the hiding is not cross-checked"
  fi
else
  echo "note: cannot mount in a private namespace here; checking what the loader opens instead"
  "$out/countdown" >"$out/countdown.log" 2>&1 && grep -q 'done$' "$out/countdown.log" &&
    pass "Examples/countdown.c runs" || fail "Examples/countdown.c: $(tail -n 3 "$out/countdown.log")"
  if LD_DEBUG=libs "$out/countdown" 2>&1 | grep -E 'calling init|trying file' | grep -qE "libswift|$toolchain_lib"; then
    fail "the loader opens toolchain files: $(LD_DEBUG=libs "$out/countdown" 2>&1 | grep -E "libswift|$toolchain_lib" | head -n 3)"
  else
    pass "LD_DEBUG=libs: the loader opens nothing from $toolchain_lib"
  fi
fi

# 4. Install into a temporary prefix, build with pkg-config, run.
prefix=$out/prefix
installed=0
if bash scripts/install.sh --no-build "$prefix" >"$out/install.log" 2>&1; then
  installed=1
  pass "scripts/install.sh --no-build $prefix"
  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
  version=$(pkg-config --modversion "$KQ_CLIB_PC" 2>&1 || true)
  [ "$version" = "$KQ_CLIB_VERSION" ] && pass "pkg-config $KQ_CLIB_PC: version $version" ||
    fail "pkg-config --modversion $KQ_CLIB_PC: '$version', not $KQ_CLIB_VERSION"
  flags=$(pkg-config --cflags --libs "$KQ_CLIB_PC")
  if grep -q -- "-rpath" <<<"$flags"; then fail "pkg-config flags force a run path: $flags"; else pass "pkg-config flags add no run path"; fi
  # shellcheck disable=SC2086 # the flags are words
  if cc -std=gnu11 -Wall -Werror Examples/countdown.c -o "$out/countdown-installed" $flags \
    "-Wl,-rpath,$(pkg-config --variable=libdir "$KQ_CLIB_PC")" >"$out/build.log" 2>&1 &&
    "$out/countdown-installed" >"$out/installed.log" 2>&1 && grep -q 'done$' "$out/installed.log"; then
    loaded=$(ldd "$out/countdown-installed" | awk '/libkqueue/ {print $3}')
    [ "$loaded" = "$prefix/lib/$KQ_CLIB_SONAME" ] && pass "built with \`pkg-config --cflags --libs $KQ_CLIB_PC\` ($flags), runs, loads $loaded" ||
      fail "the installed program loads '$loaded', not $prefix/lib/$KQ_CLIB_SONAME"
  else
    fail "build or run with \`pkg-config --cflags --libs $KQ_CLIB_PC\`: $(cat "$out/build.log" "$out/installed.log" 2>/dev/null | tail -n 5)"
  fi
  listing=$(cd "$prefix" && find . \( -type f -o -type l \) | sort | tr '\n' ' ')
  echo "     installed: $listing"
  unset PKG_CONFIG_PATH
else
  fail "scripts/install.sh --no-build $prefix: $(tail -n 5 "$out/install.log")"
fi

# 5. Relocation and loading, with scripts/clib-probe.c.
cc "${cflags[@]}" scripts/clib-probe.c -o "$out/probe" -L "$lib" -lkqueue
cc "${cflags[@]}" -DKQ_PROBE_DLOPEN scripts/clib-probe.c -o "$out/probe-dlopen"
engine_loaded_from() { # log: the directory the engine was loaded from (LD_DEBUG=files; a
  # path tried without success has no "generating link map" line)
  sed -n "s|.*file=\\(.*\\)/$KQ_CLIB_ENGINE .*generating link map.*|\\1|p" "$1" | head -n 1
}
probe() { # label expected-engine-dir env... -- args...: runs the probe, checks where the engine came from
  local label=$1 want=$2; shift 2
  local env=()
  while [ "$1" != "--" ]; do env+=("$1"); shift; done
  shift
  if env "${env[@]}" LD_DEBUG=files LD_DEBUG_OUTPUT="$out/ld" "$out/probe" "$@" >"$out/probe.log" 2>&1; then
    local from
    from=$(engine_loaded_from "$(ls "$out"/ld.* | head -n 1)")
    if [ -z "$want" ] || [ "$(readlink -f "$from")" = "$(readlink -f "$want")" ]; then
      pass "$label: $(cat "$out/probe.log")${from:+ (engine from $from)}"
    else
      fail "$label: the engine was loaded from '$from', not $want"
    fi
  else
    fail "$label: $(cat "$out/probe.log")"
  fi
  rm -f "$out"/ld.*
}
if [ $installed -eq 1 ]; then
  moved=$out/moved
  mv "$prefix" "$moved"
  probe "installed directory moved to $moved/lib" "$moved/lib" LD_LIBRARY_PATH="$moved/lib" -- works
  mkdir "$out/links"
  ln -s "$moved/lib/$KQ_CLIB_FILE" "$out/links/$KQ_CLIB_SONAME"
  probe "a directory with only a symbolic link to the front" "$moved/lib" LD_LIBRARY_PATH="$out/links" -- works
  (cd "$out" && probe "relative LD_LIBRARY_PATH=moved/lib, chdir(\"/\") before kqueue()" "$moved/lib" \
    LD_LIBRARY_PATH=moved/lib -- works-after-cd)
  mkdir "$out/front-only"
  cp "$moved/lib/$KQ_CLIB_FILE" "$out/front-only/"
  ln -s "$KQ_CLIB_FILE" "$out/front-only/$KQ_CLIB_SONAME"
  if LD_LIBRARY_PATH="$out/front-only" "$out/probe" elibacc >"$out/elibacc.out" 2>"$out/elibacc.err"; then
    if [ -s "$out/elibacc.err" ]; then
      fail "the front without the engine prints: $(head -n 3 "$out/elibacc.err")"
    else
      pass "the front alone: $(cat "$out/elibacc.out"), nothing printed"
    fi
  else
    fail "the front alone: $(cat "$out/elibacc.out" "$out/elibacc.err")"
  fi
  if "$out/probe-dlopen" dlopen "$moved/lib/$KQ_CLIB_SONAME" >"$out/dlopen.log" 2>&1; then
    pass "dlopen($KQ_CLIB_SONAME, RTLD_LOCAL) by a program not linked with it: $(cat "$out/dlopen.log")"
  else
    fail "dlopen($KQ_CLIB_SONAME, RTLD_LOCAL): $(cat "$out/dlopen.log")"
  fi
else
  fail "relocation checks not run: the install failed"
fi

finish
