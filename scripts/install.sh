#!/usr/bin/env bash
# Installs the deployable C library (scripts/build-clib.sh: two files), <sys/event.h>, <sys/procdesc.h> and a
# pkg-config file:
#   scripts/install.sh [--no-build] [PREFIX]     (default PREFIX: /usr/local)
#
#   PREFIX/lib/libkqueue.so.12.0.0               the front (SONAME libkqueue.so.12, no RUNPATH)
#   PREFIX/lib/libkqueue.so.12 -> ...12.0.0      what programs load
#   PREFIX/lib/libkqueue.so -> libkqueue.so.12   what -lkqueue links with
#   PREFIX/lib/libkqueue-engine.so.12.0.0        the engine, loaded by the front from its own
#                                                directory on the first kqueue()
#   PREFIX/include/sys/event.h
#   PREFIX/include/sys/procdesc.h
#   PREFIX/lib/pkgconfig/kqueue-freebsd.pc       cc prog.c $(pkg-config --cflags --libs kqueue-freebsd)
#
# --no-build installs what scripts/build-clib.sh left in .build/clib (e.g. as root, on a
# machine where the build ran as another user). DESTDIR is honoured (staged installs: files
# go to DESTDIR/PREFIX, the .pc file names PREFIX). The library needs no Swift toolchain at
# run time, and is relocatable: PREFIX/lib may be moved or copied anywhere as long as the two
# files stay together (the front finds the engine next to itself, with no run path). Files of
# an earlier version are left in place (a running program may still use them; install(1)
# replaces a file by a new one, never rewrites it in place). A libkqueue.pc that an older
# version of this script installed is removed (that name is the other libkqueue's; see
# docs/C-LIBRARY.md).
set -euo pipefail
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
prefix="${1:-/usr/local}"
case "$prefix" in /*) ;; *) echo "install.sh: PREFIX must be an absolute path" >&2; exit 2 ;; esac
destdir="${DESTDIR:-}"
cd "$(dirname "$0")/.."
# shellcheck source=clib.env
. scripts/clib.env

[ $build -eq 1 ] && bash scripts/build-clib.sh
for file in "$KQ_CLIB_FILE" "$KQ_CLIB_ENGINE"; do
  [ -f "$KQ_CLIB_DIR/$file" ] || { echo "install.sh: no $KQ_CLIB_DIR/$file (run scripts/build-clib.sh)" >&2; exit 2; }
done

lib="$destdir$prefix/lib"
install -d "$lib/pkgconfig" "$destdir$prefix/include/sys"
# The engine first: a front is never installed without the engine it loads.
install -m 0755 "$KQ_CLIB_DIR/$KQ_CLIB_ENGINE" "$lib/$KQ_CLIB_ENGINE"
install -m 0755 "$KQ_CLIB_DIR/$KQ_CLIB_FILE" "$lib/$KQ_CLIB_FILE"
ln -sfn "$KQ_CLIB_FILE" "$lib/$KQ_CLIB_SONAME"
ln -sfn "$KQ_CLIB_SONAME" "$lib/libkqueue.so"
install -m 0644 Sources/CKQueue/include/sys/event.h "$destdir$prefix/include/sys/event.h"
install -m 0644 Sources/CKQueue/include/sys/procdesc.h "$destdir$prefix/include/sys/procdesc.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$KQ_CLIB_VERSION|" -e "s|@SONAME@|$KQ_CLIB_SONAME|g" \
  scripts/kqueue-freebsd.pc.in > "$lib/pkgconfig/$KQ_CLIB_PC.pc"
if [ -f "$lib/pkgconfig/libkqueue.pc" ] && grep -q "KQueue's C ABI" "$lib/pkgconfig/libkqueue.pc"; then
  rm -f "$lib/pkgconfig/libkqueue.pc"
  echo "removed $lib/pkgconfig/libkqueue.pc (installed by an older version of this script)"
fi
# Refresh the loader's cache (it only lists the directories of /etc/ld.so.conf, so this is
# harmless for any other prefix).
if [ -z "$destdir" ] && [ "$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null 2>&1; then ldconfig || true; fi

echo "installed $KQ_CLIB_FILE ($KQ_CLIB_SONAME, libkqueue.so), $KQ_CLIB_ENGINE, sys/event.h, sys/procdesc.h and $KQ_CLIB_PC.pc under $destdir$prefix"
echo "compile with: cc prog.c \$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs $KQ_CLIB_PC)"
echo "(a PREFIX the dynamic loader does not search also needs -Wl,-rpath,$prefix/lib or LD_LIBRARY_PATH)"
