"""Pipelining inside TLS (docs/protocol.md 5.11, docs/client.md).

stpd's `tls on` listener hands the plaintext to the same session parser as
plain TCP: greeting, RFC 1929, request and data in one TLS record, and cut
at every byte across records, get the same answers and the same echo.

libstp, once discovery says the proxy takes it, sends after the TLS
handshake in one write what it would otherwise send message by message:
  socks5+tls://  greeting + RFC 1929 + request (or X'30' for the
                 multiplexed connection), one TLS record;
  socks5s://     [X'02'] option list + sub-method list + RFC 1929 and
                 [X'03'] request (or X'30'), one send.
Relays in front of stpd show it on the wire: one terminates TLS and
records the plaintext a client sent before the proxy's first answer, the
other reads the X'86' frames and notes whether an X'03' frame came before
the proxy's first X'02' frame. Both can cut the first pipelined connection
(a proxy that fails pipelining): that connection fails, the next ones go
step by step and libstp says pipelining is off.
"""

import os
import re
import selectors
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading

import pytest

import socksraw as S
from test_stpify import clean_env, stpify_bin
from test_tls_client import PASSWORD, USER, conf as tls_conf
from tls_fixtures import pki  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.stpd_module("tls"), pytest.mark.stpd_module("discovery")]

HELLO = b"hello, pipelined in TLS\n"
M_FEATURES = 0x87
MUX_REQ = bytes([5, 0x30, 0, 1, 0, 0, 0, 0, 0, 0])


def tls_listener_port(text):
    return int(re.search(r"listen 127\.0\.0\.1:(\d+) \{ name tlsl", text).group(1))


def start_wrap(stpd_factory, pki, methods="userpass"):
    import services
    text = tls_conf(pki, tls_listener=services.free_port(), methods=methods)
    p = stpd_factory(conf=text, users={USER: PASSWORD})
    p.tls_port = tls_listener_port(text)
    return p


# ---- stpd: pipelined plaintext inside a `tls on` listener ----

def whole_handshake(port, auth=True):
    msg = S.greeting((S.M_USERPASS,) if auth else (S.M_NONE,))
    if auth:
        msg += S.userpass_msg(USER, PASSWORD)
    return msg + S.request_msg(S.CMD_CONNECT, "127.0.0.1", port) + HELLO


