#!/usr/bin/env bash
# Installs the Debian 12 packages stp needs.
#   scripts/deps.sh               build + test set (what scripts/test.sh needs)
#   scripts/deps.sh --build-only  just what building stpd needs
#   scripts/deps.sh --list        print the package list and exit
# Runs apt-get only when something is missing, so repeated runs are quick.
set -euo pipefail

BUILD_PKGS=(
	meson ninja-build pkg-config gcc clang libclang-rt-14-dev
	libev-dev libc-ares-dev libssl-dev libcrypt-dev libpam0g-dev libcmocka-dev
	libmicrohttpd-dev libnftables-dev libnetfilter-conntrack-dev libmnl-dev
	libkrb5-dev libldap-dev libradcli-dev
	libnghttp2-dev
	libseccomp-dev
)
TEST_PKGS=(
	curl python3 python3-pytest python3-socks python3-python-socks python3-async-timeout
	proxychains4 dante-client dante-server dnsmasq-base haproxy microsocks chromium
	iproute2 netcat-openbsd procps util-linux
	openssl stunnel4 tshark dnsutils python3-cryptography gnuplot-nox socat nftables
	nodejs wget mount universal-ctags tor
	conntrack iperf3 krb5-kdc krb5-admin-server krb5-user python3-gssapi
	freeradius freeradius-utils slapd ldap-utils
	ffmpeg
	python3-pyftpdlib
	openvpn
	man-db systemd dpkg-dev debhelper
	python3-h2
	debootstrap
)

mode=all
case "${1:-}" in
--build-only) mode=build ;;
--list) mode=list ;;
"") ;;
*)
	echo "usage: $0 [--build-only|--list]" >&2
	exit 2
	;;
esac

pkgs=("${BUILD_PKGS[@]}")
[ "$mode" = build ] || pkgs+=("${TEST_PKGS[@]}")
if [ "$mode" = list ]; then
	printf '%s\n' "${pkgs[@]}"
	exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#pkgs[@]} packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || {
		echo "deps: run as root (or install sudo)" >&2
		exit 1
	}
	SUDO=sudo
fi

# dante-server's, haproxy's and tor's maintainer scripts would start their daemons
# (danted on port 1080, where stpd's default listens). Deny service starts
# while installing, through the standard policy-rc.d hook, unless the
# machine already has its own policy.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# added by stp scripts/deps.sh during apt-get install\nexit 101\n' |
		$SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	made_policy=1
fi
cleanup() { [ -z "$made_policy" ] || $SUDO rm -f "$policy"; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture: no.
echo "wireshark-common wireshark-common/install-setuid boolean false" |
	$SUDO debconf-set-selections 2>/dev/null || true
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
