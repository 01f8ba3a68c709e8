"""Pipelining (docs/protocol.md 5.11): greeting, method sub-negotiation,
request and the first application bytes in one write.

stpd must take such input exactly as if it came in pieces: every split
point is tried over real TCP, for method none, RFC 1929 and TLS X'86'.
libstp pipelines on its own once discovery says the proxy takes it (server
flag "pipelining"), and never against a proxy that does not say so: a
recording relay in front of the proxy shows what the client sent before
the proxy's first answer.
"""

import os
import shutil
import selectors
import socket
import subprocess
import threading

import pytest

import socksraw as S
from tls_fixtures import pki  # noqa: F401  (a fixture)
from test_stpify import stpify_bin

HELLO = b"hello, pipelined\n"
M_FEATURES = 0x87  # feature discovery (5.6)


def handshake(methods, auth, host, port):
    msg = S.greeting(methods)
    if auth:
        msg += S.userpass_msg(*auth)
    return msg + S.request_msg(S.CMD_CONNECT, host, port)


def expect_answers(s, auth):
    """The choice (and status), then a CONNECT reply that succeeded."""
    want = bytes([S.VER5, S.M_USERPASS, 0x01, 0x00]) if auth else bytes([S.VER5, S.M_NONE])
    assert S.recv_exact(s, len(want)) == want
    rep = S.read_reply(s)
    assert rep.rep == 0, rep


