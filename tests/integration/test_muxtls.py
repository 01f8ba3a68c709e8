"""libstp's automatic multiplexing through TLS proxies (docs/protocol.md
5.11 "What libstp does", docs/client.md): a `tls on` listener
(socks5+tls://) and method X'86' (socks5s://), with RFC 1929 inside TLS,
X'86' sub-authentication or a client certificate. Many connections of a
program become streams of one TLS connection: stpd's log shows one TLS
handshake, one session switched with X'30' and one flow per connection.
When stpd refuses X'30' every connection is its own TLS connection again
(stpify through a relay thread, as for GSS-API)."""

import os
import re
import signal
import subprocess

import pytest

import servers
import services
from test_mux import flood_server
from test_muxauto import DYING, FORKING, SLOW, curl_args, expect_curl, sink_server
from test_stpify import clean_env, stpify_bin
from test_tls_client import PASSWORD, USER, conf as tls_conf
from tls_fixtures import pki  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.stpd_module("mux"), pytest.mark.stpd_module("tls")]

SESSION_MUX = r"session id=\d+ .*user=alice cmd=mux .*rep=\"succeeded\""
ANY_MUX = r"session id=\d+ .*cmd=mux "
PLAIN_CONNECT = r"session id=\d+ .*cmd=connect "
FLOW = r"flow id=(\d+)\.\d+ .*cmd=connect .*rep=\"succeeded\""
HANDSHAKE = {"wrap": r"TLS listener version=TLSv1\.[23]", "x86": r"TLS X'86' version=TLSv1\.[23]"}
BLOCK_MUX = "request block { command mux }\nrequest pass { }\n"


def stpd_conf(pki, mode, rules=None, tls_extra=()):
    """mode "wrap": a `tls on` listener with RFC 1929 inside; "x86": the
    plain listener offering X'86' with sub-authentication userpass."""
    if mode == "wrap":
        text = tls_conf(pki, tls_listener=services.free_port(), methods="userpass",
                        tls_extra=tls_extra)
    else:
        text = tls_conf(pki, tls_extra=tls_extra)
    if rules:
        text = text.replace("request pass { }\n", rules)
    return text


def start(stpd_factory, pki, mode, **kw):
    text = stpd_conf(pki, mode, **kw)
    p = stpd_factory(conf=text, users={USER: PASSWORD})
    port = p.port
    if mode == "wrap":
        port = int(re.search(r"listen 127\.0\.0\.1:(\d+) \{ name tlsl", text).group(1))
    p.url = "%s://%s:%s@127.0.0.1:%d?ca=%s" % ("socks5+tls" if mode == "wrap" else "socks5s",
                                               USER, PASSWORD, port, pki.path("ca.pem"))
    p.mode = mode
    return p


def run(p, argv, timeout=90, **extra):
    env = clean_env(STP_PROXY=p.url, STP_PROXY_LOOPBACK="1", STP_TIMEOUT="20",
                    STP_AUTOCONF="0", **extra)
    return subprocess.run([stpify_bin()] + argv, capture_output=True, timeout=timeout, env=env)


def stp_bin():
    return os.path.join(os.path.dirname(os.path.dirname(stpify_bin())), "cli", "stp")


def handshakes(p):
    return p.log_lines(HANDSHAKE[p.mode])


def session_handshakes(p):
    """TLS handshakes of SOCKS sessions: not the one of feature discovery,
    which libstp asks (through TLS for socks5+tls://) before it pipelines
    its third handshake with a proxy (test_tlspipe.py)."""
    ask = set(re.findall(r"id=(\d+) \S+ user=-: features sent", p.log()))
    assert len(ask) <= 1, p.log()
    return [ln for ln in handshakes(p) if re.search(r"id=(\d+) ", ln).group(1) not in ask]


def one_session(p, n):
    """One X'30' session by alice with n flows, nothing else, one TLS
    handshake."""
    p.wait_log(SESSION_MUX, timeout=20)
    assert len(p.log_lines(ANY_MUX)) == 1, p.log()
    f = p.wait_lines(FLOW, n)
    assert len(f) == n, p.log()
    assert len({re.search(FLOW, ln).group(1) for ln in f}) == 1, p.log()
    assert not p.log_lines(PLAIN_CONNECT), p.log()
    assert len(handshakes(p)) == 1, p.log()


