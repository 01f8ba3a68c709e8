"""`meson install` (docs/operations.md "Installing"): into a fresh root
(DESTDIR) it puts stpd, stp, stpify, libstp (shared and static), the header,
the pkg-config file, the five manual pages and the systemd unit; the library
directory is one that Debian's dynamic linker and pkg-config search for
that prefix (not lib64); examples/connect.c builds against the installed
library with pkg-config alone and runs through stpd; every program answers
--version; the unit's sandbox is scored by systemd-analyze."""

import glob
import json
import os
import re
import shutil
import subprocess

import pytest

import servers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _stpd_only():
    if servers.server_kind() != "stpd":
        pytest.skip("installs stpd (running against %s)" % servers.server_kind())


def build_dir():
    return os.path.dirname(os.path.dirname(os.path.dirname(servers.stpd_binary())))


def run(argv, **kw):
    kw.setdefault("timeout", 300)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(destdir, prefix, libdir, project version) after meson install."""
    bd = build_dir()
    if not os.path.exists(os.path.join(bd, "meson-private")):
        pytest.skip("%s is not a meson build directory" % bd)
    dest = str(tmp_path_factory.mktemp("root"))
    r = run(["meson", "install", "-C", bd, "--destdir", dest, "--no-rebuild", "--quiet"])
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    opts = {o["name"]: o["value"] for o in json.loads(
        run(["meson", "introspect", "--buildoptions", bd]).stdout)}
    info = json.loads(run(["meson", "introspect", "--projectinfo", bd]).stdout)
    return dest, opts["prefix"], opts["libdir"], info["version"]


def installed_sanitize():
    opts = {o["name"]: o["value"] for o in json.loads(
        run(["meson", "introspect", "--buildoptions", build_dir()]).stdout)}
    return opts.get("b_sanitize", "none")


def test_files(installed):
    dest, prefix, libdir, _ = installed
    root = dest + prefix
    want = ["bin/stpd", "bin/stp", "bin/stpify", "include/stp/stp.h",
            libdir + "/libstp.so", libdir + "/libstp.so.2", libdir + "/libstp.a",
            libdir + "/libstpify.so", libdir + "/pkgconfig/libstp.pc",
            "share/man/man8/stpd.8", "share/man/man5/stpd.conf.5", "share/man/man1/stp.1",
            "share/man/man1/stpify.1", "share/man/man3/libstp.3",
            "lib/systemd/system/stpd.service"]
    missing = [w for w in want if not os.path.exists(os.path.join(root, w))]
    assert not missing, "not installed: %s" % missing
    unit = open(os.path.join(root, "lib/systemd/system/stpd.service")).read()
    assert "ExecStart=%s/bin/stpd -c /etc/stpd/stpd.conf" % prefix in unit
    assert "@bindir@" not in unit


def ld_so_dirs(path="/etc/ld.so.conf"):
    """The directories ld.so.conf names (following `include`), and the
    dynamic linker's own /lib and /usr/lib."""
    out = ["/lib", "/usr/lib"]
    for ln in open(path).read().splitlines():
        ln = ln.split("#")[0].strip()
        if ln.startswith("include "):
            for inc in sorted(glob.glob(os.path.join("/etc", ln.split(None, 1)[1]))):
                out += ld_so_dirs(inc)[2:]
        elif ln:
            out.append(os.path.normpath(ln))
    return out


def test_libdir_is_searched(installed):
    """The bug this guards against: meson's lib64 on a Debian without
    dpkg-dev, where neither ld.so nor pkg-config look."""
    _, prefix, libdir, _ = installed
    full = os.path.normpath(os.path.join(prefix, libdir))
    assert not libdir.endswith("lib64")
    pc_path = run(["pkg-config", "--variable", "pc_path", "pkg-config"]).stdout.decode()
    assert full + "/pkgconfig" in pc_path.strip().split(":"), pc_path
    dirs = ld_so_dirs()
    assert full in dirs, "ld.so does not search %s (it searches %s)" % (full, dirs)


def test_man_pages_render(installed):
    dest, prefix, _, _ = installed
    pages = glob.glob(os.path.join(dest + prefix, "share/man/man*/*"))
    assert len(pages) == 5
    for p in pages:
        r = run(["man", "--warnings", "-l", p], env=dict(os.environ, MANWIDTH="80",
                                                          MANPAGER="cat", LC_ALL="C.UTF-8"))
        assert r.returncode == 0 and not r.stderr, (p, r.stderr.decode())
        assert b"NAME" in r.stdout and b"SEE ALSO" in r.stdout


def test_versions(installed):
    dest, prefix, _, version = installed
    for prog in ("stpd", "stp", "stpify"):
        r = run([os.path.join(dest + prefix, "bin", prog), "--version"],
                env=dict(os.environ, STPIFY_LIB=""))
        assert r.returncode == 0, (prog, r.stderr)
        assert r.stdout.decode().splitlines()[0] == "%s %s" % (prog, version)


def test_example_builds_against_installed_library(installed, tmp_path, proxy, echo):
    dest, prefix, libdir, _ = installed
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.fail("no C compiler")
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(dest + prefix, libdir, "pkgconfig"))
    flags = run(["pkg-config", "--define-variable=prefix=%s" % (dest + prefix), "--cflags",
                 "--libs", "libstp"], env=env)
    assert flags.returncode == 0, flags.stderr
    flags = flags.stdout.decode().split()
    assert "-I%s/include" % (dest + prefix) in flags
    exe = str(tmp_path / "connect")
    # A sanitized build's libstp needs its runtime linked first, as meson does.
    san = installed_sanitize()
    san = ["-fsanitize=%s" % san] if san not in ("none", "") else []
    r = run([cc, "-o", exe, os.path.join(REPO, "examples/connect.c")] + san + flags)
    assert r.returncode == 0, r.stderr.decode()
    # The installed copy is the one the program loads (LD_LIBRARY_PATH,
    # as for any library installed outside the linker's directories).
    lib = os.path.join(dest + prefix, libdir)
    run_env = dict(os.environ, LD_LIBRARY_PATH=lib,
                   STP_PROXY="socks5h://127.0.0.1:%d" % proxy.port)
    ldd = run(["ldd", exe], env=run_env).stdout.decode()
    assert re.search(r"libstp\.so\.2 => %s/libstp\.so\.2" % re.escape(lib), ldd), ldd
    r = run([exe, "127.0.0.1", str(echo.port), "through-the-installed-libstp"], env=run_env,
            timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"through-the-installed-libstp\n"


def test_unit_security_score(installed):
    """systemd-analyze security --offline: the score goes in
    docs/operations.md; anything at or above 5.0 ("MEDIUM") fails."""
    sa = shutil.which("systemd-analyze")
    if not sa:
        pytest.skip("systemd-analyze not installed")
    dest, prefix, _, _ = installed
    unit = os.path.join(dest + prefix, "lib/systemd/system/stpd.service")
    r = run([sa, "security", "--offline=true", "--no-pager", unit])
    out = r.stdout.decode() + r.stderr.decode()
    m = re.search(r"Overall exposure level for stpd\.service: (\d+\.\d+) (\w+)", out)
    assert m, out[-3000:]
    print("systemd-analyze security: %s %s" % (m.group(1), m.group(2)))
    assert float(m.group(1)) < 5.0, out[-3000:]