def tls_dial(pki, port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return pki.client_context().wrap_socket(raw, server_hostname="localhost")


def recv_exact(s, n):
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        assert chunk, "closed after %r" % got
        got += chunk
    return got


def expect_pipelined_answers(s, auth=True, what=""):
    want = bytes([5, 2, 1, 0]) if auth else bytes([5, 0])
    assert recv_exact(s, len(want)) == want, what
    rep = recv_exact(s, 4)
    assert rep[:2] == b"\x05\x00", (what, rep)
    assert rep[3] == 1, (what, rep)
    recv_exact(s, 6)
    assert recv_exact(s, len(HELLO)) == HELLO, what


@pytest.mark.parametrize("auth", [True, False], ids=["userpass", "none"])
def test_stpd_takes_the_whole_handshake_in_one_tls_record(stpd_factory, pki, echo, auth):
    p = start_wrap(stpd_factory, pki, methods="userpass" if auth else "none")
    with tls_dial(pki, p.tls_port) as s:
        s.sendall(whole_handshake(echo.port, auth))  # one SSL_write: one record
        expect_pipelined_answers(s, auth)
    p.wait_log(r"session id=\d+ .*cmd=connect .*rep=\"succeeded\"", timeout=20)
    assert p.alive()


def test_stpd_takes_it_cut_at_every_byte_across_records(stpd_factory, pki, echo):
    """Two records, cut at every byte; then every byte a record of its own."""
    p = start_wrap(stpd_factory, pki)
    msg = whole_handshake(echo.port)
    for cut in range(1, len(msg)):
        with tls_dial(pki, p.tls_port) as s:
            s.sendall(msg[:cut])
            s.sendall(msg[cut:])
            expect_pipelined_answers(s, what="cut %d" % cut)
    with tls_dial(pki, p.tls_port) as s:
        for i in range(len(msg)):
            s.sendall(msg[i:i + 1])
        expect_pipelined_answers(s, what="one byte per record")
    n = len(msg)
    assert len(p.wait_lines(r"session id=\d+ .*user=alice cmd=connect .*rep=\"succeeded\"",
                            n, timeout=30)) == n
    assert p.alive()


def test_stpd_x86_options_and_subauth_in_one_record(stpd_factory, pki, echo):
    """X'86': option list, sub-method list and RFC 1929 in ONE record (one
    X'02' frame), request and data in X'03', cut at every byte. stpd used
    to wait for more input before reading a sub-method list that shared
    the options' record, and took the X'03' frame for a skipped step."""
    import x86_client as X
    from test_tls import _req, every_split_x86, start
    p = start(stpd_factory, pki)
    u, pw = USER.encode(), PASSWORD.encode()
    x02 = bytes([1, X.OPT_SUBAUTH, 5, 1, 2, 1, len(u)]) + u + bytes([len(pw)]) + pw
    every_split_x86(p, pki, lambda c: (c.seal(X.OPTIONS, x02)
                                       + c.seal(X.DATA, _req(echo.port) + HELLO)
                                       + c.seal_close()), HELLO)
    assert p.alive()


# ---- relays that see what libstp sends ----

class Relay:
    """A relay in front of stpd, one thread, per connection a record of
    what the client did before the proxy answered (see subclasses)."""

    def __init__(self, upstream, cut_first=False):
        self.upstream = upstream
        self.cut_first = cut_first
        self.cut = 0
        self.conns = []
        self.lock = threading.Lock()
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:  # slots in accept order
                slot = len(self.conns)
                self.conns.append(self.EMPTY)
            threading.Thread(target=self._serve, args=(c, slot), daemon=True).start()

    def _serve(self, c, slot):
        try:
            self._pump(c, slot)
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.lsock.close()


def _recv_all(s):
    """What an (SSL) socket has now: b"" at its end, None when nothing."""
    try:
        data = s.recv(65536)
        while isinstance(s, ssl.SSLSocket) and data and s.pending():
            data += s.recv(s.pending())
        return data
    except (ssl.SSLWantReadError, BlockingIOError):
        return None


class TlsRecorder(Relay):
    """Terminates TLS (the test CA's server certificate) and relays the
    plaintext to stpd's plain listener: per connection, the plaintext the
    client sent before stpd's first byte. cut_first: the first connection
    whose first plaintext is a pipelined CONNECT or X'30' is closed there."""

    def __init__(self, upstream, pki, cut_first=False):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.path("server.pem"), pki.path("server.key"))
        super().__init__(upstream, cut_first)

    EMPTY = b""

    def _pump(self, raw, slot):
        raw.settimeout(20)
        c = self.ctx.wrap_socket(raw, server_side=True)
        c.setblocking(False)
        u = socket.create_connection(("127.0.0.1", self.upstream), timeout=20)
        u.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(c, selectors.EVENT_READ, u)
        sel.register(u, selectors.EVENT_READ, c)
        answered = False
        try:
            while True:
                events = sel.select(timeout=20)
                if not events:
                    return
                for key, _ in events:
                    data = _recv_all(key.fileobj)
                    if data is None:
                        continue
                    if not data:
                        return
                    if key.fileobj is u:
                        answered = True
                    elif not answered:
                        with self.lock:
                            self.conns[slot] += data
                            first = self.conns[slot]
                            cut = (self.cut_first and not self.cut and len(first) > 4
                                   and first[2] in (0, 2))
                            if cut:
                                self.cut += 1
                        if cut:
                            return  # "the proxy closes" before answering
                    key.data.setblocking(True)
                    key.data.sendall(data)
                    key.data.setblocking(False)
        finally:
            sel.close()
            u.close()
            c.close()  # the SSL socket: it took raw's descriptor over


