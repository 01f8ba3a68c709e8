"""The package tests use the end-to-end tests' fixtures (a dnsmasq, an echo
service, stpd started by proxy_factory): loaded from tests/integration."""

import glob
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
IT = os.path.join(os.path.dirname(HERE), "integration")
sys.path.insert(0, IT)

_spec = importlib.util.spec_from_file_location("integration_conftest",
                                               os.path.join(IT, "conftest.py"))
_it = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_it)

pytest_configure = _it.pytest_configure
session_dir, dns, echo, port = _it.session_dir, _it.dns, _it.echo, _it.port
proxy_factory, proxy = _it.proxy_factory, _it.proxy
# autouse: XDG_CACHE_HOME of each test's own, so libstp's disk caches
# (feature discovery, auto-configuration) never come from the user's home or
# an earlier test. test_debian's programs inherit os.environ; test_deb_root's
# run in the chroot with neither HOME nor XDG_CACHE_HOME: no cache at all.
own_cache_dir = _it.own_cache_dir

REPO = os.path.dirname(os.path.dirname(HERE))


def run(argv, **kw):
    kw.setdefault("timeout", 1800)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.fixture(scope="session")
def debs(tmp_path_factory):
    d = os.environ.get("STP_DEB_DIR")
    if not d:
        if not shutil.which("dpkg-buildpackage"):
            pytest.fail("dpkg-buildpackage missing (scripts/deps.sh installs dpkg-dev)")
        d = str(tmp_path_factory.mktemp("deb"))
        src = os.path.join(d, "stp-0.1.0")
        os.mkdir(src)
        arch = run(["sh", "-c", "git -C \"$1\" archive HEAD | tar -x -C \"$2\"", "sh", REPO, src])
        assert arch.returncode == 0, arch.stderr
        r = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src)
        assert r.returncode == 0, (r.stdout + r.stderr).decode()[-4000:]
    out = {}
    for f in glob.glob(os.path.join(d, "*.deb")):
        name = os.path.basename(f).split("_")[0]
        out[name] = f
    assert set(out) >= {"stpd", "stp", "libstp2", "libstp-dev"}, out
    return out
