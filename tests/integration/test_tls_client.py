"""The client side of TLS (docs/client.md, docs/tls.md): libstp and the stp
command through stpd's method X'86' (socks5s://) and through a `tls on`
listener (socks5+tls://), certificate checks with their documented errors
and exit codes, the relay thread behind stp_connect, stpify taking TLS URLs, and
a recording man-in-the-middle that checks libstp's X'86' frames byte for
byte against the draft's framing.

Run: STPD=build-tlsc/src/server/stpd /usr/bin/python3 -m pytest \
       tests/integration/test_tls_client.py
"""

import os
import re
import socket
import struct
import subprocess
import threading
import time

import pytest

import services
import socksraw
from test_client_lib import clean_env, example_bin, stp, stp_bin
from tls_fixtures import pki  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.stpd_module("tls")]

USER, PASSWORD = "alice", "tls-Secret-42"
EXIT_USAGE, EXIT_BAD_URL, EXIT_AUTH, EXIT_LOCAL, EXIT_TLS = 1, 2, 4, 7, 21


def conf(pki, cert="server", subauth="userpass", tls_listener=None, methods="ssl",
         tls_extra=()):
    """One plain listener ($port) offering `methods`, optionally a 'tls on'
    listener, and the tls block with the server certificate `cert`."""
    text = "listen 127.0.0.1:$port { name plain }\n"
    if tls_listener:
        text += "listen 127.0.0.1:%d { name tlsl; tls on }\n" % tls_listener
    text += "resolver $dns\n"
    text += "auth { methods %s; backend file; users-file $users; }\n" % methods
    tls = ["cert %s" % pki.path(cert + ".pem"), "key %s" % pki.path(cert + ".key")]
    if subauth:
        tls.append("subauth %s" % subauth)
    tls += list(tls_extra)
    text += "tls { %s; }\n" % "; ".join(tls)
    text += "client pass { from 127.0.0.0/8 }\nrequest pass { }\n"
    return text


@pytest.fixture(autouse=True)
def _one_connection_per_target(monkeypatch):
    """These tests are about the TLS connection that carries one target
    (libstp's path when stpd refuses X'30'); multiplexing through TLS is
    test_muxtls.py's."""
    monkeypatch.setenv("STP_MUX", "0")


def start(stpd_factory, pki, **kw):
    return stpd_factory(conf=conf(pki, **kw), users={USER: PASSWORD})


def x86_url(p, pki, auth="", opts=""):
    q = "ca=%s%s" % (pki.path("ca.pem"), opts)
    return "socks5s://%s127.0.0.1:%d?%s" % (auth, p.port, q)


_extra_certs = {}


def server_cert(pki, name, san, start=None, end=None):
    """A server certificate from the test CA (made once per session)."""
    if name not in _extra_certs:
        kw = {"start": start, "end": end} if start else {"days": 30}
        pki._leaf(name, "/CN=stpd-test",
                  ["-addext", "subjectAltName=" + san,
                   "-addext", "extendedKeyUsage=serverAuth"], **kw)
        _extra_certs[name] = True
    return name


def ok(r):
    assert r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr.decode())
    return r


# ---------------------------------------------------------------------------
# method X'86' (socks5s://)


def test_x86_connect_no_subauth(stpd_factory, pki, echo):
    p = start(stpd_factory, pki, subauth=None)
    data = os.urandom(200000)
    r = ok(stp("connect", "127.0.0.1", echo.port, proxy=x86_url(p, pki), input=data))
    assert r.stdout == data
    p.wait_log(r"TLS X'86' version=TLSv1\.3")
    p.wait_log(r"X'86' options offered=- agreed=-")


def test_x86_connect_with_subauth(stpd_factory, pki, echo):
    p = start(stpd_factory, pki)
    url = x86_url(p, pki, auth="%s:%s@" % (USER, PASSWORD))
    r = ok(stp("connect", "127.0.0.1", echo.port, proxy=url, input=b"through x86\n"))
    assert r.stdout == b"through x86\n"
    p.wait_log(r"X'86' options offered=01 agreed=01")
    p.wait_log(r"X'86' subauthentication userpass")
    p.wait_log(r"session id=\d+ .*user=alice cmd=connect .*result=\"closed\"")
    assert PASSWORD not in p.log()


