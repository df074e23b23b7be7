#!/usr/bin/env bash
# Builds libkqueue.so (release) and installs it with <sys/event.h> and a pkg-config file.
#   scripts/install.sh [PREFIX]        (default PREFIX: /usr/local)
# Then: cc prog.c $(pkg-config --cflags --libs libkqueue)
set -euo pipefail
prefix="${1:-/usr/local}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
swift build -c release --product kqueue
bin="$(swift build -c release --show-bin-path)"
install -d "$prefix/lib/pkgconfig" "$prefix/include/sys"
install -m 0755 "$bin/libkqueue.so" "$prefix/lib/libkqueue.so"
install -m 0644 Sources/CKQueue/include/sys/event.h "$prefix/include/sys/event.h"
sed "s|@PREFIX@|$prefix|" scripts/libkqueue.pc.in > "$prefix/lib/pkgconfig/libkqueue.pc"
command -v ldconfig >/dev/null 2>&1 && ldconfig "$prefix/lib" 2>/dev/null || true
echo "installed libkqueue.so, sys/event.h and libkqueue.pc under $prefix"
echo "compile with: cc prog.c \$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs libkqueue)"