class X86Watcher(Relay):
    """TCP relay that reads the X'86' frames (docs/tls.md 1): per
    connection, whether the client sent an X'03' frame before the proxy's
    first X'02' frame, i.e. its request went with its option list."""

    EMPTY = None  # not X'86' (discovery); then False, or True when pipelined

    def _pump(self, c, slot):
        u = socket.create_connection(("127.0.0.1", self.upstream), timeout=20)
        sel = selectors.DefaultSelector()
        sel.register(c, selectors.EVENT_READ, u)
        sel.register(u, selectors.EVENT_READ, c)
        buf = {c: b"", u: b""}
        skip = {c: 3, u: 2}  # the clear greeting and choice
        server_x02 = False
        try:
            while True:
                events = sel.select(timeout=20)
                if not events:
                    return
                for key, _ in events:
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    side = key.fileobj
                    buf[side] += data
                    if side is c and len(buf[c]) >= 3 and self.conns[slot] is None \
                            and buf[c][:3] == b"\x05\x01\x86":
                        with self.lock:
                            self.conns[slot] = False
                    cut = False
                    while self.conns[slot] is not None:
                        b = buf[side]
                        if len(b) < skip[side] + 4:
                            break
                        state = b[skip[side] + 1]
                        flen = struct.unpack("!H", b[skip[side] + 2:skip[side] + 4])[0]
                        if side is u and state == 2:
                            server_x02 = True
                        if side is c and state == 3 and not server_x02:
                            with self.lock:
                                self.conns[slot] = True
                                cut = self.cut_first and not self.cut
                                if cut:
                                    self.cut += 1
                        skip[side] += 4 + flen
                    if cut:
                        return
                    key.data.sendall(data)
        finally:
            sel.close()
            u.close()


# ---- libstp ----

CLIENT = r"""
import socket, sys
port = int(sys.argv[1])
for i in range(int(sys.argv[2])):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.sendall(b"ping %d\n" % i)
        got = b""
        while not got.endswith(b"\n"):
            chunk = s.recv(100)
            if not chunk:
                break
            got += chunk
        print(got.decode().strip() or "closed")
        s.close()
    except OSError:
        print("failed")
"""