def test_x86_wrong_password(stpd_factory, pki, echo):
    p = start(stpd_factory, pki)
    url = x86_url(p, pki, auth="%s:wrong@" % USER)
    r = stp("connect", "127.0.0.1", echo.port, proxy=url)
    assert r.returncode == EXIT_AUTH, r.stderr
    assert b"authentication failed" in r.stderr


def test_x86_subauth_required_without_user(stpd_factory, pki, echo):
    """stpd wants a password and we offer no sub-authentication: it answers
    the options, then closes (docs/tls.md 2.8)."""
    p = start(stpd_factory, pki)
    r = stp("connect", "127.0.0.1", echo.port, proxy=x86_url(p, pki))
    assert r.returncode != 0 and r.stdout == b""
    p.wait_log("client does not offer subauthentication")


def test_x86_udp_naked(stpd_factory, pki, udp_echo):
    p = start(stpd_factory, pki)
    url = x86_url(p, pki, auth="%s:%s@" % (USER, PASSWORD), opts="&udp-naked=1")
    r = ok(stp("udp", "127.0.0.1", udp_echo.port, proxy=url, input=b"one\ntwo\n"))
    assert sorted(r.stdout.splitlines()) == [b"one", b"two"]
    p.wait_log(r"X'86' options offered=01,10 agreed=01,10")


def test_x86_udp_needs_udp_naked_option(stpd_factory, pki, udp_echo):
    p = start(stpd_factory, pki)
    url = x86_url(p, pki, auth="%s:%s@" % (USER, PASSWORD))
    r = stp("udp", "127.0.0.1", udp_echo.port, proxy=url, input=b"x\n")
    assert r.returncode == EXIT_LOCAL
    assert b"udp-naked=1" in r.stderr


def test_x86_method_refused(stpd_factory, pki, echo):
    """A server without 'ssl' in its methods answers X'FF'."""
    p = start(stpd_factory, pki, methods="userpass")
    r = stp("connect", "127.0.0.1", echo.port, proxy=x86_url(p, pki))
    assert r.returncode == EXIT_AUTH
    assert b"X'FF'" in r.stderr


def test_x86_client_certificate_names_the_user(stpd_factory, pki, echo):
    """cert=&key=: mutual TLS; stpd's cert-user makes CN=alice the user and
    skips sub-authentication (docs/tls.md section 3)."""
    extra = ("client-ca %s" % pki.path("ca.pem"), "client-cert require", "cert-user on")
    p = start(stpd_factory, pki, tls_extra=extra)
    opts = "&cert=%s&key=%s" % (pki.path("alice.pem"), pki.path("alice.key"))
    r = ok(stp("connect", "127.0.0.1", echo.port, proxy=x86_url(p, pki, opts=opts),
               input=b"mtls\n"))
    assert r.stdout == b"mtls\n"
    p.wait_log(r"client-cert=alice")
    p.wait_log(r"session id=\d+ .*user=alice cmd=connect")
    # Without the certificate stpd refuses the handshake.
    r = stp("connect", "127.0.0.1", echo.port, proxy=x86_url(p, pki))
    assert r.returncode == EXIT_TLS, r.stderr
    assert b"TLS handshake failed" in r.stderr


# ---------------------------------------------------------------------------
# SOCKS over TLS (socks5+tls://)


@pytest.fixture
def tls_listener(stpd_factory, pki):
    port = services.free_port()
    p = start(stpd_factory, pki, tls_listener=port, methods="userpass")
    p.tls_port = port
    return p


def wrap_url(p, scheme="socks5+tls", host="127.0.0.1", auth="%s:%s@" % (USER, PASSWORD),
             opts=None, pki=None):
    url = "%s://%s%s:%d" % (scheme, auth, host, p.tls_port)
    if opts is None:
        opts = "ca=" + pki.path("ca.pem")
    return url + ("?" + opts if opts else "")


def test_wrap_connect(tls_listener, pki, echo):
    data = os.urandom(300000)
    r = ok(stp("connect", "127.0.0.1", echo.port, proxy=wrap_url(tls_listener, pki=pki),
               input=data))
    assert r.stdout == data
    tls_listener.wait_log(r"TLS listener version=TLSv1\.3")
    tls_listener.wait_log(r"session id=\d+ .*user=alice cmd=connect")


