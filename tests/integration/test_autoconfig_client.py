"""Auto-configuration on the client side (docs/client.md, docs/stpify.md):
`stp` and a program under `stpify`, with nothing but STP_PROXY set, reach
one target through stpd and another directly, as the profile stpd serves
says; libstp's disk cache (a fresh copy is used, a stale one fetched
again) and netrc credentials for a per-user profile."""

import os
import re
import signal
import subprocess

import pytest

import services
import stpdconf
from test_autoconfig import Site, ac_conf

pytestmark = pytest.mark.stpd_module("autoconf")


def _build_dir():
    stpd = os.environ.get("STPD")
    if stpd:
        return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(stpd))))
    import servers
    return os.path.join(servers.REPO, "build")


STP = os.path.join(_build_dir(), "src", "cli", "stp")
# The ASan stage of scripts/test.sh points STPIFY at the plain build's.
STPIFY = os.environ.get("STPIFY") or os.path.join(_build_dir(), "src", "shim", "stpify")
DROP = ("STP_PROXY", "ALL_PROXY", "NO_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "STP_LOG",
        "STP_BIND", "STP_PROXY_LOOPBACK", "STP_DEBUG", "STP_DNS", "LD_PRELOAD", "STPIFY_CONFIG",
        "STP_AUTOCONF", "STPIFY_AUTOCONF", "XDG_CACHE_HOME", "NETRC")


