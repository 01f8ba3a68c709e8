#!/usr/bin/env bash
# Builds stpd, stp and stpify in build/ (the programs only: no tests) and
# runs stpd in the foreground; arguments go to stpd.
#   ./scripts/run-stpd.sh                 embedded default: 127.0.0.1:1080,
#                                         no authentication, loopback clients
#   ./scripts/run-stpd.sh -c stpd.conf    a config file (docs/config.md)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh --build-only >&2
if [ ! -f build/build.ninja ]; then
	meson setup build >&2
fi
# README's Usage runs build/src/cli/stp and build/src/shim/stpify (which
# loads libstpify.so from next to it).
ninja -C build src/server/stpd src/cli/stp src/shim/stpify src/shim/libstpify.so >&2
exec build/src/server/stpd "$@"