def send_in_two(port, msg, cut):
    s = S.dial(port, timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if cut:
        s.sendall(msg[:cut])
    s.sendall(msg[cut:])
    return s


def every_split(port, msg, auth):
    for cut in range(len(msg)):  # 0: one write
        with send_in_two(port, msg, cut) as s:
            expect_answers(s, auth)
            got = b""
            while len(got) < len(HELLO):
                chunk = s.recv(len(HELLO) - len(got))
                assert chunk, "closed at cut %d" % cut
                got += chunk
            assert got == HELLO, "cut %d" % cut


def test_every_split_none(stpd_factory, echo):
    p = stpd_factory()
    msg = handshake((S.M_NONE,), None, "127.0.0.1", echo.port) + HELLO
    every_split(p.port, msg, None)
    assert p.alive()


def test_every_split_userpass(stpd_factory, echo):
    p = stpd_factory(users={"alice": "pw-for-alice"})
    auth = ("alice", "pw-for-alice")
    msg = handshake((S.M_USERPASS,), auth, "127.0.0.1", echo.port) + HELLO
    every_split(p.port, msg, auth)
    assert p.alive()


def test_pipelined_failure_still_answers(stpd_factory, port):
    """A refused CONNECT with data behind it: the reply still arrives."""
    p = stpd_factory()
    msg = handshake((S.M_NONE,), None, "127.0.0.1", port) + HELLO
    with send_in_two(p.port, msg, 0) as s:
        assert S.recv_exact(s, 2) == bytes([S.VER5, S.M_NONE])
        rep = S.read_reply(s)
        assert rep.rep == 0x05  # connection refused
        assert S.closed_by_peer(s)


# ---- libstp: pipelines when, and only when, the proxy says it may ----


class Recorder:
    """A TCP relay in front of a proxy: per connection, the bytes the
    client sent before the proxy's first byte came back."""

    def __init__(self, upstream, sabotage=None):
        self.upstream = upstream
        self.sabotage = sabotage  # bytes: the first connection opening so is cut
        self.sabotaged = 0
        self.first = []  # one entry per connection, in accept order
        self.lock = threading.Lock()
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                slot = len(self.first)
                self.first.append(b"")
            threading.Thread(target=self._pump, args=(c, slot), daemon=True).start()

    def _pump(self, c, slot):
        u = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
        sel = selectors.DefaultSelector()
        sel.register(c, selectors.EVENT_READ, u)
        sel.register(u, selectors.EVENT_READ, c)
        answered = False
        open_ends = 2
        try:
            while open_ends:
                events = sel.select(timeout=20)
                if not events:
                    break
                for key, _ in events:
                    data = key.fileobj.recv(65536)
                    if key.fileobj is u and data:
                        answered = True
                    if key.fileobj is c and not answered:
                        with self.lock:
                            self.first[slot] += data
                            cut = (self.sabotage is not None and not self.sabotaged
                                   and self.first[slot] == self.sabotage)
                            if cut:
                                self.sabotaged += 1
                        if cut:  # the proxy "closes" before answering
                            return
                    if not data:
                        sel.unregister(key.fileobj)
                        open_ends -= 1
                        try:
                            key.data.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    key.data.sendall(data)
        finally:
            c.close()
            u.close()

    def close(self):
        self.stop = True
        self.lsock.close()


CLIENT = r"""
import socket, sys
port = int(sys.argv[1])
for i in range(4):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"ping %d\n" % i)
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(100)
        if not chunk:
            break
        got += chunk
    print(got.decode().strip())
    s.close()
"""


def run_client(rec, echo, tmp_path, auth=None, **env):
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    userinfo = "%s:%s@" % auth if auth else ""
    e = {k: v for k, v in os.environ.items()
         if k.upper() not in ("STP_PROXY", "ALL_PROXY", "NO_PROXY", "STP_PIPELINING")}
    # per-connection pipelining: automatic multiplexing (test_muxauto.py) off
    e.update(STP_PROXY="socks5://%s127.0.0.1:%d" % (userinfo, rec.port), STP_PROXY_LOOPBACK="1",
             STP_DEBUG="1", STP_MUX="0")
    e.update(env)
    r = subprocess.run([stpify_bin(), "python3", str(script), str(echo.port)], env=e,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert r.stdout.decode().split("\n")[:4] == ["ping %d" % i for i in range(4)]
    return r.stderr.decode()


@pytest.mark.stpd_module("discovery")
def test_libstp_pipelines_with_stpd(stpd_factory, echo, tmp_path):
    p = stpd_factory()
    rec = Recorder(p.port)
    try:
        log = run_client(rec, echo, tmp_path)
    finally:
        rec.close()
    req = S.request_msg(S.CMD_CONNECT, "127.0.0.1", echo.port)
    # The first connection goes step by step (nothing known yet), then one
    # discovery (greeting X'87' alone), then every CONNECT in one write.
    assert S.greeting((M_FEATURES,)) in rec.first, rec.first
    pipelined = [f for f in rec.first if f == S.greeting((S.M_NONE,)) + req]
    assert len(pipelined) >= 2, rec.first
    assert log.count("(pipelined)") >= 2, log


@pytest.mark.stpd_module("discovery")
def test_libstp_pipelines_userpass(stpd_factory, echo, tmp_path):
    p = stpd_factory(users={"alice": "pw-for-alice"})
    rec = Recorder(p.port)
    auth = ("alice", "pw-for-alice")
    try:
        log = run_client(rec, echo, tmp_path, auth=auth)
    finally:
        rec.close()
    whole = S.greeting((S.M_USERPASS,)) + S.userpass_msg(*auth) + \
        S.request_msg(S.CMD_CONNECT, "127.0.0.1", echo.port)
    assert len([f for f in rec.first if f == whole]) >= 2, rec.first
    assert "(pipelined)" in log


def test_libstp_pipelining_off_by_env(stpd_factory, echo, tmp_path):
    p = stpd_factory()
    rec = Recorder(p.port)
    try:
        log = run_client(rec, echo, tmp_path, STP_PIPELINING="0")
    finally:
        rec.close()
    assert "(pipelined)" not in log
    assert S.greeting((M_FEATURES,)) not in rec.first  # no discovery asked for it
    assert all(len(f) <= 4 for f in rec.first), rec.first  # greetings alone


@pytest.mark.parametrize("kind", ["microsocks", "danted"])
def test_libstp_never_pipelines_without_the_flag(proxy_factory, echo, tmp_path, kind):
    """microsocks takes one recv() as one message: pipelining would break it."""
    if kind == "microsocks" and not shutil.which("microsocks"):
        pytest.skip("microsocks not installed")
    if kind == "danted" and not shutil.which("danted"):
        pytest.skip("danted not installed")
    p = proxy_factory(kind=kind)
    rec = Recorder(p.port)
    try:
        log = run_client(rec, echo, tmp_path)
    finally:
        rec.close()
    assert "(pipelined)" not in log
    assert all(len(f) <= 4 for f in rec.first), rec.first


# ---- inside TLS (method X'86', docs/tls.md): the same, after the handshake ----

@pytest.mark.stpd_module("tls")
def test_every_split_x86(stpd_factory, pki, echo):  # noqa: F811  (pki is a fixture)
    """Last handshake flight, options, sub-method list, RFC 1929, request,
    data and close_notify in one write, then cut at every byte of it."""
    import x86_client as X
    from test_tls import PASSWORD, USER, _req, every_split_x86, start
    p = start(stpd_factory, pki)
    u, pw = USER.encode(), PASSWORD.encode()

    def build(c):
        return (c.held
                + c.seal(X.OPTIONS, bytes([1, X.OPT_SUBAUTH]))
                + c.seal(X.OPTIONS, bytes([5, 1, 2]))
                + c.seal(X.OPTIONS, bytes([1, len(u)]) + u + bytes([len(pw)]) + pw)
                + c.seal(X.DATA, _req(echo.port))
                + c.seal(X.DATA, HELLO)
                + c.seal_close())
    every_split_x86(p, pki, build, HELLO, hold=True)
    assert p.alive()


FLAKY_CLIENT = r"""
import socket, sys
port = int(sys.argv[1])
for i in range(6):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"ping %d\n" % i)
        print(s.recv(100).decode().strip() or "closed")
        s.close()
    except OSError as e:
        print("failed")
"""


@pytest.mark.stpd_module("discovery")
def test_libstp_falls_back_after_a_failed_pipelined_handshake(stpd_factory, echo, tmp_path):
    """A proxy that closes a pipelined handshake: that connection fails,
    the next ones to the proxy go step by step (docs/client.md)."""
    p = stpd_factory()
    whole = S.greeting((S.M_NONE,)) + S.request_msg(S.CMD_CONNECT, "127.0.0.1", echo.port)
    rec = Recorder(p.port, sabotage=whole)
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY_CLIENT)
    e = {k: v for k, v in os.environ.items()
         if k.upper() not in ("STP_PROXY", "ALL_PROXY", "NO_PROXY", "STP_PIPELINING")}
    e.update(STP_PROXY="socks5://127.0.0.1:%d" % rec.port, STP_PROXY_LOOPBACK="1",
             STP_DEBUG="1", STP_MUX="0")
    try:
        r = subprocess.run([stpify_bin(), "python3", str(script), str(echo.port)], env=e,
                           capture_output=True, timeout=60)
    finally:
        rec.close()
    lines = r.stdout.decode().split("\n")[:6]
    assert rec.sabotaged == 1, rec.first
    assert lines.count("failed") == 1, lines
    assert [x for x in lines if x != "failed"] == ["ping %d" % i for i in range(6)
                                                  if lines[i] != "failed"]
    cut_at = rec.first.index(whole)
    assert all(len(f) <= 4 for f in rec.first[cut_at + 1:]), rec.first
    assert "pipelining to 127.0.0.1:%d off" % rec.port in r.stderr.decode()
