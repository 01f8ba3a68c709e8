"""Automatic multiplexing (docs/client.md, docs/protocol.md 5.11): libstp,
and so stpify and `stp`, open CONNECTs as streams of one shared X'30'
connection per proxy when feature discovery lists X'30' for the client.
Real programs (curl, python3 under stpify, `stp connect`); stpd's log tells
how many client connections carried how many streams."""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import servers
import stpdconf
from test_mux import flood_server
from test_stpify import clean_env, stpify_bin

pytestmark = [pytest.mark.stpd_module("mux"), pytest.mark.stpd_module("discovery")]

SESSION_MUX = r"session id=\d+ .*cmd=mux .*rep=\"succeeded\""
PLAIN_CONNECT = r"session id=\d+ .*cmd=connect "


def env_for(p, **extra):
    return clean_env(STP_PROXY="socks5://127.0.0.1:%d" % p.port, STP_PROXY_LOOPBACK="1",
                     STP_TIMEOUT="15", STP_NO_AUTOCONFIG="1", **extra)


def run(p, argv, timeout=60, **extra):
    return subprocess.run([stpify_bin()] + argv, capture_output=True, timeout=timeout,
                          env=env_for(p, **extra))


def curl_args(http, n, *more):
    """N URLs, each its own TCP connection (Connection: close); curl
    prints "STATUS SIZE" per response."""
    urls = ["http://127.0.0.1:%d/big/%d" % (http.port, 1000 + i) for i in range(n)]
    return ["curl", "-sS", "--max-time", "30", "-H", "Connection: close",
            "-w", "%{http_code} %{size_download}\n"] + list(more) + \
        [a for u in urls for a in ("-o", "/dev/null", u)]


def expect_curl(r, n):
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    got = sorted(r.stdout.decode().split("\n")[:-1])
    assert got == sorted("200 %d" % (1000 + i) for i in range(n)), r.stdout


def flows(p, since=0):
    return p.log_lines(r"flow id=(\d+)\.\d+ .*cmd=connect .*rep=\"succeeded\"", since)


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
def test_curl_streams_share_one_connection(stpd_factory, http, parallel):
    """N requests (each its own TCP connection for curl): one client
    connection to stpd switched with X'30', N flows on it, no plain
    CONNECT session; every response complete."""
    n = 12
    p = stpd_factory(conf=stpdconf.conf())
    more = ("--parallel", "--parallel-immediate", "--parallel-max", "6") if parallel else ()
    r = run(p, curl_args(http, n, *more))
    expect_curl(r, n)
    p.wait_log(SESSION_MUX, timeout=10)
    assert len(p.log_lines(SESSION_MUX)) == 1, p.log()
    f = p.wait_lines(r"flow id=(\d+)\.\d+ .*cmd=connect .*rep=\"succeeded\"", n)
    assert len(f) == n, p.log()
    assert len({re.search(r"flow id=(\d+)\.", ln).group(1) for ln in f}) == 1  # one session
    assert not p.log_lines(PLAIN_CONNECT), p.log()


def test_mux_off_by_env(stpd_factory, http):
    p = stpd_factory(conf=stpdconf.conf())
    r = run(p, curl_args(http, 3), STP_MUX="0")
    expect_curl(r, 3)
    assert not p.log_lines(r"cmd=mux"), p.log()
    assert len(p.wait_lines(PLAIN_CONNECT, 3)) == 3, p.log()


def test_mux_denied_by_rules_falls_back(stpd_factory, http):
    """Rules block `mux`: X'30' is refused once (X'02'), then plain SOCKS
    per connection, the first one included."""
    p = stpd_factory(conf=stpdconf.conf(request_rules="request block { command mux }\n"
                                                      "request pass { }\n"))
    r = run(p, curl_args(http, 4))
    expect_curl(r, 4)
    assert len(p.wait_lines(r"session id=\d+ .*cmd=mux", 1)) == 1, p.log()
    assert not p.log_lines(SESSION_MUX), p.log()
    assert len(p.wait_lines(PLAIN_CONNECT, 4)) == 4, p.log()


@pytest.mark.parametrize("kind", ["danted", "microsocks"])
def test_servers_without_mux_still_work(proxy_factory, http, kind):
    import shutil
    if shutil.which(kind) is None:
        pytest.skip("%s not installed" % kind)
    p = proxy_factory(kind=kind)
    r = run(p, curl_args(http, 3))
    expect_curl(r, 3)