@pytest.mark.parametrize("mode", ["wrap", "x86"])
@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
def test_curl_streams_share_one_tls_connection(stpd_factory, pki, http, mode, parallel):
    """curl under stpify, N requests (each its own TCP connection for
    curl): one TLS handshake, one X'30' session with N flows."""
    n = 10
    p = start(stpd_factory, pki, mode)
    more = ("--parallel", "--parallel-immediate", "--parallel-max", "5") if parallel else ()
    expect_curl(run(p, curl_args(http, n, *more)), n)
    one_session(p, n)
    if mode == "x86":
        assert len(p.log_lines(r"X'86' subauthentication userpass")) == 1, p.log()
    assert PASSWORD not in p.log()


@pytest.mark.parametrize("mode", ["wrap", "x86"])
def test_refused_x30_falls_back_to_tls_connections(stpd_factory, pki, http, mode):
    """Rules block `mux`: X'30' is refused once (REP X'0E'); every
    connection, the first included, is then its own TLS connection with a
    plain CONNECT (stpify relays it through a thread)."""
    n = 4
    p = start(stpd_factory, pki, mode, rules=BLOCK_MUX)
    expect_curl(run(p, curl_args(http, n)), n)
    assert len(p.wait_lines(ANY_MUX, 1)) == 1, p.log()
    assert not p.log_lines(SESSION_MUX), p.log()
    assert len(p.wait_lines(r"session id=\d+ .*user=alice cmd=connect .*result=\"closed\"", n)) == n, p.log()
    assert len(session_handshakes(p)) == n + 1, p.log()


def test_mux_off_by_env_over_tls(stpd_factory, pki, http):
    p = start(stpd_factory, pki, "wrap")
    expect_curl(run(p, curl_args(http, 3), STP_MUX="0"), 3)
    assert not p.log_lines(ANY_MUX), p.log()
    assert len(p.wait_lines(PLAIN_CONNECT, 3)) == 3, p.log()
    assert len(session_handshakes(p)) == 3, p.log()


