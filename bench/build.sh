#!/bin/sh
# build.sh - builds bench/loadgen without Meson, straight from the sources
# (the codec in src/proto is compiled in; OpenSSL 3 for --tls). Used by bench/compare, so the
# benchmark works whether or not bench/meson.build is hooked into the
# top-level build. Usage: bench/build.sh [OUTDIR] (default: build-bench/bench)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${1:-"$root/build-bench/bench"}
cc=${CC:-cc}
mkdir -p "$out"
# shellcheck disable=SC2086
$cc -std=c17 -O2 -g -D_GNU_SOURCE -pthread \
	-Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wvla -Wpointer-arith -Wno-unused-parameter ${CFLAGS:-} \
	-I"$root/src" -I"$here" \
	-o "$out/loadgen" \
	"$here"/loadgen.c "$here"/lg_*.c \
	"$root"/src/proto/addr.c "$root"/src/proto/greeting.c "$root"/src/proto/request.c \
	"$root"/src/proto/udp.c "$root"/src/proto/names.c "$root"/src/proto/userpass.c \
	-lssl -lcrypto -lnghttp2
echo "$out/loadgen"