def only_stp_proxy(proxy, home):
    """The environment with STP_PROXY as the only proxy setting; HOME (the
    disk cache, ~/.netrc) in the test's directory."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in DROP}
    env["STP_PROXY"] = "socks5h://127.0.0.1:%d" % proxy.port
    env["HOME"] = str(home)
    return env


@pytest.fixture
def sites():
    a, b = Site("127.0.0.2", "SITE-VIA-PROXY"), Site("127.0.0.3", "SITE-DIRECT")
    yield a, b
    a.close()
    b.close()


PROFILE = "\tprofile p\n\tproxy 127.0.0.1:$port\n\tdirect 127.0.0.3\n\trefresh 600\n"


def stp(env, *args, data=b""):
    return subprocess.run([STP] + list(args), input=data, capture_output=True, env=env,
                          timeout=60)


def get_page(env, site):
    return stp(env, "connect", site.addr, str(site.port),
               data=b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")


def test_stp_routes(stpd_factory, sites, tmp_path):
    via, direct = sites
    p = stpd_factory(conf=ac_conf(services.free_port(), PROFILE))
    env = only_stp_proxy(p, tmp_path)
    r = get_page(env, via)
    assert b"SITE-VIA-PROXY" in r.stdout, r.stderr
    p.wait_log(r"(session|flow) .*cmd=connect target=127\.0\.0\.2:%d\b" % via.port)
    r = get_page(env, direct)
    assert b"SITE-DIRECT" in r.stdout, r.stderr
    assert direct.srv.hits == 1
    assert not p.log_lines(r"target=127\.0\.0\.3:")
    # Fetched once: the second run read the disk cache.
    assert len(p.log_lines(r"session .*cmd=autoconfig .*succeeded")) == 1
    assert os.path.exists(tmp_path / ".cache" / "stp" / ("autoconfig-127.0.0.1_%d.txt" % p.port))
    # STP_AUTOCONF=0: no X'F4', everything through the proxy.
    env["STP_AUTOCONF"] = "0"
    assert b"SITE-DIRECT" in get_page(env, direct).stdout
    p.wait_log(r"(session|flow) .*cmd=connect target=127\.0\.0\.3:%d\b" % direct.port)


def test_stpify_routes(stpd_factory, sites, tmp_path):
    via, direct = sites
    p = stpd_factory(conf=ac_conf(services.free_port(), PROFILE))
    env = only_stp_proxy(p, tmp_path)
    for site, marker in ((via, b"SITE-VIA-PROXY"), (direct, b"SITE-DIRECT")):
        r = subprocess.run([STPIFY, "curl", "-sS", "--max-time", "20", "--noproxy", "*",
                            site.url], capture_output=True, env=env, timeout=60)
        assert marker in r.stdout, r.stderr
    p.wait_log(r"(session|flow) .*cmd=connect target=127\.0\.0\.2:%d\b" % via.port)
    assert via.srv.hits == 1 and direct.srv.hits == 1
    assert not p.log_lines(r"target=127\.0\.0\.3:")


def test_cache_refresh(stpd_factory, tmp_path):
    text = ac_conf(services.free_port(), PROFILE)
    p = stpd_factory(conf=text)
    env = only_stp_proxy(p, tmp_path)
    first = stp(env, "autoconfig")
    assert first.returncode == 0 and b"refresh 600\n" in first.stdout, first.stderr
    p.write_conf(text.replace("refresh 600", "refresh 900"))
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"configuration reloaded", since=mark)
    # Fresh on disk: not asked again.
    assert b"refresh 600\n" in stp(env, "autoconfig").stdout
    assert len(p.log_lines(r"cmd=autoconfig")) == 1
    # Older than its refresh interval: fetched again, and the file replaced.
    path = tmp_path / ".cache" / "stp" / ("autoconfig-127.0.0.1_%d.txt" % p.port)
    os.utime(path, (os.path.getmtime(path) - 601,) * 2)
    assert b"refresh 900\n" in stp(env, "autoconfig").stdout
    assert len(p.wait_lines(r"cmd=autoconfig", 2)) == 2  # written when stpd closes it
    assert b"refresh 900\n" in path.read_bytes()


def test_netrc_user_profile(stpd_factory, sites, tmp_path):
    """Per-user profiles with only STP_PROXY: libstp logs in with the
    proxy's ~/.netrc entry, gets alice's profile, and connects as alice."""
    via, direct = sites
    profiles = PROFILE + ("\tmethod userpass\n\tcredentials netrc\n"
                          "\tprofile other\n\tdefault direct\n")
    rules = ("request pass { user alice; command autoconfig; profile p }\n"
             "request pass { command autoconfig; profile other }\n"
             "request pass { user alice }\n")
    p = stpd_factory(conf=ac_conf(services.free_port(), profiles, rules,
                                  auth=stpdconf.userpass_auth()),
                     users={"alice": "alice-pw"})
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login alice password alice-pw\n")
    os.chmod(tmp_path / ".netrc", 0o600)
    env = only_stp_proxy(p, tmp_path)
    r = stp(env, "autoconfig")
    assert r.returncode == 0 and r.stdout.startswith(b"stp-autoconfig 1\nprofile p\n"), r
    assert (tmp_path / ".cache" / "stp" / ("autoconfig-alice@127.0.0.1_%d.txt" % p.port)).exists()
    assert b"SITE-VIA-PROXY" in get_page(env, via).stdout
    p.wait_log(r"(session|flow) .*user=alice cmd=connect target=127\.0\.0\.2:%d\b" % via.port)
    assert b"SITE-DIRECT" in get_page(env, direct).stdout
    assert not p.log_lines(r"target=127\.0\.0\.3:")


def test_stp_route_other_proxy(stpd_factory, sites, tmp_path):
    """A served `route`: one destination through a second stpd, the rest
    through the first (the one STP_PROXY names)."""
    via, routed = sites
    other = stpd_factory()
    prof = "\tprofile p\n\tproxy 127.0.0.1:$port\n\troute 127.0.0.1:%d 127.0.0.3\n" % other.port
    p = stpd_factory(conf=ac_conf(services.free_port(), prof))
    env = only_stp_proxy(p, tmp_path)
    assert b"SITE-DIRECT" in get_page(env, routed).stdout  # the 127.0.0.3 site
    other.wait_log(r"(session|flow) .*cmd=connect target=127\.0\.0\.3:%d\b" % routed.port)
    assert not p.log_lines(r"target=127\.0\.0\.3:")
    assert b"SITE-VIA-PROXY" in get_page(env, via).stdout
    p.wait_log(r"(session|flow) .*cmd=connect target=127\.0\.0\.2:%d\b" % via.port)
    assert not other.log_lines(r"target=127\.0\.0\.2:")


def test_failover_to_the_next_served_proxy(stpd_factory, sites, tmp_path):
    """The profile serves a dead proxy first, then this stpd: libstp (stp
    connect) and stpify (curl)
    fail over to the second, as browsers do with the PAC's list. (libstp's
    every connection to a proxy goes through client_proxy_connect_until,
    where the failover is: stp udp, bind and resolve get it too.)"""
    via, _ = sites
    dead = services.free_port()  # nothing listens there
    prof = "\tprofile p\n\tproxy 127.0.0.1:%d 127.0.0.1:$port\n\trefresh 600\n" % dead
    p = stpd_factory(conf=ac_conf(services.free_port(), prof))
    env = only_stp_proxy(p, tmp_path)
    env["STP_DEBUG"] = "1"
    r = get_page(env, via)
    assert b"SITE-VIA-PROXY" in r.stdout, r.stderr
    assert re.search(rb"proxy 127\.0\.0\.1:%d: .*; trying 127\.0\.0\.1:%d \(autoconfig\)"
                     % (dead, p.port), r.stderr), r.stderr
    p.wait_log(r"(session|flow) .*cmd=connect target=127\.0\.0\.2:%d\b" % via.port)
    del env["STP_DEBUG"]
    mark = p.log_mark()
    r = subprocess.run([STPIFY, "curl", "-sS", "--max-time", "20", "--noproxy", "*", via.url],
                       capture_output=True, env=env, timeout=60)
    assert b"SITE-VIA-PROXY" in r.stdout, r.stderr
    p.wait_log(r"(session|flow) .*cmd=connect target=127\.0\.0\.2:%d\b" % via.port, since=mark)


@pytest.fixture
def udp_echo():
    e = services.UdpEcho()
    yield e
    e.close()


def routes_profile(other):
    """::1 and localhost direct; web6.stp.test and localhost6 through the
    other stpd; the rest through the one STP_PROXY names."""
    return ("\tprofile p\n\tproxy 127.0.0.1:$port\n\tdirect ::1 localhost\n"
            "\troute 127.0.0.1:%d web6.stp.test\n\trefresh 600\n" % other.port)


def test_stp_udp_follows_routes(stpd_factory, udp_echo, tmp_path):
    other = stpd_factory()
    p = stpd_factory(conf=ac_conf(services.free_port(), routes_profile(other)))
    env = only_stp_proxy(p, tmp_path)
    r = stp(env, "-v", "udp", "::1", str(udp_echo.port), data=b"direct-line\n")
    assert r.stdout == b"direct-line\n", r.stderr
    assert b"udp: ::1:%d: direct (autoconfig)" % udp_echo.port in r.stderr
    assert any(d == b"direct-line" and peer[0] == "::1" for d, peer in udp_echo.received)
    assert not p.log_lines(r"cmd=udpassociate") and not other.log_lines(r"cmd=udpassociate")
    r = stp(env, "udp", "127.0.0.1", str(udp_echo.port), data=b"proxied-line\n")
    assert r.stdout == b"proxied-line\n", r.stderr
    p.wait_log(r"session .*cmd=udpassociate")
    r = stp(env, "udp", "web6.stp.test", str(udp_echo.port), data=b"routed-line\n")
    assert r.stdout == b"routed-line\n", r.stderr
    other.wait_log(r"session .*cmd=udpassociate")


def bind_once(env, *args):
    """stp bind ARGS: the bound address, then one peer connecting to it and
    sending a line, which stp must print. Returns (bound line, stderr)."""
    proc = subprocess.Popen([STP, "-v", "--timeout", "20", "bind"] + list(args),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        line = proc.stdout.readline().decode().strip()
        m = re.match(r"bound \[?([^\]]+?)\]?:(\d+)$", line)
        assert m, (line, proc.stderr.read1(4000) if proc.poll() is not None else "")
        host = m.group(1)
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        import socket
        peer = socket.create_connection((host, int(m.group(2))), timeout=10)
        with peer:
            assert proc.stdout.readline().startswith(b"peer ")
            peer.sendall(b"from-peer\n")
            assert proc.stdout.readline() == b"from-peer\n"
            proc.stdin.close()
        proc.wait(timeout=20)
        return line, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stp_bind_follows_routes(stpd_factory, tmp_path):
    other = stpd_factory()
    p = stpd_factory(conf=ac_conf(services.free_port(), routes_profile(other)))
    env = only_stp_proxy(p, tmp_path)
    line, err = bind_once(env, "::1", "0")
    assert line.startswith("bound [::]:") and b"bind: ::1:0: direct (autoconfig)" in err
    assert not p.log_lines(r"cmd=bind") and not other.log_lines(r"cmd=bind")
    bind_once(env, "127.0.0.1", "0")
    p.wait_log(r"session .*cmd=bind")
    _, err = bind_once(env, "web6.stp.test", "0")
    assert b"through 127.0.0.1:%d (autoconfig route)" % other.port in err
    other.wait_log(r"session .*cmd=bind")


def test_stp_resolve_follows_routes(stpd_factory, tmp_path):
    other = stpd_factory()
    p = stpd_factory(conf=ac_conf(services.free_port(), routes_profile(other)))
    env = only_stp_proxy(p, tmp_path)
    r = stp(env, "-v", "resolve", "localhost")  # /etc/hosts: no DNS packet
    assert r.returncode == 0 and set(r.stdout.split()) & {b"127.0.0.1", b"::1"}, r.stderr
    assert b"resolve: localhost:0: direct (autoconfig)" in r.stderr
    assert not p.log_lines(r"cmd=(dns|resolve)") and not other.log_lines(r"cmd=(dns|resolve)")
    r = stp(env, "resolve", "web.stp.test")
    assert r.stdout.split() == [b"127.0.0.1"], r.stderr
    p.wait_log(r"session .*cmd=dns target=web\.stp\.test")
    r = stp(env, "resolve", "web6.stp.test")
    assert r.stdout.split() == [b"::1"], r.stderr
    other.wait_log(r"session .*cmd=dns target=web6\.stp\.test")
    assert not p.log_lines(r"target=web6\.stp\.test")


LONG_RUNNER = r"""
import socket, sys, time
port = int(sys.argv[1])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    line = sys.stdin.readline()  # the test says when to connect again
    if not line or line.strip() == "stop":
        break
    s = socket.create_connection(("127.0.0.3", port), timeout=20)
    s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    body = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        body += d
    s.close()
    print("got" if b"SITE-DIRECT" in body else "bad", flush=True)
