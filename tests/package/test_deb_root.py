"""The Debian package installed into a fresh Debian 12 root (docs/operations.md
"Debian package"): debootstrap --variant=minbase bookworm from the mirror
this machine's apt uses, then `apt-get install ./*.deb` there (apt resolves
the dependencies from the mirror, as on a new machine) together with gcc
and pkg-config. Checks: every package "install ok installed", the postinst
made the system user stpd, `stpd --version` and `stpd -t` on the shipped
/etc/stpd/stpd.conf; then, in a new network, mount and pid namespace (only
its loopback, nothing of this machine's network), stpd started as root
with only the capability bounding set of the shipped unit (as systemd
would start it) from the shipped configuration (no `user` key) drops to
the user stpd by itself: every thread runs as stpd with CapEff 0 and the
broker process exists, as stpd with only CAP_DAC_READ_SEARCH and
CAP_NET_BIND_SERVICE; it relays one CONNECT from the packaged `stp` to an
echo server on that loopback, and examples/connect.c built in the root
with `pkg-config --cflags --libs libstp` alone runs through it.
Mounts live in private mount namespaces and vanish with them; the root is
removed even when a step fails. About a minute with a nearby mirror."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO, run

SUITE = "bookworm"
ECHO_PORT = 7777


def mirror():
    """The first URI of this machine's apt sources for SUITE (deb822 or
    one-line format), so the root comes from where apt already fetches."""
    d = "/etc/apt/sources.list.d"
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if not name.endswith(".sources"):
            continue
        for stanza in open(os.path.join(d, name)).read().split("\n\n"):
            f = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if SUITE in f.get("Suites", "").split() and "deb" in f.get("Types", "").split():
                return f["URIs"].split()[0]
    if os.path.exists("/etc/apt/sources.list"):
        for ln in open("/etc/apt/sources.list"):
            w = ln.split()
            if len(w) >= 3 and w[0] == "deb" and w[2] == SUITE:
                return w[1]
    return "http://deb.debian.org/debian"


def in_root(root, script, net=True, timeout=600):
    """Runs the shell SCRIPT chrooted into ROOT in a private mount namespace
    with /proc and /dev; net=False adds a new network namespace (loopback
    up) and a pid namespace, whose end kills whatever SCRIPT left running."""
    ns = ["unshare", "--mount", "--propagation", "private"]
    if not net:
        ns += ["--net", "--pid", "--fork"]
    outer = ("set -e; [ \"$NEWNET\" = 1 ] && ip link set lo up; "
             "mount -t proc proc \"$1/proc\"; mount --rbind /dev \"$1/dev\"; "
             "exec chroot \"$1\" /bin/sh -ec \"$2\"")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
           "LC_ALL": "C", "NEWNET": "0" if net else "1"}
    return run(ns + ["sh", "-c", outer, "sh", root, script], env=env, timeout=timeout)


def leftover_mounts(root):
    return [ln.split()[4] for ln in open("/proc/self/mountinfo")
            if ln.split()[4].startswith(root + "/")]


@pytest.fixture(scope="module")
def root(debs, tmp_path_factory):
    if not shutil.which("debootstrap"):
        pytest.fail("debootstrap missing (scripts/deps.sh installs it)")
    if os.geteuid() != 0:
        pytest.fail("debootstrap and chroot need root")
    path = str(tmp_path_factory.mktemp("debroot") / "root")
    try:
        r = run(["debootstrap", "--variant=minbase", SUITE, path, mirror()], timeout=600)
        assert r.returncode == 0, (r.stdout + r.stderr).decode()[-3000:]
        # No service starts from maintainer scripts (policy-rc.d, as in
        # Debian's own build chroots): the test starts stpd itself.
        with open(os.path.join(path, "usr/sbin/policy-rc.d"), "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(os.path.join(path, "usr/sbin/policy-rc.d"), 0o755)
        os.makedirs(os.path.join(path, "tmp/debs"))
        for pkg in ("stpd", "stp", "libstp2", "libstp-dev"):
            shutil.copy(debs[pkg], os.path.join(path, "tmp/debs"))
        shutil.copy(os.path.join(REPO, "examples/connect.c"), os.path.join(path, "tmp"))
        r = in_root(path, "apt-get update -q; apt-get install -y -q --no-install-recommends "
                    "/tmp/debs/*.deb gcc libc6-dev pkg-config")
        assert r.returncode == 0, (r.stdout + r.stderr).decode()[-4000:]
        yield path
    finally:
        for m in reversed(leftover_mounts(path)):
            subprocess.run(["umount", "-l", m])
        assert not leftover_mounts(path)
        shutil.rmtree(path, ignore_errors=True)


def test_installed(root):
    r = in_root(root, "dpkg-query -W -f='${Package} ${Status}\\n' stpd stp libstp2 libstp-dev")
    assert r.returncode == 0, r.stderr
    got = dict(ln.split(" ", 1) for ln in r.stdout.decode().splitlines())
    assert got == {p: "install ok installed" for p in ("stpd", "stp", "libstp2", "libstp-dev")}
    r = in_root(root, "getent passwd stpd")
    assert r.returncode == 0, "postinst made no user stpd"
    f = r.stdout.decode().strip().split(":")
    assert int(f[2]) < 1000 and f[6] == "/usr/sbin/nologin", f  # a system user
    r = in_root(root, "stpd --version; stp --version; stpify --version")
    assert r.returncode == 0, r.stderr
    assert [ln.split()[0] for ln in r.stdout.decode().splitlines() if " 0." in ln] == \
        ["stpd", "stp", "stpify"], r.stdout
    r = in_root(root, "stpd -t -c /etc/stpd/stpd.conf")
    assert r.returncode == 0 and b"configuration OK" in r.stdout + r.stderr, r.stderr


# Inside the chroot, in its own network: a Perl echo server (perl-base is in
# every Debian root), stpd as the user stpd, then one CONNECT through it
# from `stp connect` and one from the example built with pkg-config.
RELAY = r"""
perl -MIO::Socket::INET -e '
  $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:%(port)d", Listen => 5, ReuseAddr => 1) or die;
  while ($c = $s->accept) { $l = <$c>; print $c $l; close $c }' &
