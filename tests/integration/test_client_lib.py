"""libstp through the `stp` command (and examples/connect.c), against the
real stpd and against Dante's danted: CONNECT, UDP ASSOCIATE, BIND with a
third-party peer, DNS through the proxy, every failure with its message and
its documented exit code.

Environment:
  STP_BIN=path    the stp command (default: next to $STPD's build tree,
                  else <repo>/build/src/cli/stp)
  STPD=path       stpd, as for the rest of tests/integration

Only loopback is used; names (*.stp.test) are resolved by the proxy or by
the test dnsmasq, never by this machine's resolver.
"""

import hashlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

import servers
import services
import socksraw
import stpdconf

REPO = servers.REPO


def _build_dir():
    stpd = os.environ.get("STPD")
    if stpd:
        # <build>/src/server/stpd -> <build>
        return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(stpd))))
    return os.path.join(REPO, "build")


def stp_bin():
    return os.environ.get("STP_BIN") or os.path.join(_build_dir(), "src", "cli", "stp")


def example_bin():
    return os.path.join(_build_dir(), "examples", "stp-example-connect")


@pytest.fixture(scope="module", autouse=True)
def _need_binaries():
    if not os.path.exists(stp_bin()):
        pytest.fail("stp binary not found at %s (set STP_BIN= or STPD=)" % stp_bin())


def clean_env(**extra):
    """The environment without any proxy variable, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in ("STP_PROXY", "ALL_PROXY", "NO_PROXY", "STP_DEBUG")}
    env.update(extra)
    return env


def stp(*args, proxy=None, input=b"", timeout=30, env=None):
    argv = [stp_bin()]
    if proxy is not None:
        argv += ["--proxy", proxy]
    argv += [str(a) for a in args]
    return subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, env=env or clean_env())


def url(p, scheme="socks5", auth=""):
    return "%s://%s%s:%d" % (scheme, auth, p.host, p.port)


SERVERS = ["stpd", "danted"]


@pytest.fixture(params=SERVERS)
def server(request, proxy_factory):
    """The proxy under test: stpd with its flags set-up, or danted."""
    if request.param == "danted" and shutil.which("danted") is None:
        pytest.skip("danted not installed")
    return proxy_factory(kind=request.param)


@pytest.fixture
def stpd(proxy_factory):
    return proxy_factory(kind="stpd")


def closed_port():
    """A loopback TCP port with nothing listening on it."""
    return services.free_port()


# ---------------------------------------------------------------------------
# CONNECT


@pytest.mark.parametrize("scheme,host", [
    ("socks5", "127.0.0.1"),
    ("socks5h", "web.stp.test"),
    ("socks4", "127.0.0.1"),
    ("socks4a", "web.stp.test"),
])
def test_connect_echo(server, echo, scheme, host):
    if scheme.startswith("socks4"):
        server.require(scheme)  # Dante has no 4a
    r = stp("connect", host, echo.port, proxy=url(server, scheme), input=b"hello\nworld\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello\nworld\n"
    assert r.stderr == b""


def test_connect_ipv6_target(server, echo):
    r = stp("connect", "::1", echo.port, proxy=url(server), input=b"six\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"six\n"


def test_connect_large_both_ways(server, echo):
    """1 MiB each way at once: the relay must read while it writes, and
    stdin's EOF must reach the echo as a half-close (else no EOF back)."""
    data = os.urandom(1 << 20)
    r = stp("connect", "127.0.0.1", echo.port, proxy=url(server), input=data, timeout=60)
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(data).hexdigest()


def test_connect_target_speaks_first(server, http):
    """The HTTP server's answer follows the SOCKS reply on the same socket;
    none of it may be eaten by the handshake."""
    req = b"GET / HTTP/1.1\r\nHost: web.stp.test\r\nConnection: close\r\n\r\n"
    r = stp("connect", "web.stp.test", http.port, proxy=url(server, "socks5h"), input=req)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"HTTP/1.1 200 OK\r\n"), r.stdout[:100]
    assert services.PAGE_MARKER.encode() in r.stdout


def test_connect_logged_by_stpd(stpd, echo):
    r = stp("connect", "web.stp.test", echo.port, proxy=url(stpd, "socks5h"), input=b"x" * 123)
    assert r.returncode == 0, r.stderr
    # a session of its own, or a flow of a multiplexed one (test_muxauto.py)
    m = stpd.wait_log(r"(session|flow) .*target=web\.stp\.test:%d" % echo.port)
    assert re.search(r"\bup=123\b", m.string) and re.search(r"\bdown=123\b", m.string), m.string


