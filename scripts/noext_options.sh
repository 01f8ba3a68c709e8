#!/bin/sh
# Prints -Dext_NAME=false for every extension option in meson_options.txt,
# so the no-extension build leaves out each module, including new ones.
cd "$(dirname "$0")/.." || exit 1
sed -n "s/^option('\(ext_[a-z_0-9]*\)'.*/-D\1=false/p" meson_options.txt | tr '\n' ' '
