#!/usr/bin/env bash
# Checks the deployable C library that scripts/build-clib.sh left in .build/clib (CI runs it
# after building; it fails, never skips, when the library is missing):
#
#   scripts/check-clib.sh
#
#  1. ELF: SONAME libkqueue.so.12; no RUNPATH or RPATH; NEEDED only libc, libm and the
#     dynamic loader (no libswift*, libstdc++, libgcc_s, libdispatch); the symlinks
#     libkqueue.so.12 and libkqueue.so lead to libkqueue.so.12.0.0.
#  2. Exports: exactly the symbols of scripts/libkqueue.map (the C ABI and the interposers).
#  3. A C program (Examples/countdown.c) linked with -lkqueue records NEEDED libkqueue.so.12
#     and runs with the Swift toolchain's lib directory hidden (an empty tmpfs mounted over
#     it in a private mount namespace); that the hiding works is shown by the debug
#     libkqueue.so of `swift build` (dynamic Swift runtime), which must then fail to load.
#     Without unshare(1) or the right to mount, `ldd` and LD_DEBUG=libs must show that
#     nothing is loaded from the toolchain instead (said so in the output).
#  4. scripts/install.sh --no-build into a temporary prefix; a program built with
#     `pkg-config --cflags --libs kqueue-freebsd` runs against the installed library.
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
clib_objects=$(cd "$root" && swift build -c release --scratch-path "$KQ_CLIB_SCRATCH" --show-bin-path)
if [ ! -f "$real" ]; then
  fail "no $KQ_CLIB_DIR/$KQ_CLIB_FILE: run scripts/build-clib.sh first"
  finish
  exit 1
fi
swift_bin=$(dirname "$(readlink -f "$(command -v swift)")")
toolchain_lib=$(cd "$swift_bin/../lib" && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/kq-check-clib.XXXXXX")
trap 'rm -rf "$out"' EXIT

# 1. ELF dynamic section and file names.
dynamic=$(readelf -d "$real")
soname=$(sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p' <<<"$dynamic")
[ "$soname" = "$KQ_CLIB_SONAME" ] && pass "SONAME $soname" || fail "SONAME is '$soname', not $KQ_CLIB_SONAME"
if grep -qE '\((RUNPATH|RPATH)\)' <<<"$dynamic"; then
  fail "has a run path: $(grep -E '\((RUNPATH|RPATH)\)' <<<"$dynamic" | sed 's/.*\[/[/' | tr '\n' ' ')"
else
  pass "no RUNPATH or RPATH"
fi
needed=$(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<<"$dynamic" | sort | tr '\n' ' ')
unexpected=$(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<<"$dynamic" | grep -vxE 'libc\.so\.6|libm\.so\.6|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1' || true)
[ -z "$unexpected" ] && pass "NEEDED: $needed" || fail "NEEDED has $(echo $unexpected) (all: $needed)"
[ "$(readlink "$lib/$KQ_CLIB_SONAME")" = "$KQ_CLIB_FILE" ] && [ "$(readlink "$lib/libkqueue.so")" = "$KQ_CLIB_SONAME" ] &&
  pass "symlinks libkqueue.so -> $KQ_CLIB_SONAME -> $KQ_CLIB_FILE" ||
  fail "symlinks: libkqueue.so -> $(readlink "$lib/libkqueue.so" || true), $KQ_CLIB_SONAME -> $(readlink "$lib/$KQ_CLIB_SONAME" || true)"
if ldd "$real" | grep -qE "libswift|$toolchain_lib"; then
  fail "ldd finds toolchain libraries: $(ldd "$real" | grep -E "libswift|$toolchain_lib" | tr -s ' \t' ' ')"
else
  pass "ldd: nothing from the toolchain ($(ldd "$real" | awk '{print $1}' | tr '\n' ' '))"
fi

# 2. Exported symbols = the version script's list.
expected=$(sed -n '/global:/,/local:/p' scripts/libkqueue.map | sed -e 's/global://' -e 's/local:.*//' | tr ';' '\n' | tr -d ' ' | grep -v '^$' | sort)
exported=$(nm -D --defined-only "$real" | awk '{print $3}' | sort)
if [ "$exported" = "$expected" ]; then
  pass "exports exactly the $(wc -l <<<"$expected") symbols of scripts/libkqueue.map"
else
  fail "exports differ from scripts/libkqueue.map: $(diff <(echo "$expected") <(echo "$exported") | grep '^[<>]' | tr '\n' ' ')"
fi

# 2b. Every libc call the shim interposes is in that list: the C shim's objects define them
#     (the Swift engine defines no libc name), so a new interposer missing from the map (it
#     would be local: silently not interposing) fails here.
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
    pass "Examples/countdown.c runs with $toolchain_lib hidden"
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
if bash scripts/install.sh --no-build "$prefix" >"$out/install.log" 2>&1; then
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
else
  fail "scripts/install.sh --no-build $prefix: $(tail -n 5 "$out/install.log")"
fi

finish
