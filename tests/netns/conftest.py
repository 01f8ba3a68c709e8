"""Fixtures for the multicast tests: a fresh outside/gateway/inside
topology per test and stpd started in the gateway namespace.

Environment: STPD=path to the stpd binary (default: the first of
build-mcast/, build/ that has one). Needs root (namespaces).
"""

import os
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import netns  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The end-to-end tests' helpers (services.py: stop_process...), last on the
# path: tests/integration has a netns.py and a conftest.py of its own.
sys.path.append(os.path.join(REPO, "tests", "integration"))

import services  # noqa: E402


def stpd_binary():
    if os.environ.get("STPD"):
        return os.environ["STPD"]
    for b in ("build-mcast", "build"):
        p = os.path.join(REPO, b, "src", "server", "stpd")
        if os.path.exists(p):
            return p
    pytest.skip("no stpd binary (set STPD=)")


def pytest_runtest_setup(item):
    # @pytest.mark.stpd_module("mcast"): skipped against an stpd built
    # without that extension (meson options ext_tls, ext_mcast).
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    import servers  # noqa: E402  (the -V parser, shared)
    for m in item.iter_markers("stpd_module"):
        servers.skip_without_module(stpd_binary(), m.args[0])


@pytest.fixture(autouse=True)
def own_cache_dir(tmp_path, monkeypatch):
    # libstp's disk caches (auto-configuration, feature discovery) per test:
    # proxies in namespaces reuse addresses and ports from test to test.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def topo():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    t = netns.Topology()
    yield t
    t.close()


class LoggedProcess:
    """A program a test runs (self.proc) with its output in self.log, a file
    at self.log_path: the log so far, waiting for a line, stopping it."""
    log_name = "log"         # for wait_log's failure
    wait_log_timeout = 5.0   # wait_log's default, seconds
    stop_timeout = 10        # stop(): from SIGTERM to SIGKILL, seconds

    def text(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, needle, timeout=None):
        deadline = time.time() + (self.wait_log_timeout if timeout is None else timeout)
        while time.time() < deadline:
            t = self.text()
            if needle in t:
                return t
            time.sleep(0.05)
        raise AssertionError("%r not in %s:\n%s" % (needle, self.log_name, self.text()))

    def stop(self):
        """SIGTERM (SIGKILL after stop_timeout); the exit status."""
        rc = services.stop_process(self.proc, self.stop_timeout)
        self.log.close()
        return rc


class Stpd(LoggedProcess):
    """stpd in the gateway namespace, listening on the inside addresses."""

    log_name = "stpd log"

    def __init__(self, topo, workdir, conf, ns=None, addr=None, client_ns=None):
        self.topo = topo
        self.killed = False  # SIGKILLed by the test: exits -9
        self.client_ns = client_ns or topo.inside
        self.conf_path = os.path.join(workdir, "stpd.conf")
        self.log_path = os.path.join(workdir, "stpd.log")
        with open(self.conf_path, "w") as f:
            f.write(conf)
        self.log = open(self.log_path, "w+")
        self.proc = (ns or topo.gateway).popen([stpd_binary(), "-c", self.conf_path],
                                       stdin=subprocess_devnull(), stdout=self.log,
                                       stderr=self.log)
        self.addr = addr or (topo.GW_IN, 1080)
        self._wait_listening()

    def _wait_listening(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("stpd exited (%d): %s" % (self.proc.returncode, self.text()))

            def probe():
                s = socket.socket()
                s.settimeout(0.5)
                try:
                    s.connect(self.addr)
                    return True
                except OSError:
                    return False
                finally:
                    s.close()
            if self.client_ns.run(probe):
                return
            time.sleep(0.05)
        pytest.fail("stpd did not listen: %s" % self.text())


def subprocess_devnull():
    import subprocess
    return subprocess.DEVNULL


@pytest.fixture
def stpd(topo, tmp_path):
    """start(conf_text) -> Stpd; stopped at teardown, where it must exit 0
    without a sanitizer report."""
    started = []

    def start(conf, **kw):
        s = Stpd(topo, str(tmp_path), conf, **kw)
        started.append(s)
        return s

    yield start
    for c in topo.clients:
        c.close()
    for s in started:
        rc = s.stop()
        text = open(s.log_path).read()
        assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text, text
        assert rc == 0 or (s.killed and rc == -9), "stpd exited %d:\n%s" % (rc, text)