def test_wrap_verifies_dns_name(tls_listener, pki, echo):
    """Proxy host 'localhost': checked against the certificate's DNS name
    (and sent as SNI)."""
    url = wrap_url(tls_listener, pki=pki, host="localhost")
    r = ok(stp("connect", "127.0.0.1", echo.port, proxy=url, input=b"by name\n"))
    assert r.stdout == b"by name\n"


def test_wrap_ca_and_insecure_flags(tls_listener, pki, echo):
    base = wrap_url(tls_listener, opts="")
    # Without a CA the system store is used: the test CA is not in it.
    r = stp("connect", "127.0.0.1", echo.port, proxy=base)
    assert r.returncode == EXIT_TLS
    assert re.search(rb"proxy certificate not trusted: (unable to get local issuer|self.signed)",
                     r.stderr), r.stderr
    r = ok(stp("--ca", pki.path("ca.pem"), "connect", "127.0.0.1", echo.port, proxy=base,
               input=b"ca flag\n"))
    assert r.stdout == b"ca flag\n"
    r = ok(stp("--insecure", "connect", "127.0.0.1", echo.port, proxy=base, input=b"insecure\n"))
    assert r.stdout == b"insecure\n"
    # They only make sense for TLS proxies.
    r = stp("--insecure", "connect", "127.0.0.1", echo.port,
            proxy="socks5://127.0.0.1:%d" % tls_listener.port)
    assert r.returncode == EXIT_USAGE