SLOW = r"""
import socket, sys, time, threading
echo, flood, sink = (int(a) for a in sys.argv[1:4])
def conn(port):
    return socket.create_connection(("127.0.0.1", port), timeout=20)
a = conn(flood)           # sends megabytes; never read
b = conn(sink)            # the target never reads what we send
b.setblocking(False)
pushed = 0
try:
    while True:
        pushed += b.send(b"y" * 65536)
except BlockingIOError:
    pass
print("pushed", pushed, flush=True)
t0 = time.monotonic()
for i in range(20):
    c = conn(echo)
    msg = b"stream %d\n" % i * 100
    c.sendall(msg)
    got = b""
    while len(got) < len(msg):
        d = c.recv(65536)
        assert d, "eof"
        got += d
    assert got == msg
    c.close()
print("echoes %.3f" % (time.monotonic() - t0), flush=True)
a.close(); b.close()
"""


def sink_server():
    """Accepts and never reads."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    held = []

    def loop():
        while True:
            try:
                held.append(ls.accept()[0])
            except OSError:
                return
    threading.Thread(target=loop, daemon=True).start()
    return ls, held


def test_slow_streams_do_not_block_others(stpd_factory, echo, tmp_path):
    """One stream whose program never reads (its target floods) and one
    whose target never reads (the program filled it): 20 echo streams on
    the same connection still finish, each byte right, in bounded time."""
    p = stpd_factory(conf=stpdconf.conf())
    fl = flood_server(8 << 20)
    sink, held = sink_server()
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    try:
        r = run(p, ["/usr/bin/python3", str(script), str(echo.port),
                    str(fl.getsockname()[1]), str(sink.getsockname()[1])], timeout=90)
    finally:
        fl.close()
        sink.close()
        for c in held:
            c.close()
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    out = dict(ln.split(" ", 1) for ln in r.stdout.decode().splitlines())
    assert int(out["pushed"]) > 0
    assert float(out["echoes"]) < 20.0  # generous: ~0.1 s unloaded
    # the session line is written when stpd sees the program's close
    p.wait_log(SESSION_MUX, timeout=20)
    assert len(p.log_lines(SESSION_MUX)) == 1, p.log()
    # 2 slow + 20 echo streams, all flows of the one session
    p.wait_log(r"flow id=\d+\.22 ", timeout=10)


DYING = r"""
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
got = s.recv(1000)
print("first", len(got), flush=True)
t0 = time.monotonic()
try:
    while True:
        d = s.recv(1 << 20)
        if not d:
            print("eof", flush=True)
            break
except OSError as e:
    print("error", e.errno, flush=True)