# As the unit starts it: root, with the bounding set of its
# CapabilityBoundingSet= (lib/systemd/system/stpd.service) and no new privileges.
CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' /lib/systemd/system/stpd.service |
       tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
echo "bounding $CAPS"
setpriv --bounding-set=-all,$CAPS --no-new-privs stpd -c /etc/stpd/stpd.conf 2>/tmp/stpd.log &
STPD=$!
up() { perl -MIO::Socket::INET -e 'exit !IO::Socket::INET->new("127.0.0.1:$ARGV[0]")' $1; }
i=0; until up 1080 && up %(port)d && grep -q ready /tmp/stpd.log; do
  i=$((i+1)); [ $i -lt 300 ] || exit 9; sleep 0.1; done
caps() { awk '/^Uid:/ {u=$2} /^CapEff:/ {e=$2} /^CapBnd:/ {b=$2} END {print u, e, b}' $1; }
for t in /proc/$STPD/task/*; do echo "task $(caps $t/status)"; done
for c in /proc/[0-9]*/comm; do
  if [ "$(cat $c 2>/dev/null)" = stpd-broker ]; then echo "broker $(caps ${c%%/comm}/status)"; fi
done
export STP_PROXY=socks5h://127.0.0.1:1080
echo "stp $(echo from-stp | stp connect 127.0.0.1 %(port)d)"
gcc -o /tmp/connect /tmp/connect.c $(pkg-config --cflags --libs libstp)
echo "example $(/tmp/connect 127.0.0.1 %(port)d from-the-example)"
kill $STPD; wait $STPD || true
cat /tmp/stpd.log >&2
""" % {"port": ECHO_PORT}


def test_relays_in_root(root):
    r = in_root(root, RELAY, net=False, timeout=300)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, out + err[-3000:]
    uid = in_root(root, "id -u stpd").stdout.decode().strip()
    assert "bounding +net_bind_service,+dac_read_search,+setuid,+setgid,+setpcap\n" in out, out
    # Every thread: uid stpd, no capability, empty bounding set.
    tasks = re.findall(r"^task (.*)$", out, re.M)
    assert len(tasks) >= 3 and set(tasks) == {"%s 0000000000000000 0000000000000000" % uid}, out
    # The broker (src/ext/compartment): stpd too, CAP_DAC_READ_SEARCH and
    # CAP_NET_BIND_SERVICE (bits 2 and 10) only.
    assert re.findall(r"^broker (.*)$", out, re.M) == \
        ["%s 0000000000000404 0000000000000000" % uid], out
    assert "running as stpd: the default without `user`, the account made for stpd" in err, \
        err[-3000:]
    assert "stp from-stp\n" in out, out + err[-3000:]
    assert "example from-the-example\n" in out, out + err[-3000:]
    # both CONNECTs are in stpd's log, and nothing went wrong
    assert len(re.findall(r"127\.0\.0\.1:%d" % ECHO_PORT, err)) >= 2, err[-3000:]
