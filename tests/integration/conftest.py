"""Fixtures for the end-to-end tests: loopback services, a dnsmasq for the
test names, and a factory that starts the SOCKS server under test.

Environment:
  STPD=path             the stpd binary (default <repo>/build/src/server/stpd)
  STP_TEST_SERVER=kind  stpd (default), microsocks or danted
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import servers  # noqa: E402
import services  # noqa: E402


def pytest_configure(config):
    # Servers inherit this process's open-file limit: the load tests need a
    # few thousand descriptors whatever the login shell's soft limit was.
    services.raise_nofile(16384)


def pytest_runtest_setup(item):
    # @pytest.mark.stpd_module("tls"): skipped against an stpd built
    # without that extension (meson options ext_tls, ext_mcast).
    for m in item.iter_markers("stpd_module"):
        if servers.server_kind() == "stpd":
            servers.skip_without_module(servers.stpd_binary(), m.args[0])


def pytest_report_header(config):
    kind = servers.server_kind()
    extra = " (%s)" % servers.stpd_binary() if kind == "stpd" else ""
    return "SOCKS server under test: %s%s" % (kind, extra)


@pytest.fixture(autouse=True)
def own_cache_dir(tmp_path, monkeypatch):
    # libstp's disk caches (auto-configuration, feature discovery) in a
    # directory of this test alone: one test's answers never reach another.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("stp-it"))


@pytest.fixture(scope="session")
def dns(session_dir):
    d = services.Dnsmasq(session_dir)
    yield d
    d.close()


@pytest.fixture(scope="session")
def http(session_dir):
    h = services.HttpServer()
    yield h
    h.close()


@pytest.fixture(scope="session")
def echo():
    e = services.TcpEcho()
    yield e
    e.close()


@pytest.fixture(scope="session")
def asym():
    a = services.AsymService()
    yield a
    a.close()


@pytest.fixture(scope="session")
def sha_sink():
    k = services.ShaSink()
    yield k
    k.close()


@pytest.fixture(scope="session")
def talk_first():
    t = services.TalkFirst()
    yield t
    t.close()


@pytest.fixture(scope="session")
def udp_echo():
    u = services.UdpEcho()
    yield u
    u.close()


@pytest.fixture
def port():
    """A free loopback port (TCP and UDP on 127.0.0.1 and ::1)."""
    return services.free_port()


@pytest.fixture
def proxy_factory(tmp_path, dns):
    """make(conf=None, args=(), users=None, kind=None, ...) starts a SOCKS
    server and returns a servers.Proxy. At teardown every server gets
    SIGTERM; stpd must exit 0 with no sanitizer report in its log."""
    started = []

    def make(kind=None, **kw):
        p = servers.start(kind or servers.server_kind(), str(tmp_path), dns, **kw)
        started.append(p)
        return p

    yield make
    problems = []
    for p in started:
        was_alive = p.alive()
        rc = p.stop()
        # printed only when the test fails (pytest shows captured output)
        print("---- %s log (%s) ----\n%s" % (p.kind, p.log_path, p.log()[-6000:]))
        if p.kind != "stpd":
            continue
        if rc is None:
            problems.append("stpd did not exit within 15 s of SIGTERM (killed)")
        elif rc != 0:
            problems.append("stpd exited with %s (%s)" % (
                rc, "on SIGTERM" if was_alive else "before teardown"))
        marks = p.sanitizer_report()
        if marks:
            problems.append("stpd log has sanitizer output: %s" % ", ".join(marks))
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def proxy(proxy_factory):
    """The server under test with its default set-up (stpd: --listen and
    --resolver pointing at the test dnsmasq)."""
    return proxy_factory()


@pytest.fixture
def stpd_factory(proxy_factory):
    """Like proxy_factory, but only for stpd (skips against other servers)."""
    if servers.server_kind() != "stpd":
        pytest.skip("needs stpd (running against %s)" % servers.server_kind())
    return proxy_factory
