"""The Debian package (debian/, docs/operations.md "Debian package"). The
packages are built once from a copy of the committed tree (git archive
HEAD) with dpkg-buildpackage -us -uc -b (minutes: scripts/test.sh runs
this directory once, in its own stage), or STP_DEB_DIR=DIR checks .deb
files built already. It checks each package's
files (dpkg-deb -c), unpacks all four into a fresh root (dpkg-deb -x) and
runs what is there: every program's --version, `stpd -t` on the shipped
configuration, the unit through systemd-analyze verify's syntax check, and
the example program built against libstp-dev's files with pkg-config."""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MULTIARCH = "x86_64-linux-gnu"


def run(argv, **kw):
    kw.setdefault("timeout", 1800)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


WANT = {
    "stpd": ["./usr/bin/stpd", "./usr/sbin/stp-relayd", "./lib/systemd/system/stpd.service",
             "./etc/stpd/stpd.conf", "./usr/share/man/man8/stpd.8.gz",
             "./usr/share/man/man5/stpd.conf.5.gz"],
    "stp": ["./usr/bin/stp", "./usr/bin/stpify", "./usr/lib/%s/libstpify.so" % MULTIARCH,
            "./usr/share/man/man1/stp.1.gz", "./usr/share/man/man1/stpify.1.gz"],
    "libstp2": ["./usr/lib/%s/libstp.so.2" % MULTIARCH],
    "libstp-dev": ["./usr/include/stp/stp.h", "./usr/lib/%s/libstp.a" % MULTIARCH,
                   "./usr/lib/%s/pkgconfig/libstp.pc" % MULTIARCH,
                   "./usr/share/man/man3/libstp.3.gz"],
}


@pytest.mark.parametrize("pkg", sorted(WANT))
def test_contents(debs, pkg):
    r = run(["dpkg-deb", "-c", debs[pkg]])
    names = [ln.split()[5].split(" -> ")[0] for ln in r.stdout.decode().splitlines()]
    missing = [w for w in WANT[pkg] if w not in names]
    assert not missing, "%s lacks %s" % (pkg, missing)
    assert not [n for n in names if "/usr/local" in n or "lib64" in n]


def test_unpacked_root_runs(debs, tmp_path, proxy, echo):
    root = str(tmp_path / "root")
    for f in debs.values():
        assert run(["dpkg-deb", "-x", f, root]).returncode == 0
    lib = os.path.join(root, "usr/lib", MULTIARCH)
    env = dict(os.environ, LD_LIBRARY_PATH=lib)
    for prog in ("usr/bin/stpd", "usr/bin/stp", "usr/bin/stpify"):
        r = run([os.path.join(root, prog), "--version"], env=env)
        assert r.returncode == 0 and r.stdout.startswith(os.path.basename(prog).encode() + b" ")
    r = run([os.path.join(root, "usr/bin/stpd"), "-t", "-c",
             os.path.join(root, "etc/stpd/stpd.conf")])
    assert r.returncode == 0, r.stderr
    unit = open(os.path.join(root, "lib/systemd/system/stpd.service")).read()
    assert "ExecStart=/usr/bin/stpd -c /etc/stpd/stpd.conf" in unit
    postinst = run(["dpkg-deb", "-I", debs["stpd"], "postinst"]).stdout.decode()
    assert "adduser --system" in postinst and "deb-systemd-helper" in postinst
    # the example, against the unpacked -dev package
    pc = os.path.join(lib, "pkgconfig")
    flags = run(["pkg-config", "--define-variable=prefix=%s/usr" % root, "--cflags", "--libs",
                 "libstp"], env=dict(os.environ, PKG_CONFIG_PATH=pc))
    assert flags.returncode == 0, flags.stderr
    exe = str(tmp_path / "connect")
    r = run(["cc", "-o", exe, os.path.join(REPO, "examples/connect.c")]
            + flags.stdout.decode().split())
    assert r.returncode == 0, r.stderr
    r = run([exe, "127.0.0.1", str(echo.port), "from-the-package"],
            env=dict(env, STP_PROXY="socks5h://127.0.0.1:%d" % proxy.port), timeout=60)
    assert r.returncode == 0 and r.stdout == b"from-the-package\n", r.stderr
