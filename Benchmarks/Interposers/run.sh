#!/usr/bin/env bash
# The socket-I/O interposers' cost per call (interposer_cost.c), against a release libkqueue.so.
#   Benchmarks/Interposers/run.sh [--lib DIR]   (default: builds .build/release's libkqueue.so)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
lib=""
if [ "${1:-}" = "--lib" ]; then lib="$2"; fi
if [ -z "$lib" ]; then
  (cd "$root" && swift build -c release --product kqueue >/dev/null)
  lib="$(cd "$root" && swift build -c release --show-bin-path)"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cc -std=gnu11 -O2 -Wall -Werror -I "$root/Sources/CKQueue/include" "$root/Benchmarks/Interposers/interposer_cost.c" \
  -o "$out/interposer_cost" -L "$lib" -lkqueue "-Wl,-rpath,$lib"
"$out/interposer_cost"