def test_connect_with_userpass(proxy_factory, echo):
    p = proxy_factory(kind="stpd", users={"alice": "pa:ss@w%rd"})
    # ':', '@' and '%' percent-encoded in the URL
    good = url(p, auth="alice:pa%3Ass%40w%25rd@")
    r = stp("connect", "127.0.0.1", echo.port, proxy=good, input=b"authed\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"authed\n"
    p.wait_log(r"session .*user=alice")

    r = stp("connect", "127.0.0.1", echo.port, proxy=url(p, auth="alice:wrong@"))
    assert r.returncode == 4
    assert b"stp: connect: proxy authentication failed" in r.stderr

    r = stp("connect", "127.0.0.1", echo.port, proxy=url(p))
    assert r.returncode == 4
    assert b"proxy accepts none of our authentication methods (X'FF')" in r.stderr, r.stderr


def test_verbose_shows_states(stpd, echo):
    # the per-connection handshake engine (multiplexing off)
    r = stp("-v", "connect", "127.0.0.1", echo.port, proxy=url(stpd), input=b"v",
            env=clean_env(STP_MUX="0"))
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    for step in ("GREETING -> CHOICE", "CHOICE -> REQUEST", "REQUEST -> REPLY", "REPLY -> DONE"):
        assert step in err, err


# ---------------------------------------------------------------------------
# Proxy from the environment


def test_proxy_from_env(stpd, echo):
    for var in ("STP_PROXY", "ALL_PROXY", "all_proxy"):
        r = stp("connect", "127.0.0.1", echo.port, input=b"env\n",
                env=clean_env(**{var: url(stpd)}))
        assert r.returncode == 0, (var, r.stderr)
        assert r.stdout == b"env\n"
    # STP_PROXY wins over ALL_PROXY (which here points nowhere)
    r = stp("connect", "127.0.0.1", echo.port, input=b"env\n",
            env=clean_env(STP_PROXY=url(stpd), ALL_PROXY="socks5://127.0.0.1:%d" % closed_port()))
    assert r.returncode == 0, r.stderr


def test_no_proxy_configured():
    r = stp("connect", "127.0.0.1", 9)
    assert r.returncode == 2
    assert b"no proxy configured" in r.stderr


def test_example_program(stpd, echo):
    r = subprocess.run([example_bin(), "127.0.0.1", str(echo.port), "from-example"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                       env=clean_env(STP_PROXY=url(stpd)))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"from-example\n"


# ---------------------------------------------------------------------------
# UDP ASSOCIATE


def test_udp_echo(server, udp_echo):
    lines = [b"alpha", b"bravo", b"charlie-%d" % os.getpid()]
    r = stp("udp", "127.0.0.1", udp_echo.port, proxy=url(server),
            input=b"\n".join(lines) + b"\n")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == sorted(lines)
    for ln in lines:
        assert udp_echo.got(ln)


def test_udp_by_name(stpd, udp_echo):
    """socks5h: the datagram header carries the name; stpd resolves it."""
    payload = b"named-%d" % os.getpid()
    r = stp("udp", "web.stp.test", udp_echo.port, proxy=url(stpd, "socks5h"), input=payload)
    assert r.returncode == 0, r.stderr
    assert r.stdout == payload + b"\n"


def test_udp_over_socks4_is_refused_locally(stpd):
    r = stp("udp", "127.0.0.1", 9, proxy=url(stpd, "socks4"))
    assert r.returncode == 7
    assert b"command not available in this proxy protocol" in r.stderr


# ---------------------------------------------------------------------------
# BIND


def test_bind_with_third_party_peer(server):
    p = subprocess.Popen([stp_bin(), "--proxy", url(server), "--timeout", "20", "bind"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=clean_env())
    try:
        line = p.stdout.readline().decode()
        m = re.match(r"bound (\S+):(\d+)$", line.strip())
        assert m, "first line %r; stderr %r" % (line, p.stderr.read1(4000) if p.poll() else "")
        host, port = m.group(1).strip("[]"), int(m.group(2))
        assert host == "127.0.0.1" and port != 0
        # The peer: a third party connecting to the address the proxy gave.
        peer = socket.create_connection((host, port), timeout=10)
        with peer:
            line = p.stdout.readline().decode().strip()
            assert line == "peer 127.0.0.1:%d" % peer.getsockname()[1], line
            peer.sendall(b"from-peer\n")
            assert p.stdout.readline() == b"from-peer\n"
            p.stdin.write(b"from-client\n")
            p.stdin.close()  # -> half-close toward the peer
            peer.settimeout(10)
            assert socksraw.recv_all(peer) == b"from-client\n"
        # the peer closed: both directions done
        assert p.wait(timeout=10) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_bind_socks4(proxy_factory):
    p = proxy_factory(kind="stpd")
    proc = subprocess.Popen([stp_bin(), "--proxy", url(p, "socks4"), "bind"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env())
    try:
        m = re.match(r"bound 127\.0\.0\.1:(\d+)$", proc.stdout.readline().decode().strip())
        assert m
        with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=10) as peer:
            assert proc.stdout.readline().startswith(b"peer 127.0.0.1:")
            proc.stdin.close()
            peer.settimeout(10)
            assert peer.recv(10) == b""
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bind_peer_timeout(stpd):
    """No peer within --timeout: exit 6, no stray "peer" line."""
    r = stp("--timeout", "0.5", "bind", proxy=url(stpd))
    assert r.returncode == 6, r.stderr
    assert r.stdout.startswith(b"bound 127.0.0.1:")
    assert b"peer" not in r.stdout
    assert b"timed out" in r.stderr


# ---------------------------------------------------------------------------
# resolve: DNS over UDP ASSOCIATE


@pytest.mark.parametrize("name,want", [
    ("web.stp.test", ["127.0.0.1"]),
    ("web6.stp.test", ["::1"]),
    ("both.stp.test", ["127.0.0.1", "::1"]),
])
def test_resolve(server, dns, name, want):
    r = stp("resolve", "--dns", dns.addr, name, proxy=url(server))
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == want


def test_resolve_nxdomain(server, dns):
    r = stp("resolve", "--dns", dns.addr, services.NXDOMAIN_NAME, proxy=url(server))
    assert r.returncode == 8
    assert b"name not found (NXDOMAIN)" in r.stderr
    assert r.stdout == b""


def test_resolve_goes_through_the_proxy(stpd, dns):
    """The query reached dnsmasq from stpd's relay socket, not from us: the
    stpd session log records the UDP association."""
    r = stp("resolve", "--dns", dns.addr, "web.stp.test", proxy=url(stpd))
    assert r.returncode == 0, r.stderr
    stpd.wait_log(r"session .*cmd=udp")


# ---------------------------------------------------------------------------
# Every refusal, with its message and exit code


def test_refused_x05(server):
    port = closed_port()
    r = stp("connect", "127.0.0.1", port, proxy=url(server))
    assert r.returncode == 15, r.stderr
    assert r.stderr.decode().strip() == "stp: connect: proxy refused: connection refused (X'05')"


def test_host_unreachable_x04(stpd):
    """The resolver says NXDOMAIN: stpd answers X'04'."""
    r = stp("connect", services.NXDOMAIN_NAME, 80, proxy=url(stpd, "socks5h"))
    assert r.returncode == 14, r.stderr
    assert b"proxy refused: host unreachable (X'04')" in r.stderr


def test_not_allowed_x02(proxy_factory, echo):
    text = stpdconf.conf(request_rules="request block { to 127.0.0.2/32 }\n"
                                       "request pass { }\n")
    p = proxy_factory(kind="stpd", conf=text)
    r = stp("connect", "127.0.0.2", echo.port, proxy=url(p))
    assert r.returncode == 12, r.stderr
    assert b"proxy refused: connection not allowed by ruleset (X'02')" in r.stderr
    # the same proxy still lets other targets through
    r = stp("connect", "127.0.0.1", echo.port, proxy=url(p), input=b"ok")
    assert r.returncode == 0 and r.stdout == b"ok"


def test_socks4_rejected(server):
    """SOCKS4 has one failure code (91) for a refused connection."""
    server.require("socks4")
    r = stp("connect", "127.0.0.1", closed_port(), proxy=url(server, "socks4"))
    assert r.returncode == 9, r.stderr
    assert b"(SOCKS4 91)" in r.stderr


# ---------------------------------------------------------------------------
# Bad proxy URLs, unreachable proxies, timeouts, usage


@pytest.mark.parametrize("bad,why", [
    ("http://127.0.0.1:8080", b"scheme must be socks5, socks5h, socks4 or socks4a"),
    ("127.0.0.1:1080", b"scheme must be"),
    ("socks5://127.0.0.1:99999", b"port must be 1..65535"),
    ("socks5://127.0.0.1:", b"port must be"),
    ("socks5://[::1:1080", b"bad host"),
    ("socks5://::1:1080", b"bad host"),
    ("socks5://u%zz:p@127.0.0.1", b"bad user:password"),
    ("socks5://127.0.0.1/path", b"unexpected text after host:port"),
])
def test_bad_proxy_url(bad, why):
    r = stp("connect", "127.0.0.1", 80, proxy=bad)
    assert r.returncode == 2
    assert r.stderr.startswith(b"stp: bad proxy URL: ") and why in r.stderr, r.stderr
    assert bad.encode() in r.stderr


def test_bad_proxy_url_from_env():
    r = stp("connect", "127.0.0.1", 80, env=clean_env(STP_PROXY="socks9://x"))
    assert r.returncode == 2
    assert b"scheme must be" in r.stderr


def test_proxy_unreachable():
    port = closed_port()
    r = stp("connect", "127.0.0.1", 80, proxy="socks5://127.0.0.1:%d" % port)
    assert r.returncode == 3
    msg = r.stderr.decode().strip()
    assert msg == ("stp: connect: proxy unreachable (socks5://127.0.0.1:%d): Connection refused"
                   % port)


def test_proxy_tries_every_address(proxy_factory, echo, tmp_path):
    """The proxy's name has two addresses and stpd listens on only one of
    them: stp must try the next after a refusal. stp runs with the test
    /etc/hosts (servers._isolated), where localhost is 127.0.0.1 and ::1.
    Done once with stpd on each address, so one run must see a refusal
    first, whatever order getaddrinfo picks."""
    refusals = 0
    for listen in ("127.0.0.1", "[::1]"):
        port = services.free_port()
        p = proxy_factory(kind="stpd", listen=False, port=port,
                          args=("--listen", "%s:%d" % (listen, port)))
        argv = servers._isolated(str(tmp_path), [stp_bin(), "-v", "--proxy",
                                                  "socks5://localhost:%d" % p.port,
                                                  "connect", "127.0.0.1", str(echo.port)])
        r = subprocess.run(argv, input=b"any\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30, env=clean_env())
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"any\n"
        err = r.stderr.decode()
        tried = re.findall(r"connect to proxy (\S+): (.*)", err)
        assert tried[-1] == ("%s:%d" % (listen, port), "connected"), err
        for addr, result in tried[:-1]:
            assert addr != "%s:%d" % (listen, port) and result == "Connection refused", err
            refusals += 1
    assert refusals == 1


def test_proxy_timeout():
    """A proxy that accepts the connection and then says nothing."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        t0 = time.monotonic()
        r = stp("--timeout", "0.5", "connect", "127.0.0.1", 80,
                proxy="socks5://127.0.0.1:%d" % port)
        took = time.monotonic() - t0
    assert r.returncode == 6
    assert r.stderr.decode().strip() == "stp: connect: timed out"
    assert 0.4 < took < 5


def test_proxy_not_socks():
    """Something that answers with HTTP: a protocol error, exit 5."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def answer():
        c, _ = srv.accept()
        with c:
            c.recv(100)
            c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            time.sleep(0.5)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    with srv:
        r = stp("connect", "127.0.0.1", 80, proxy="socks5://127.0.0.1:%d" % srv.getsockname()[1])
    t.join(5)
    assert r.returncode == 5
    assert b"protocol error" in r.stderr


def test_proxy_hangs_up():
    """The proxy closes right after the greeting: exit 5, "closed"."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def hang_up():
        c, _ = srv.accept()
        c.recv(100)
        c.close()

    t = threading.Thread(target=hang_up, daemon=True)
    t.start()
    with srv:
        r = stp("connect", "127.0.0.1", 80, proxy="socks5://127.0.0.1:%d" % srv.getsockname()[1])
    t.join(5)
    assert r.returncode == 5
    assert b"proxy closed the connection during the handshake" in r.stderr


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["connect", "127.0.0.1"],
    ["connect", "127.0.0.1", "0"],
    ["connect", "127.0.0.1", "http"],
    ["bind", "127.0.0.1"],
    ["--timeout", "soon", "connect", "a", "1"],
])
def test_usage(args):
    r = stp(*args, proxy="socks5://127.0.0.1:1")
    assert r.returncode == 1, r.stderr
    assert r.stdout == b""


def test_help_documents_exit_codes():
    r = stp("--help")
    assert r.returncode == 0
    out = r.stdout.decode()
    for needle in ("connect HOST PORT", "udp HOST PORT", "bind", "resolve NAME",
                   "2 bad proxy URL", "3 proxy unreachable", "4 authentication failed",
                   "15 connection", "10 + N"):
        assert needle in out, needle