print("after %.3f" % (time.monotonic() - t0), flush=True)
"""


def test_stpd_killed_mid_stream_ends_the_stream(tmp_path, dns):
    """SIGKILL of stpd while a stream is open: the program's read ends
    (end of file or an error) at once, it does not hang. (This stpd is
    not proxy_factory's: its teardown wants exit 0.)"""
    if servers.server_kind() != "stpd":
        pytest.skip("needs stpd")
    p = servers.start("stpd", str(tmp_path), dns, conf=stpdconf.conf())
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(30)  # the program failing before it connects must not hang the test
    script = tmp_path / "dying.py"
    script.write_text(DYING)
    proc = subprocess.Popen([stpify_bin(), "/usr/bin/python3", str(script),
                             str(ls.getsockname()[1])], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_for(p))
    c, _ = ls.accept()
    c.sendall(b"hello")
    assert proc.stdout.readline() == b"first 5\n"
    p.signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    c.close()
    ls.close()
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = out.decode().splitlines()
    assert lines[0] in ("eof", "error 104"), lines
    assert float(lines[1].split()[1]) < 10.0
    p.proc.wait(timeout=10)


FORKING = r"""
import os, socket, sys
port = int(sys.argv[1])
def echo(tag):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(tag)
    got = b""
    while len(got) < len(tag):
        d = s.recv(100)
        assert d
        got += d
    s.close()
    return got == tag
assert echo(b"before fork\n")
pid = os.fork()
if pid == 0:
    ok = all(echo(b"child %d\n" % i) for i in range(5))
    os._exit(0 if ok else 3)
ok = all(echo(b"parent %d\n" % i) for i in range(5))
_, st = os.waitpid(pid, 0)
print("parent", ok, "child", os.waitstatus_to_exitcode(st), flush=True)
"""


def test_fork_child_gets_its_own_connection(stpd_factory, echo, tmp_path):
    p = stpd_factory(conf=stpdconf.conf())
    script = tmp_path / "fork.py"
    script.write_text(FORKING)
    r = run(p, ["/usr/bin/python3", str(script), str(echo.port)])
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert r.stdout == b"parent True child 0\n", r.stdout
    m = p.wait_lines(SESSION_MUX, 2)
    assert len(m) == 2, p.log()  # the parent's and the child's
    assert len(flows(p)) == 11


def test_stp_connect_uses_mux(stpd_factory, echo):
    stp = os.path.join(os.path.dirname(os.path.dirname(stpify_bin())), "cli", "stp")
    p = stpd_factory(conf=stpdconf.conf())
    env = {k: v for k, v in os.environ.items() if not k.startswith("STP")}
    r = subprocess.run([stp, "--proxy", "socks5://127.0.0.1:%d" % p.port, "--no-autoconfig",
                        "connect", "127.0.0.1", str(echo.port)],
                       input=b"automatic stream\n", capture_output=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"automatic stream\n"
    p.wait_log(SESSION_MUX, timeout=10)
    p.wait_log(r"flow id=\d+\.1 .*cmd=connect .*up=17 down=17 ", timeout=10)
    assert not p.log_lines(PLAIN_CONNECT)


@pytest.mark.parametrize("users", [None, {"alice": "pw-for-alice"}], ids=["none", "userpass"])
def test_switch_costs_one_connection(stpd_factory, echo, tmp_path, users):
    """Nothing known about the proxy: no discovery connection; the first
    connect opens the multiplexed connection (greeting, RFC 1929, X'30'
    step by step, as a plain CONNECT would) and the program's four
    connections are streams of it."""
    from test_pipelining import Recorder, run_client
    p = stpd_factory(users=users)
    rec = Recorder(p.port)
    auth = ("alice", "pw-for-alice") if users else None
    try:
        run_client(rec, echo, tmp_path, auth=auth, STP_MUX="1")
    finally:
        rec.close()
    # stpify's auto-configuration fetch (X'F4'), then the mux connection
    assert len(rec.first) == 2, rec.first
    assert b"\x05\x01\x87" not in rec.first
    p.wait_log(SESSION_MUX, timeout=10)
    assert len(p.log_lines(SESSION_MUX)) == 1, p.log()
    assert len(flows(p)) == 4, p.log()


COUNTED = r"""
import socket, sys, threading
port = int(sys.argv[1])
sizes = [tuple(int(x) for x in a.split(":")) for a in sys.argv[2:]]
errors = []
def one(up, down):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.sendall(down.to_bytes(4, "big") + b"u" * up)
        s.shutdown(socket.SHUT_WR)
        got = 0
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            got += len(d)
        s.close()
        if got != down:
            errors.append("%d:%d got %d" % (up, down, got))
    except Exception as e:
        errors.append("%d:%d %r" % (up, down, e))
ts = [threading.Thread(target=one, args=sz) for sz in sizes]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("errors", errors, flush=True)
"""

# (bytes the program sends after the 4-byte length, bytes the target sends
# back): empty, one byte, a curl-sized request, and both directions past
# one stream window (256 KiB), so flow control and the buffered paths count.
COUNTED_SIZES = [(0, 0), (1, 1), (79, 5202), (3000, 100000), (400000, 30), (300000, 700000)]


@pytest.mark.parametrize("mux", ["1", "0"], ids=["mux", "plain"])
def test_flow_counts_are_exact(stpd_factory, asym, tmp_path, mux):
    """Six concurrent streams to the asym service, each sending 4 + U bytes
    and reading N: every flow line says up=4+U down=N, exactly as the plain
    CONNECT sessions of the same program do (nothing counted twice, on
    either side, whatever the buffering)."""
    p = stpd_factory(conf=stpdconf.conf())
    script = tmp_path / "counted.py"
    script.write_text(COUNTED)
    r = run(p, ["/usr/bin/python3", str(script), str(asym.port)] +
            ["%d:%d" % sz for sz in COUNTED_SIZES], timeout=90, STP_MUX=mux)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert r.stdout == b"errors []\n", r.stdout
    line = (r"flow id=\d+\.\d+ .*cmd=connect " if mux == "1" else PLAIN_CONNECT) + \
        r".*up=(\d+) down=(\d+) .*rep=\"succeeded\""
    got = p.wait_lines(line, len(COUNTED_SIZES), timeout=20)
    counts = sorted(tuple(int(x) for x in re.search(r"up=(\d+) down=(\d+)", ln).groups())
                    for ln in got)
    assert counts == sorted((4 + u, d) for u, d in COUNTED_SIZES), p.log()
    # The mux session's line comes after its flows' (it ends when the
    # program closes the connection): wait for it, do not just look.
    if mux == "1":
        assert len(p.wait_lines(SESSION_MUX, 1, timeout=20)) == 1, p.log()
    else:
        assert not p.log_lines(SESSION_MUX), p.log()


def test_keepalive_stream_counts_every_request(stpd_factory, http):
    """curl fetching two URLs of one HTTP/1.1 server keeps one connection,
    so one stream carries both requests: its flow line's up= is the sum of
    curl's two request sizes (twice one request, not a double count), and
    down= both responses, headers and bodies."""
    p = stpd_factory(conf=stpdconf.conf())
    urls = ["http://127.0.0.1:%d/big/%d" % (http.port, n) for n in (3000, 5000)]
    r = run(p, ["curl", "-sS", "--max-time", "30",
                "-w", "%{num_connects} %{size_request} %{size_header} %{size_download}\n"] +
            [a for u in urls for a in ("-o", "/dev/null", u)])
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    rows = [[int(x) for x in ln.split()] for ln in r.stdout.decode().splitlines()]
    assert [row[0] for row in rows] == [1, 0], rows  # the second request reused it
    f = p.wait_lines(r"flow id=\d+\.\d+ .*cmd=connect .*up=(\d+) down=(\d+) ", 1)
    assert len(f) == 1, p.log()
    up, down = (int(x) for x in re.search(r"up=(\d+) down=(\d+)", f[0]).groups())
    assert up == sum(row[1] for row in rows), (f[0], rows)
    assert down == sum(row[2] + row[3] for row in rows), (f[0], rows)


HOLDING = r"""
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for i in range(n):     # one at a time, each kept open: 8 per connection
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    msg = b"held %d\n" % i
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        d = s.recv(100)
        assert d
        got += d
    assert got == msg
    held.append(s)
for s in held:
    s.close()
print("ok", flush=True)
"""


def test_busy_program_spreads_over_connections(stpd_factory, echo, tmp_path):
    """Streams in use past 8 on every multiplexed connection open another
    (up to 4): 20 streams held open at once are 3 connections of 8, 8 and
    4 streams; each stream is a flow of its own connection's session."""
    p = stpd_factory(conf=stpdconf.conf())
    script = tmp_path / "holding.py"
    script.write_text(HOLDING)
    r = run(p, ["/usr/bin/python3", str(script), str(echo.port), "20"])
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert r.stdout == b"ok\n"
    sessions = p.wait_lines(SESSION_MUX, 3, timeout=20)
    assert len(sessions) == 3, p.log()
    f = p.wait_lines(r"flow id=(\d+)\.\d+ .*cmd=connect .*rep=\"succeeded\"", 20)
    per = {}
    for ln in f:
        sid = re.search(r"flow id=(\d+)\.", ln).group(1)
        per[sid] = per.get(sid, 0) + 1
    assert sorted(per.values()) == [4, 8, 8], p.log()
    assert not p.log_lines(PLAIN_CONNECT), p.log()


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_stream_target_resolved_as_the_scheme_says(stpd_factory, echo, scheme):
    """socks5:// resolves the name in the client, so a multiplexed stream
    asks stpd for an address, as a plain CONNECT does; socks5h:// sends
    the name. (`localhost`: the hosts file, no DNS.)"""
    stp = os.path.join(os.path.dirname(os.path.dirname(stpify_bin())), "cli", "stp")
    p = stpd_factory(conf=stpdconf.conf())
    env = {k: v for k, v in os.environ.items() if not k.startswith("STP")}
    subprocess.run([stp, "--proxy", "%s://127.0.0.1:%d" % (scheme, p.port), "--no-autoconfig",
                    "connect", "localhost", str(echo.port)],
                   input=b"by name\n", capture_output=True, timeout=30, env=env)
    line = p.wait_log(r"flow id=\d+\.1 .*cmd=connect ", timeout=10).string
    if scheme == "socks5":
        assert re.search(r"target=(127\.0\.0\.1|\[::1\]):%d " % echo.port, line), line
    else:
        assert "target=localhost:%d " % echo.port in line, line