def run_stpify(url, echo, tmp_path, n=5, **env):
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    e = clean_env(STP_PROXY=url, STP_PROXY_LOOPBACK="1", STP_DEBUG="1", STP_MUX="0",
                  STP_TIMEOUT="20", STP_AUTOCONF="0", **env)
    e.pop("STP_PIPELINING", None)
    r = subprocess.run([stpify_bin(), sys.executable, str(script), str(echo.port), str(n)],
                       env=e, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    return r.stdout.decode().split("\n")[:n], r.stderr.decode()


def wrap_url(port, pki):
    return "socks5+tls://%s:%s@127.0.0.1:%d?ca=%s" % (USER, PASSWORD, port, pki.path("ca.pem"))


def x86_url(port, pki):
    return "socks5s://%s:%s@127.0.0.1:%d?ca=%s" % (USER, PASSWORD, port, pki.path("ca.pem"))


STEP_GREETING = S.greeting((S.M_NONE, S.M_USERPASS))  # the engine, step by step


def pipelined_connect(port):
    return S.greeting((S.M_USERPASS,)) + S.userpass_msg(USER, PASSWORD) + \
        S.request_msg(S.CMD_CONNECT, "127.0.0.1", port)


def test_libstp_pipelines_inside_tls_listener(stpd_factory, pki, echo, tmp_path):
    """socks5+tls://: two connections step by step, discovery through TLS,
    then greeting + RFC 1929 + request as one plaintext flight."""
    p = stpd_factory(conf=tls_conf(pki, methods="userpass"), users={USER: PASSWORD})
    rec = TlsRecorder(p.port, pki)
    try:
        lines, log = run_stpify(wrap_url(rec.port, pki), echo, tmp_path)
    finally:
        rec.close()
    assert lines == ["ping %d" % i for i in range(5)]
    # stpify connects the application's socket to the proxy before it asks
    # discovery, so the discovery connection comes third or fourth.
    first = [f for f in rec.conns if f != S.greeting((M_FEATURES,))]
    assert len(rec.conns) == 6 and len(first) == 5, rec.conns  # one discovery, inside TLS
    assert first == [STEP_GREETING] * 2 + [pipelined_connect(echo.port)] * 3, rec.conns
    assert log.count("(pipelined)") == 3, log


def test_libstp_pipelines_with_stpd_tls_listener(stpd_factory, pki, echo, tmp_path):
    """The same against stpd's own `tls on` listener: discovery's session
    and the pipelined ones in stpd's log."""
    p = start_wrap(stpd_factory, pki)
    lines, log = run_stpify(wrap_url(p.tls_port, pki), echo, tmp_path)
    assert lines == ["ping %d" % i for i in range(5)]
    assert log.count("(pipelined)") == 3, log
    assert "features of 127.0.0.1:%d: discovery" % p.tls_port in log, log
    ok = p.wait_lines(r"session id=\d+ .*user=alice cmd=connect .*rep=\"succeeded\"", 5)
    assert len(ok) == 5, p.log()


def test_libstp_falls_back_inside_tls_listener(stpd_factory, pki, echo, tmp_path):
    """The proxy closes the first pipelined handshake: that connection
    fails, the later ones go step by step, pipelining is off."""
    p = stpd_factory(conf=tls_conf(pki, methods="userpass"), users={USER: PASSWORD})
    rec = TlsRecorder(p.port, pki, cut_first=True)
    try:
        lines, log = run_stpify(wrap_url(rec.port, pki), echo, tmp_path, n=6)
    finally:
        rec.close()
    assert rec.cut == 1, rec.conns
    assert lines.count("failed") == 1, lines
    assert [x for x in lines if x != "failed"] == ["ping %d" % i for i in range(6)
                                                  if lines[i] != "failed"]
    whole = pipelined_connect(echo.port)
    cut_at = rec.conns.index(whole)
    assert rec.conns.count(S.greeting((M_FEATURES,))) == 1, rec.conns
    assert all(f in (STEP_GREETING, S.greeting((M_FEATURES,))) for f in rec.conns[cut_at + 1:]), \
        rec.conns
    assert "pipelining to 127.0.0.1:%d (TLS) off" % rec.port in log, log


def test_libstp_pipelines_x86(stpd_factory, pki, echo, tmp_path):
    """socks5s://: after discovery (in the clear) and two negotiations
    step by step, options + sub-authentication + request in one send: the
    X'03' frame is on the wire before stpd's option answer."""
    p = stpd_factory(conf=tls_conf(pki), users={USER: PASSWORD})
    w = X86Watcher(p.port)
    try:
        lines, log = run_stpify(x86_url(w.port, pki), echo, tmp_path)
    finally:
        w.close()
    assert lines == ["ping %d" % i for i in range(5)]
    assert w.conns.count(None) == 1, w.conns  # discovery, in the clear (third or fourth)
    assert [x for x in w.conns if x is not None] == [False, False, True, True, True], w.conns
    assert log.count("X'86' options, sub-authentication, request in one write (pipelined)") == 3, log
    assert len(p.wait_lines(r"X'86' subauthentication userpass", 5)) == 5, p.log()
    ok = p.wait_lines(r"session id=\d+ .*user=alice cmd=connect .*rep=\"succeeded\"", 5)
    assert len(ok) == 5, p.log()


def test_libstp_falls_back_x86(stpd_factory, pki, echo, tmp_path):
    p = stpd_factory(conf=tls_conf(pki), users={USER: PASSWORD})
    w = X86Watcher(p.port, cut_first=True)
    try:
        lines, log = run_stpify(x86_url(w.port, pki), echo, tmp_path, n=6)
    finally:
        w.close()
    assert w.cut == 1, w.conns
    assert lines.count("failed") == 1, lines
    cut_at = w.conns.index(True)
    assert w.conns.count(None) == 1, w.conns
    assert all(x is not True for x in w.conns[cut_at + 1:]), w.conns
    assert "pipelining to 127.0.0.1:%d (X'86') off" % w.port in log, log


# ---- a real stpd that changes its mind (SIGHUP) between connections ----

PAUSING_CLIENT = r"""
import socket, sys
port, n, pause = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    if i == pause:
        print("paused", flush=True)
        sys.stdin.readline()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.sendall(b"ping %d\n" % i)
        got = s.recv(100)
        print(got.decode().strip() or "closed", flush=True)
        s.close()
    except OSError:
        print("failed", flush=True)
"""


def run_with_reload(p, url, echo, tmp_path, new_conf, n=6, pause=3):
    """n connections under stpify; before the pause-th, stpd reloads new_conf."""
    script = tmp_path / "pausing.py"
    script.write_text(PAUSING_CLIENT)
    e = clean_env(STP_PROXY=url, STP_PROXY_LOOPBACK="1", STP_DEBUG="1", STP_MUX="0",
                  STP_TIMEOUT="20", STP_AUTOCONF="0")
    e.pop("STP_PIPELINING", None)
    c = subprocess.Popen([stpify_bin(), sys.executable, str(script), str(echo.port), str(n),
                          str(pause)], env=e, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        before = [c.stdout.readline().strip() for _ in range(pause)]
        assert c.stdout.readline().strip() == "paused"
        mark = p.log_mark()
        p.write_conf(new_conf)
        p.signal(signal.SIGHUP)
        p.wait_log(r"configuration reloaded", since=mark, timeout=20)
        out, err = c.communicate("go\n", timeout=120)
    finally:
        if c.poll() is None:
            c.kill()
            c.wait()
    assert c.returncode == 0, err[-3000:]
    return before + out.split("\n")[:n - pause], err, mark


def test_libstp_forgets_when_tls_listener_refuses_the_method(stpd_factory, pki, echo, tmp_path):
    """socks5+tls://: stpd's document said X'02'; after a reload stpd takes
    only X'00' and answers the pipelined greeting with X'FF'. That
    connection fails, pipelining is off, the next ones go step by step
    (offering X'00' and X'02') and get through."""
    import services
    tls_port = services.free_port()
    p = stpd_factory(conf=tls_conf(pki, tls_listener=tls_port, methods="userpass"),
                     users={USER: PASSWORD})
    lines, log, mark = run_with_reload(p, wrap_url(tls_port, pki), echo, tmp_path,
                                       tls_conf(pki, tls_listener=tls_port, methods="none"))
    assert lines == ["ping 0", "ping 1", "ping 2", "failed", "ping 4", "ping 5"], (lines, log)
    assert log.count("(pipelined)") == 2, log  # the third connection, and the refused one
    assert "pipelining to 127.0.0.1:%d (TLS) off" % tls_port in log, log
    assert "proxy chose method none" in log.split("(TLS) off")[1], log
    # (a session's line may come after the mark: count them all)
    ok = p.wait_lines(r"session id=\d+ .*cmd=connect .*rep=\"succeeded\"", 5)
    assert len(ok) == 5, p.log()
    p.wait_log(r"no acceptable authentication method among 1 offered", since=mark, timeout=20)


def test_libstp_forgets_when_x86_starts_subauth(stpd_factory, pki, echo, tmp_path):
    """socks5s://: stpd ran no sub-authentication, so libstp pipelined
    options + request; after a reload stpd requires RFC 1929: its option
    answer has X'01', the X'03' frame is a skipped step. That connection
    fails, the next ones negotiate step by step with sub-authentication."""
    p = stpd_factory(conf=tls_conf(pki, subauth=None), users={USER: PASSWORD})
    lines, log, mark = run_with_reload(p, x86_url(p.port, pki), echo, tmp_path,
                                       tls_conf(pki, subauth="userpass"))
    assert lines == ["ping 0", "ping 1", "ping 2", "failed", "ping 4", "ping 5"], (lines, log)
    assert log.count("X'86' options, request in one write (pipelined)") == 2, log
    assert "pipelining to 127.0.0.1:%d (X'86') off" % p.port in log, log
    p.wait_log(r"X'86' peer sent STATE X'03' while option negotiation still needed bytes",
               since=mark, timeout=20)
    assert len(p.wait_lines(r"X'86' subauthentication userpass", 2, since=mark)) == 2, p.log()


# ---- the multiplexed connection (stp_mux_open) ----

MUX_CLIENT = r"""
import ctypes, socket, sys
lib = ctypes.CDLL(sys.argv[1])
lib.stp_mux_open.restype = ctypes.c_void_p
lib.stp_mux_open.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
lib.stp_mux_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_int,
                                ctypes.POINTER(ctypes.c_int)]
lib.stp_mux_close.argtypes = [ctypes.c_void_p]
proxy = ctypes.create_string_buffer(65536)
err = ctypes.c_int(0)
assert lib.stp_proxy_parse(proxy, sys.argv[2].encode(), ctypes.byref(err)) == 0, err.value
for i in range(int(sys.argv[4])):
    m = lib.stp_mux_open(proxy, 20000, ctypes.byref(err))
    if not m:  # run_mux's line check fails on it; test_muxpipe.py expects it
        print("failed", flush=True)
        continue
    fd = lib.stp_mux_connect(m, b"127.0.0.1", int(sys.argv[3]), 20000, ctypes.byref(err))
    assert fd >= 0, "stp_mux_connect: %d" % err.value
    s = socket.socket(fileno=fd)
    s.settimeout(20)
    s.sendall(b"mux %d\n" % i)
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(100)
        if not chunk:
            break
        got += chunk
    print(got.decode().strip(), flush=True)
    s.close()
    lib.stp_mux_close(m)
"""


def libstp_path():
    return os.path.join(os.path.dirname(os.path.dirname(stpify_bin())), "client", "libstp.so.2")


def run_mux(url, echo, tmp_path, n=4):
    script = tmp_path / "mux.py"
    script.write_text(MUX_CLIENT)
    e = clean_env(STP_PROXY_LOOPBACK="1", STP_DEBUG="1", STP_AUTOCONF="0")
    e.pop("STP_PIPELINING", None)
    r = subprocess.run([sys.executable, str(script), libstp_path(), url, str(echo.port), str(n)],
                       env=e, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert r.stdout.decode().split("\n")[:n] == ["mux %d" % i for i in range(n)]
    return r.stderr.decode()


@pytest.mark.stpd_module("mux")
def test_mux_connection_pipelined_inside_tls_listener(stpd_factory, pki, echo, tmp_path):
    """The third multiplexed connection of a process (after discovery):
    greeting + RFC 1929 + X'30' in one TLS record, and its stream echoes."""
    p = stpd_factory(conf=tls_conf(pki, methods="userpass"), users={USER: PASSWORD})
    rec = TlsRecorder(p.port, pki)
    try:
        log = run_mux(wrap_url(rec.port, pki), echo, tmp_path)
    finally:
        rec.close()
    whole = S.greeting((S.M_USERPASS,)) + S.userpass_msg(USER, PASSWORD) + MUX_REQ
    assert rec.conns[:3] == [S.greeting((S.M_USERPASS,))] * 2 + [S.greeting((M_FEATURES,))], \
        rec.conns
    # after the pipelined flight the client sends the HTTP/2 preface only
    # once X'30' is answered: the first flight is exactly the three messages
    assert rec.conns[3:] == [whole] * 2, rec.conns
    assert log.count("X'30' in one TLS write (pipelined)") == 2, log


@pytest.mark.stpd_module("mux")
def test_mux_connection_pipelined_x86(stpd_factory, pki, echo, tmp_path):
    p = stpd_factory(conf=tls_conf(pki), users={USER: PASSWORD})
    w = X86Watcher(p.port)
    try:
        log = run_mux(x86_url(w.port, pki), echo, tmp_path)
    finally:
        w.close()
    assert w.conns == [False, False, None, True, True], w.conns
    assert log.count("accepted inside TLS") == 4, log
    assert log.count("method X'86', pipelined)") == 2, log
    assert len(p.wait_lines(r"session id=\d+ .*user=alice cmd=mux .*rep=\"succeeded\"", 4)) == 4