"""


def test_stpify_refreshes_in_a_long_running_program(stpd_factory, sites, tmp_path):
    """One process under stpify: 127.0.0.3 goes direct as served; stpd's
    profile changes (no more `direct`); once the document is older than
    `refresh` (10 s), the next connect starts a fetch in the background and
    the connects after it go through the proxy. The program's connects go
    on meanwhile (each answered within its own timeout)."""
    _, direct = sites
    text = ac_conf(services.free_port(), "\tprofile p\n\tproxy 127.0.0.1:$port\n"
                   "\tdirect 127.0.0.3\n\trefresh 10\n")
    p = stpd_factory(conf=text)
    env = only_stp_proxy(p, tmp_path)
    env["STP_LOG"] = "info"
    proc = subprocess.Popen([STPIFY, "python3", "-c", LONG_RUNNER, str(direct.port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        def ask():
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == b"got\n"
        ask()
        assert direct.srv.hits == 1 and not p.log_lines(r"target=127\.0\.0\.3:")
        p.write_conf(text.replace("\tdirect 127.0.0.3\n", ""))
        mark = p.log_mark()
        p.signal(signal.SIGHUP)
        p.wait_log(r"configuration reloaded", since=mark)
        # Until the document is 10 s old, connects keep going direct; then
        # one connect starts the refresh and a later one uses it.
        import time
        end = time.monotonic() + 45
        while not p.log_lines(r"(session|flow) .*cmd=connect target=127\.0\.0\.3:") \
                and time.monotonic() < end:
            ask()
            time.sleep(0.5)
        assert p.log_lines(r"(session|flow) .*cmd=connect target=127\.0\.0\.3:%d\b" % direct.port)
        assert len(p.wait_lines(r"session .*cmd=autoconfig .*succeeded", 2)) == 2
        proc.stdin.write(b"stop\n")
        proc.stdin.close()
        assert proc.wait(timeout=20) == 0
        assert b"autoconfig: refreshed, profile p" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