def test_wrap_bind(tls_listener, pki):
    """stp bind through TLS: stp_bind, then the second reply and the data
    through the connection object (stp_conn_relay)."""
    p = subprocess.Popen([stp_bin(), "--proxy", wrap_url(tls_listener, pki=pki), "--timeout",
                          "20", "bind"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=clean_env())
    try:
        line = p.stdout.readline().decode().strip()
        m = re.match(r"bound (\S+):(\d+)$", line)
        assert m, (line, p.stderr.read1(4000) if p.poll() is not None else "")
        peer = socket.create_connection((m.group(1), int(m.group(2))), timeout=10)
        with peer:
            assert p.stdout.readline().decode().startswith("peer 127.0.0.1:")
            peer.sendall(b"from-peer\n")
            assert p.stdout.readline() == b"from-peer\n"
            p.stdin.write(b"from-client\n")
            p.stdin.close()
            peer.settimeout(10)
            assert socksraw.recv_all(peer) == b"from-client\n"
        assert p.wait(timeout=10) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_example_program_stp_connect_over_tls(tls_listener, pki, echo):
    """The unchanged example (stp_connect, a plain fd) works through TLS.
    It exits right after close(fd): libstp waits at exit for the relay
    thread of a closed fd to finish, so under ASan LeakSanitizer finds
    none of that thread's OpenSSL state left behind."""
    env = clean_env(STP_PROXY=wrap_url(tls_listener, pki=pki))
    r = subprocess.run([example_bin(), "127.0.0.1", str(echo.port), "via-thread"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"via-thread\n"


class ReplyAndHold:
    """A target that answers one line and then neither sends nor closes:
    it only records whether the client's end (EOF) reaches it."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.eofs = []
        self.conns = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(10)
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = c.recv(4096)
                if not chunk:
                    return
                data += chunk
            c.sendall(b"held " + data)
            self.eofs.append(c.recv(4096) == b"")  # then hold the connection open
        except OSError:
            self.eofs.append(False)

    def close(self):
        self.srv.close()
        for c in self.conns:
            c.close()


def test_relay_thread_end_reaches_target_before_exit(tls_listener, pki):
    """A program that closes its fd and exits at once: the relay thread's
    close_notify still goes out (libstp waits for it at exit), so stpd
    passes the end on to the target, every time, even when the target
    never closes its side (the thread does not wait for it)."""
    target = ReplyAndHold()
    try:
        env = clean_env(STP_PROXY=wrap_url(tls_listener, pki=pki))
        for i in range(5):
            line = "run-%d" % i
            r = subprocess.run([example_bin(), "127.0.0.1", str(target.port), line],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                               env=env)
            assert r.returncode == 0, r.stderr
            assert r.stdout == ("held %s\n" % line).encode()
        deadline = time.time() + 10
        while len(target.eofs) < 5 and time.time() < deadline:
            time.sleep(0.05)
        assert target.eofs == [True] * 5, target.eofs
    finally:
        target.close()


def test_wrap_udp(tls_listener, pki, udp_echo):
    url = wrap_url(tls_listener, pki=pki, opts="ca=%s&udp-naked=1" % pki.path("ca.pem"))
    r = ok(stp("udp", "127.0.0.1", udp_echo.port, proxy=url, input=b"dgram\n"))
    assert r.stdout == b"dgram\n"


# ---------------------------------------------------------------------------
# certificate failures: documented message and exit code 21


def _fails(url, echo, want_err, want_detail):
    r = stp("connect", "127.0.0.1", echo.port, proxy=url)
    assert r.returncode == EXIT_TLS, r.stderr
    err = r.stderr.decode()
    assert want_err in err and re.search(want_detail, err), err
    return err


def test_untrusted_ca(stpd_factory, pki, echo):
    p = start(stpd_factory, pki, subauth=None)
    url = "socks5s://127.0.0.1:%d?ca=%s" % (p.port, pki.path("stranger.pem"))
    _fails(url, echo, "proxy certificate not trusted", r"unable to get local issuer")
    p.wait_log(r"TLS handshake failed")


def test_name_mismatch_by_sni(stpd_factory, pki, echo):
    p = start(stpd_factory, pki, subauth=None)
    _fails(x86_url(p, pki, opts="&sni=other.example"), echo, "proxy certificate name mismatch",
           r"hostname mismatch")


def test_name_mismatch_wrong_certificate(stpd_factory, pki, echo):
    cert = server_cert(pki, "wrongname", "DNS:wrong.example")
    p = start(stpd_factory, pki, subauth=None, cert=cert)
    _fails(x86_url(p, pki), echo, "proxy certificate name mismatch", r"IP address mismatch")
    # insecure=1 is the explicit way around it.
    r = ok(stp("connect", "127.0.0.1", echo.port, input=b"anyway\n",
               proxy=x86_url(p, pki, opts="&insecure=1")))
    assert r.stdout == b"anyway\n"


def test_expired_certificate(stpd_factory, pki, echo):
    cert = server_cert(pki, "srvexpired", "IP:127.0.0.1", start="20200101000000Z",
                       end="20200201000000Z")
    p = start(stpd_factory, pki, subauth=None, cert=cert)
    _fails(x86_url(p, pki), echo, "proxy certificate not trusted", r"certificate has expired")


def test_not_tls_at_all(stpd_factory, pki, echo):
    """socks5+tls:// to a plain listener: the handshake fails cleanly."""
    p = start(stpd_factory, pki, methods="userpass")
    url = "socks5+tls://127.0.0.1:%d?ca=%s" % (p.port, pki.path("ca.pem"))
    _fails(url, echo, "TLS handshake failed", r"TLS handshake failed: \S")


def test_bad_tls_options(pki):
    r = stp("connect", "h", 1, proxy="socks5s://127.0.0.1:1?bogus=1")
    assert r.returncode == EXIT_BAD_URL and b"option" in r.stderr
    r = stp("connect", "127.0.0.1", 1, proxy="socks5+tls://127.0.0.1:1?ca=/nonexistent/ca.pem")
    assert r.returncode == EXIT_BAD_URL
    assert b"cannot load" in r.stderr and b"/nonexistent/ca.pem" in r.stderr


# ---------------------------------------------------------------------------
# stpify takes TLS proxies (docs/stpify.md; the connections themselves:
# test_muxtls.py)


def test_stpify_takes_tls_proxy_urls(pki):
    """stpify used to refuse TLS URLs; it now starts the program with them
    (from --proxy or STP_PROXY)."""
    from test_stpify import stpify_bin  # STPIFY= (the ASan stage's plain one)
    stpify = stpify_bin()
    if not os.path.exists(stpify):
        pytest.skip("no stpify at %s" % stpify)
    for url in ("socks5s://127.0.0.1:1080", "socks5h+tls://127.0.0.1:1443"):
        r = subprocess.run([stpify, "--proxy", url, "echo", "ran"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, env=clean_env())
        assert r.returncode == 0 and r.stdout == b"ran\n", r.stderr
        r = subprocess.run([stpify, "echo", "ran"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30,
                           env=clean_env(STP_PROXY=url, STP_AUTOCONF="0"))
        assert r.returncode == 0 and r.stdout == b"ran\n", r.stderr


# ---------------------------------------------------------------------------
# X'86' frames byte for byte, recorded by a man in the middle


class FrameRecorder:
    """Relays one connection between libstp and stpd and parses both byte
    streams: the clear greeting and method choice, then VER|STATE|LEN
    frames. Anything unparsable is recorded as an error."""

    def __init__(self, upstream_port):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.port = self.ls.getsockname()[1]
        self.up = upstream_port
        self.streams = {"out": b"", "in": b""}
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _pipe(self, src, dst, key):
        while True:
            try:
                d = src.recv(65536)
            except OSError:
                d = b""
            if not d:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            self.streams[key] += d
            dst.sendall(d)

    def _run(self):
        c, _ = self.ls.accept()
        s = socket.create_connection(("127.0.0.1", self.up))
        t = threading.Thread(target=self._pipe, args=(s, c, "in"), daemon=True)
        t.start()
        self._pipe(c, s, "out")
        t.join(20)
        c.close()
        s.close()
        self.done.set()

    @staticmethod
    def frames(data, clear):
        """(clear prefix, [(ver, state, data)], leftover bytes)."""
        pre, off, out = data[:clear], clear, []
        while off + 4 <= len(data):
            ver, state, n = data[off], data[off + 1], struct.unpack("!H", data[off + 2:off + 4])[0]
            out.append((ver, state, data[off + 4:off + 4 + n]))
            off += 4 + n
        return pre, out, data[off:] if off <= len(data) else b"<short>"


def _records_whole(frame_data):
    off = 0
    while off < len(frame_data):
        if frame_data[off] not in (20, 21, 22, 23):
            return False
        off += 5 + struct.unpack("!H", frame_data[off + 3:off + 5])[0]
    return off == len(frame_data)


@pytest.mark.parametrize("mux", [False, True], ids=["one-connection", "multiplexed"])
def test_x86_frames_byte_for_byte(stpd_factory, pki, echo, monkeypatch, mux):
    """Also with libstp's multiplexing (test_muxtls.py): X'30' and HTTP/2
    in X'03' frames of whole records, close_notify in X'04' at exit."""
    if mux:
        monkeypatch.setenv("STP_MUX", "1")
    p = start(stpd_factory, pki)
    mitm = FrameRecorder(p.port)
    url = "socks5s://%s:%s@127.0.0.1:%d?ca=%s&udp-naked=1" % (USER, PASSWORD, mitm.port,
                                                             pki.path("ca.pem"))
    payload = os.urandom(70000)  # more than one frame's worth
    r = ok(stp("connect", "127.0.0.1", echo.port, proxy=url, input=payload))
    assert r.stdout == payload
    assert mitm.done.wait(20)

    pre, out, rest = FrameRecorder.frames(mitm.streams["out"], 3)
    assert pre == b"\x05\x01\x86"  # X'86' offered alone, in clear
    assert rest == b"", "client stream does not end on a frame boundary"
    assert {v for v, _, _ in out} == {1}, "frame VER must be X'01'"
    states = [st for _, st, _ in out]
    # STATE order 01 -> 02 -> 03 -> 04, each present, never going back.
    assert states == sorted(states) and set(states) == {1, 2, 3, 4}, states
    assert states[-1] == 4
    # Each frame of ours holds whole TLS records (docs/tls.md 2.3).
    assert all(_records_whole(d) for _, _, d in out)
    # X'02' carries: options, sub-method list, RFC 1929 request: 3 records.
    assert states.count(2) == 3
    # The close_notify frame is one alert record (type 21 / encrypted 23).
    assert out[-1][2][0] in (21, 23)

    pre_in, inn, rest_in = FrameRecorder.frames(mitm.streams["in"], 2)
    assert pre_in == b"\x05\x86"
    assert rest_in == b""
    in_states = [st for _, st, _ in inn]
    assert in_states == sorted(in_states) and in_states[-1] == 4
    assert in_states.count(2) == 3  # option answer, method choice, status
    # Our payload crossed encrypted: never in clear on the wire.
    assert payload[:64] not in mitm.streams["out"]
    assert PASSWORD.encode() not in mitm.streams["out"]