@pytest.mark.parametrize("mode", ["wrap", "x86"])
@pytest.mark.parametrize("explicit", [False, True], ids=["auto", "stp_mux_open"])
def test_stp_connect_over_tls(stpd_factory, pki, echo, mode, explicit):
    """`stp connect` (stp_conn_open, automatic) and `stp connect --mux`
    (stp_mux_open, the explicit API) through a TLS proxy: a stream."""
    p = start(stpd_factory, pki, mode)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STP")}
    argv = [stp_bin(), "--proxy", p.url, "--no-autoconfig", "connect"]
    argv += ["--mux"] if explicit else []
    r = subprocess.run(argv + ["127.0.0.1", str(echo.port)], input=b"stream through tls\n",
                       capture_output=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"stream through tls\n"
    p.wait_log(r"flow id=\d+\.1 .*cmd=connect .*up=19 down=19 ", timeout=10)
    one_session(p, 1)


@pytest.mark.parametrize("mode", ["wrap", "x86"])
def test_stp_connect_refused_falls_back(stpd_factory, pki, echo, mode):
    """`stp connect` when the rules refuse X'30': the same bytes through a
    TLS connection of its own (two TLS handshakes: the refused switch's and
    the connection's), and `stp connect --mux` (explicit) fails with the
    refusal (exit 20: REP X'0E')."""
    p = start(stpd_factory, pki, mode, rules=BLOCK_MUX)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STP")}
    base = [stp_bin(), "--proxy", p.url, "--no-autoconfig", "connect"]
    r = subprocess.run(base + ["127.0.0.1", str(echo.port)], input=b"fallback\n",
                       capture_output=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"fallback\n"
    p.wait_log(r"session id=\d+ .*user=alice cmd=connect .*up=9 down=9 ", timeout=10)
    assert len(p.wait_lines(ANY_MUX + r".*rep=\"multiplexing refused\"", 1)) == 1, p.log()
    assert len(handshakes(p)) == 2, p.log()
    r = subprocess.run(base + ["--mux", "127.0.0.1", str(echo.port)], input=b"x\n",
                       capture_output=True, timeout=30, env=env)
    assert r.returncode == 20, r.stderr


@pytest.mark.parametrize("mode", ["wrap", "x86"])
def test_bulk_both_ways_over_tls(stpd_factory, pki, echo, mode):
    """2 MiB of random bytes to an echo and back through one stream:
    HTTP/2 DATA in TLS records both ways, every byte in order."""
    p = start(stpd_factory, pki, mode)
    data = os.urandom(2 << 20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STP")}
    r = subprocess.run([stp_bin(), "--proxy", p.url, "--no-autoconfig", "connect", "127.0.0.1",
                        str(echo.port)], input=data, capture_output=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    p.wait_log(r"flow id=\d+\.1 .*up=%d down=%d " % (len(data), len(data)), timeout=10)
    one_session(p, 1)


def test_slow_streams_do_not_block_others_over_tls(stpd_factory, pki, echo, tmp_path):
    """test_muxauto's slow streams inside TLS: a stream nobody reads (its
    target floods 8 MiB) and one whose target does not read do not hold
    up 20 echo streams of the same TLS connection."""
    p = start(stpd_factory, pki, "x86")
    fl = flood_server(8 << 20)
    sink, held = sink_server()
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    try:
        r = run(p, ["/usr/bin/python3", str(script), str(echo.port),
                    str(fl.getsockname()[1]), str(sink.getsockname()[1])])
    finally:
        fl.close()
        sink.close()
        for c in held:
            c.close()
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    out = dict(ln.split(" ", 1) for ln in r.stdout.decode().splitlines())
    assert int(out["pushed"]) > 0
    assert float(out["echoes"]) < 20.0
    one_session(p, 22)


def test_client_certificate_names_the_mux_user(stpd_factory, pki, echo):
    """X'86' with a client certificate (cert-user on): the certificate,
    not a password, makes alice the user of the X'30' session."""
    extra = ("client-ca %s" % pki.path("ca.pem"), "client-cert require", "cert-user on")
    p = start(stpd_factory, pki, "x86", tls_extra=extra)
    p.url = "socks5s://127.0.0.1:%d?ca=%s&cert=%s&key=%s" % (
        p.port, pki.path("ca.pem"), pki.path("alice.pem"), pki.path("alice.key"))
    script = ("import socket,sys\n"
              "for i in range(3):\n"
              "    s=socket.create_connection(('127.0.0.1',%d),timeout=20)\n"
              "    s.sendall(b'cert %%d\\n' %% i); assert s.recv(100)==b'cert %%d\\n' %% i\n"
              "    s.close()\n" % echo.port)
    r = run(p, ["/usr/bin/python3", "-c", script])
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    p.wait_log(r"client-cert=alice")
    one_session(p, 3)


def test_fork_child_gets_its_own_tls_connection(stpd_factory, pki, echo, tmp_path):
    """After fork() the child opens its own TLS connection (no
    close_notify from it ends the parent's): two handshakes, two X'30'
    sessions, 11 flows."""
    p = start(stpd_factory, pki, "wrap")
    script = tmp_path / "fork.py"
    script.write_text(FORKING)
    r = run(p, ["/usr/bin/python3", str(script), str(echo.port)])
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert r.stdout == b"parent True child 0\n", r.stdout
    assert len(p.wait_lines(SESSION_MUX, 2)) == 2, p.log()
    assert len(p.wait_lines(FLOW, 11)) == 11, p.log()
    assert len(handshakes(p)) == 2, p.log()


def test_stpd_killed_ends_tls_streams(tmp_path, dns, pki):
    """SIGKILL of stpd while a stream of the TLS connection is open: the
    program's read ends at once."""
    import socket
    if servers.server_kind() != "stpd":
        pytest.skip("needs stpd")
    text = stpd_conf(pki, "x86")
    p = servers.start("stpd", str(tmp_path), dns, conf=text, users={USER: PASSWORD})
    p.url = "socks5s://%s:%s@127.0.0.1:%d?ca=%s" % (USER, PASSWORD, p.port, pki.path("ca.pem"))
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(30)
    script = tmp_path / "dying.py"
    script.write_text(DYING)
    env = clean_env(STP_PROXY=p.url, STP_PROXY_LOOPBACK="1", STP_TIMEOUT="20", STP_AUTOCONF="0")
    proc = subprocess.Popen([stpify_bin(), "/usr/bin/python3", str(script),
                             str(ls.getsockname()[1])], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        c, _ = ls.accept()
        c.sendall(b"hello")
        assert proc.stdout.readline() == b"first 5\n"
        p.wait_log(r"TLS X'86' version", 5)
        p.signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        c.close()
    finally:
        ls.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = out.decode().splitlines()
    assert lines[0] in ("eof", "error 104"), lines
    assert float(lines[1].split()[1]) < 10.0
    p.proc.wait(timeout=10)
