"""TLS in stpd (docs/tls.md): method X'86'/X'06' (seed 004) against an
independent Python client (x86_client.py, ssl.MemoryBIO), every kind of bad
input, UDP-Naked, downgrade protection, mutual TLS, SOCKS over TLS through
stunnel4 + curl and openssl s_client, and a tshark capture proving the
password never crosses the wire in clear.

Run: STPD=build-tls/src/server/stpd /usr/bin/python3 -m pytest tests/integration/test_tls.py
"""

import os
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

import services
import socksraw
import stpdconf
import x86_client as X
from tls_fixtures import need, pki  # noqa: F401  (pki is a fixture)

pytestmark = [pytest.mark.stpd_module("tls")]

USER, PASSWORD = "alice", "tls-Secret-42"
REP_CMD_NOT_SUPPORTED = 0x07


def tls_conf(pki, listen_extra="", tls_extra="", methods="ssl", subauth="userpass",
             udp_naked=None, tls_listener=None, request_rules="request pass { }\n",
             client_cert=None, cert_user=False, users=True,
             client_rules=stpdconf.LOOPBACK_CLIENTS):
    """stpd config text: one plain listener ($port), optionally a second
    'tls on' listener (tls_listener = port), and the tls block."""
    tls = ["cert %s" % pki.path("server.pem"), "key %s" % pki.path("server.key")]
    if client_cert:
        tls += ["client-ca %s" % pki.path("ca.pem"), "client-cert %s" % client_cert]
    if cert_user:
        tls.append("cert-user on")
    if subauth:
        tls.append("subauth %s" % subauth)
    if udp_naked is not None:
        tls.append("udp-naked %s" % ("on" if udp_naked else "off"))
    if tls_extra:
        tls.append(tls_extra)
    text = "listen 127.0.0.1:$port { name plain; %s }\n" % listen_extra
    if tls_listener:
        text += "listen 127.0.0.1:%d { name tlsl; tls on; }\n" % tls_listener
    text += "resolver $dns\n"
    auth = "auth { methods %s;" % methods
    if users:
        auth += " backend file; users-file $users;"
    text += auth + " }\n"
    text += "tls { %s; }\n" % "; ".join(tls)
    text += client_rules + request_rules
    return text


def start(stpd_factory, pki, **kw):
    users = kw.pop("users_map", {USER: PASSWORD})
    return stpd_factory(conf=tls_conf(pki, **kw), users=users)


def client(proxy, pki, cert=None, **kw):
    return X.X86Client("127.0.0.1", proxy.port, pki.client_context(cert=cert, **kw),
                       server_hostname="localhost")


def full_login(c, opts=(X.OPT_SUBAUTH, X.OPT_UDP_NAKED)):
    assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
    c.handshake()
    agreed = c.options(list(opts))
    if X.OPT_SUBAUTH in agreed:
        assert c.subauth_methods([0x02]) == 0x02
        assert c.userpass(USER, PASSWORD) == 0
    return agreed


def still_serving(proxy, pki):
    """The server keeps serving after a bad client: a whole good session."""
    c = client(proxy, pki)
    full_login(c)
    c.close()


def in_states(c):
    return [st for d, st, _ in c.frames if d == "in"]


def _req(port):
    return bytes([5, 1, 0, 1]) + socket.inet_aton("127.0.0.1") + struct.pack("!H", port)


def every_split_x86(p, pki, build, hello, hold=False):
    """X'86' cut at every byte k: per k a new client past the greeting and
    handshake (hold: its last flight kept in c.held), build(c) the rest as
    one piece of wire, sent as wire[:k] then wire[k:]. The wire must ask for
    SUBAUTH, sub-method X'02', RFC 1929 (good), CONNECT to the echo service,
    data hello and close_notify; every answer is checked, for every k."""
    cuts = None
    k = 0
    while cuts is None or k < cuts:
        c = client(p, pki)
        assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
        c.handshake(hold=hold)
        wire = build(c)
        cuts = len(wire)  # the same length every time (same suite, same sizes)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if k:
            c.send_raw(wire[:k])
        c.send_raw(wire[k:])
        assert c.recv_plain(2, X.OPTIONS) == bytes([1, X.OPT_SUBAUTH]), k
        assert c.recv_plain(2, X.OPTIONS) == b"\x05\x02", k
        assert c.recv_plain(2, X.OPTIONS) == b"\x01\x00", k
        assert c.recv_plain(4, X.DATA)[:2] == b"\x05\x00", k
        c.recv_plain(6, X.DATA)
        assert c.recv_until_close() == hello, k
        c.close()
        k += 1


# ---------------------------------------------------------------------------
# method X'86': the good path, byte for byte


def test_x86_full_session_byte_for_byte(stpd_factory, pki, echo):
    p = start(stpd_factory, pki)
    c = client(p, pki)
    assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
    version, cipher = c.handshake()
    assert version in ("TLSv1.2", "TLSv1.3")
    n_handshake = len(c.frames)
    assert n_handshake >= 3 and all(st == X.HANDSHAKE for _, st, _ in c.frames)

    assert c.options([X.OPT_SUBAUTH, X.OPT_UDP_NAKED]) == [X.OPT_SUBAUTH, X.OPT_UDP_NAKED]
    assert c.subauth_methods([0x02]) == 0x02
    assert c.userpass(USER, PASSWORD) == 0
    rep, _, _ = c.connect("127.0.0.1", echo.port)
    assert rep == 0
    payload = os.urandom(100000)
    c.send_plain(X.DATA, payload)
    assert c.recv_plain(len(payload), X.DATA) == payload
    assert c.close() == b""
    assert c.peer_closed

    # The server's frames after the handshake: option answer, sub-method
    # choice and RFC 1929 status in X'02'; reply and data in X'03'; its
    # close_notify in X'04' last.
    after = [st for d, st, _ in c.frames[n_handshake:] if d == "in"]
    assert after[:3] == [X.OPTIONS, X.OPTIONS, X.OPTIONS]
    assert set(after[3:-1]) == {X.DATA}
    assert after[-1] == X.CLOSING
    # Our close_notify went out (X'04') before the server's came back.
    out_close = max(i for i, f in enumerate(c.frames) if f[:2] == ("out", X.CLOSING))
    in_close = max(i for i, f in enumerate(c.frames) if f[:2] == ("in", X.CLOSING))
    assert out_close < in_close
    # Each server frame holds whole TLS records (docs/tls.md).
    for d, st, data in c.frames:
        if d != "in":
            continue
        off = 0
        while off < len(data):
            assert data[off] in (20, 21, 22, 23), "not a TLS record type"
            off += 5 + struct.unpack("!H", data[off + 3:off + 5])[0]
        assert off == len(data)

    m = p.wait_log(r"TLS X'86' version=(TLSv1\.[23]) cipher=(\S+)")
    assert m.group(1) == version and m.group(2) == cipher[0]
    p.wait_log(r"X'86' options offered=01,10 agreed=01,10")
    p.wait_log(r"session id=\d+ .*user=alice cmd=connect .*result=\"closed\"")


@pytest.mark.parametrize("where", ["x86", "listener"])
def test_large_transfers_both_ways(stpd_factory, pki, asym, echo, where):
    """32 MiB from the target and 8 MiB echoed back, every byte checked,
    through X'86' and through a 'tls on' listener: the buffered TLS relay
    with back-pressure on both sides."""
    import hashlib
    size = 32 << 20
    tls_port = services.free_port()
    p = start(stpd_factory, pki, subauth="", methods="ssl none", tls_listener=tls_port)
    if where == "x86":
        c = client(p, pki)
        full_login(c, opts=())
        assert c.connect("127.0.0.1", asym.port)[0] == 0
        c.send_plain(X.DATA, size.to_bytes(4, "big"))
        h, got = hashlib.sha256(), 0
        while got < size:
            chunk = c.recv_plain(min(1 << 20, size - got), X.DATA)
            h.update(chunk)
            got += len(chunk)
        assert h.hexdigest() == services.BigContent.sha256(size)
        assert c.close() == b""
    else:
        ctx = pki.client_context()
        raw = socket.create_connection(("127.0.0.1", tls_port), timeout=30)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"\x05\x01\x00")
        assert socksraw.recv_exact(s, 2) == b"\x05\x00"
        rep = socksraw.request(s, socksraw.CMD_CONNECT, "127.0.0.1", asym.port)
        assert rep.rep == 0
        s.sendall(size.to_bytes(4, "big"))
        h, got = hashlib.sha256(), 0
        while got < size:
            d = s.recv(1 << 20)
            assert d
            h.update(d)
            got += len(d)
        assert h.hexdigest() == services.BigContent.sha256(size)
        s.close()
    # echo: 8 MiB up and back through X'86', 1 MiB in flight at a time
    c = client(p, pki)
    full_login(c, opts=())
    assert c.connect("127.0.0.1", echo.port)[0] == 0
    blob = os.urandom(8 << 20)
    step = 1 << 20
    for off in range(0, len(blob), step):
        c.send_plain(X.DATA, blob[off:off + step])
        assert c.recv_plain(step, X.DATA) == blob[off:off + step]
    assert c.close() == b""
    p.wait_log(r"result=\"closed\"")


def test_x86_iana_alias_06(stpd_factory, pki, echo):
    p = start(stpd_factory, pki, subauth="")
    c = client(p, pki)
    assert c.greeting([X.METHOD_SSL_IANA]) == X.METHOD_SSL_IANA
    c.handshake()
    assert c.options([X.OPT_SUBAUTH]) == []  # no sub-authentication configured
    assert c.connect("127.0.0.1", echo.port)[0] == 0
    c.send_plain(X.DATA, b"ping")
    assert c.recv_plain(4, X.DATA) == b"ping"
    c.close()


def test_x86_preferred_over_weaker_methods(stpd_factory, pki):
    p = start(stpd_factory, pki, methods="ssl none")
    s = socksraw.dial(p.port)
    s.sendall(bytes([5, 3, 0x00, 0x02, 0x86]))
    assert socksraw.recv_exact(s, 2) == b"\x05\x86"
    s.close()


def test_x86_tls12(stpd_factory, pki, echo):
    p = start(stpd_factory, pki)
    c = client(p, pki, max_version=ssl.TLSVersion.TLSv1_2)
    full_login(c)
    assert c.tls.version() == "TLSv1.2"
    assert c.connect("127.0.0.1", echo.port)[0] == 0
    c.close()
    p.wait_log(r"TLS X'86' version=TLSv1\.2 cipher=")


def test_x86_tls11_refused(stpd_factory, pki):
    p = start(stpd_factory, pki)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this Python/OpenSSL cannot even offer TLS 1.1")
    c = X.X86Client("127.0.0.1", p.port, ctx)
    assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
    with pytest.raises((ssl.SSLError, X.Closed, X.ProtocolError)):
        c.handshake()
    p.wait_log(r"TLS handshake failed")
    still_serving(p, pki)


def test_x86_pipelined_flights(stpd_factory, pki, echo):
    """Last handshake flight + option list in one segment, then option list
    + request in one segment: STATE is checked per frame when processed."""
    p = start(stpd_factory, pki, subauth="")
    c = client(p, pki)
    assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
    c.handshake(pipeline=bytes([1, X.OPT_UDP_NAKED]), pipeline_state=X.OPTIONS)
    # request right behind, before the option answer is read
    req = bytes([5, 1, 0, 1]) + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo.port)
    c.send_plain(X.DATA, req + b"early")
    n = c.recv_plain(1, X.OPTIONS)[0]
    assert list(c.recv_plain(n, X.OPTIONS)) == [X.OPT_UDP_NAKED]
    assert c.recv_plain(4, X.DATA)[:2] == b"\x05\x00"
    c.recv_plain(6, X.DATA)
    assert c.recv_plain(5, X.DATA) == b"early"
    c.close()


def test_x86_whole_session_in_one_write(stpd_factory, pki, echo):
    """Every frame in its right STATE, all in one write behind the last
    handshake flight: options, sub-authentication, request, data and
    close_notify each wait for their phase and then work."""
    p = start(stpd_factory, pki)
    c = client(p, pki)
    assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
    c.handshake(hold=True)
    u, pw = USER.encode(), PASSWORD.encode()
    c.send_raw(c.held
               + c.seal(X.OPTIONS, bytes([1, X.OPT_SUBAUTH]))
               + c.seal(X.OPTIONS, bytes([5, 1, 2]))
               + c.seal(X.OPTIONS, bytes([1, len(u)]) + u + bytes([len(pw)]) + pw)
               + c.seal(X.DATA, _req(echo.port))
               + c.seal(X.DATA, b"all at once")
               + c.seal_close())
    assert c.recv_plain(2, X.OPTIONS) == bytes([1, X.OPT_SUBAUTH])
    assert c.recv_plain(2, X.OPTIONS) == b"\x05\x02"
    assert c.recv_plain(2, X.OPTIONS) == b"\x01\x00"
    assert c.recv_plain(4, X.DATA)[:2] == b"\x05\x00"
    c.recv_plain(6, X.DATA)
    assert c.recv_until_close() == b"all at once"
    assert in_states(c)[-1] == X.CLOSING
    p.wait_log(r"session id=\d+ .*user=alice cmd=connect .*result=\"closed\"")


def test_x86_greeting_and_clienthello_in_one_segment(stpd_factory, pki, echo):
    p = start(stpd_factory, pki, subauth="")
    ctx = pki.client_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = out.read()
    s = socksraw.dial(p.port)
    s.sendall(b"\x05\x01\x86" + X.frame(X.HANDSHAKE, hello))
    assert socksraw.recv_exact(s, 2) == b"\x05\x86"
    ver, st, ln = struct.unpack("!BBH", socksraw.recv_exact(s, 4))
    assert (ver, st) == (1, X.HANDSHAKE) and ln > 0
    s.close()


# ---------------------------------------------------------------------------
# options, sub-authentication, mutual TLS


def test_option_subset_drops_unknown(stpd_factory, pki):
    p = start(stpd_factory, pki, subauth="")
    c = client(p, pki)
    c.greeting([X.METHOD_SSL])
    c.handshake()
    assert c.options([0x42, X.OPT_UDP_NAKED, 0x99]) == [X.OPT_UDP_NAKED]
    c.close()


def test_wrong_password_inside_tls(stpd_factory, pki):
    p = start(stpd_factory, pki)
    c = client(p, pki)
    c.greeting([X.METHOD_SSL])
    c.handshake()
    assert c.options([X.OPT_SUBAUTH]) == [X.OPT_SUBAUTH]
    assert c.subauth_methods([0x02]) == 0x02
    assert c.userpass(USER, "wrong") == 1
    # then the server's close_notify in X'04', then the end of TCP
    assert c.recv_until_close() == b""
    assert in_states(c)[-1] == X.CLOSING
    assert c.read_eof() == b""
    p.wait_log(r"user=alice.*(authentication failed|bad user name or password)")
    still_serving(p, pki)


def test_subauth_required_but_not_offered(stpd_factory, pki):
    p = start(stpd_factory, pki)
    c = client(p, pki)
    c.greeting([X.METHOD_SSL])
    c.handshake()
    assert c.options([X.OPT_UDP_NAKED]) == [X.OPT_UDP_NAKED]
    assert c.recv_until_close() == b""
    p.wait_log(r"client does not offer subauthentication, which is required")
    still_serving(p, pki)


def test_no_acceptable_submethod(stpd_factory, pki):
    p = start(stpd_factory, pki)
    c = client(p, pki)
    c.greeting([X.METHOD_SSL])
    c.handshake()
    c.options([X.OPT_SUBAUTH])
    assert c.subauth_methods([0x00, 0x01]) == 0xFF
    assert c.recv_until_close() == b""
    p.wait_log(r"X'86' subauthentication refused")


def test_mutual_tls_names_the_user(stpd_factory, pki, echo):
    rules = "request pass { user alice }\n"
    p = start(stpd_factory, pki, client_cert="optional", cert_user=True, request_rules=rules)
    c = client(p, pki, cert="alice")
    c.greeting([X.METHOD_SSL])
    c.handshake()
    # the certificate authenticated alice: no sub-authentication
    assert c.options([X.OPT_SUBAUTH]) == []
    assert c.connect("127.0.0.1", echo.port)[0] == 0
    c.close()
    p.wait_log(r"user=alice: TLS X'86' .*client-cert=alice")
    p.wait_log(r"session id=\d+ .*user=alice cmd=connect")


@pytest.mark.parametrize("cert,why", [
    ("expired", "certificate has expired"),
    ("stranger", "self.signed certificate|unable to get local issuer"),
])
def test_bad_client_certificate(stpd_factory, pki, cert, why):
    p = start(stpd_factory, pki, client_cert="require", cert_user=True)
    c = client(p, pki, cert=cert)
    c.greeting([X.METHOD_SSL])
    with pytest.raises((ssl.SSLError, X.Closed, X.ProtocolError, ConnectionError)):
        c.handshake()
        c.options([])  # TLS 1.3: the client learns of the rejection here
    p.wait_log(r"TLS handshake failed: .*(%s)" % why)
    c2 = client(p, pki, cert="alice")
    full_login(c2)
    c2.close()


def test_client_certificate_required(stpd_factory, pki):
    p = start(stpd_factory, pki, client_cert="require")
    c = client(p, pki)
    c.greeting([X.METHOD_SSL])
    with pytest.raises((ssl.SSLError, X.Closed, X.ProtocolError, ConnectionError)):
        c.handshake()
        c.options([])
    p.wait_log(r"TLS handshake failed: .*certificate")


# ---------------------------------------------------------------------------
# bad framing: a clean close, a log line, and the server keeps serving


def _after_greeting(p):
    s = socksraw.dial(p.port)
    s.sendall(b"\x05\x01\x86")
    assert socksraw.recv_exact(s, 2) == b"\x05\x86"
    return s


def _hello(pki):
    return X.client_hello(pki.client_context())


def test_bad_frame_version(stpd_factory, pki):
    p = start(stpd_factory, pki)
    s = _after_greeting(p)
    s.sendall(X.frame(X.HANDSHAKE, _hello(pki), ver=2))
    assert socksraw.closed_by_peer(s)
    p.wait_log(r"bad X'86' frame: frame VER is not X'01' \(got X'02'\)")
    still_serving(p, pki)


def test_bad_frame_state_value(stpd_factory, pki):
    p = start(stpd_factory, pki)
    s = _after_greeting(p)
    s.sendall(b"\x01\x09\x00\x01\x00")
    assert socksraw.closed_by_peer(s)
    p.wait_log(r"bad X'86' frame: frame STATE is not X'01'-X'04' \(got X'09'\)")
    still_serving(p, pki)


def test_data_state_during_handshake(stpd_factory, pki):
    """STATE X'03' where X'01' is due: waits, then fails as a skipped step."""
    p = start(stpd_factory, pki)
    s = _after_greeting(p)
    s.sendall(X.frame(X.DATA, _hello(pki)))
    assert socksraw.closed_by_peer(s)
    p.wait_log(r"sent STATE X'03' while the TLS handshake still needed bytes")
    still_serving(p, pki)


def test_client_skips_option_negotiation(stpd_factory, pki, echo):
    p = start(stpd_factory, pki, subauth="")
    c = client(p, pki)
    c.greeting([X.METHOD_SSL])
    c.handshake()
    req = bytes([5, 1, 0, 1]) + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo.port)
    c.send_plain(X.DATA, req)
    assert c.read_eof() == b""
    p.wait_log(r"sent STATE X'03' while option negotiation still needed bytes")
    still_serving(p, pki)


def test_handshake_state_after_handshake(stpd_factory, pki):
    p = start(stpd_factory, pki)
    c = client(p, pki)
    c.greeting([X.METHOD_SSL])
    c.handshake()
    c.send_plain(X.HANDSHAKE, b"\x01\x01")  # option list in the wrong STATE
    c.read_eof()
    p.wait_log(r"X'86' frame with STATE X'01' during option negotiation")
    still_serving(p, pki)


def test_options_state_in_data_flow(stpd_factory, pki, echo):
    p = start(stpd_factory, pki, subauth="")
    c = client(p, pki)
    full_login(c)
    req = bytes([5, 1, 0, 1]) + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo.port)
    c.send_plain(X.OPTIONS, req)
    c.read_eof()
    p.wait_log(r"X'86' frame with STATE X'02' during data flow")
    still_serving(p, pki)


def test_len_beyond_data(stpd_factory, pki):
    """A frame announcing more than the client ever sends: the client's
    next frame is read as the rest of the DATA and TLS rejects it."""
    p = start(stpd_factory, pki)
    s = _after_greeting(p)
    hello = _hello(pki)
    nxt = X.frame(X.HANDSHAKE, b"\x16\x03\x03\x00\x20" + bytes(32))
    s.sendall(struct.pack("!BBH", 1, 1, len(hello) + len(nxt)) + hello)
    time.sleep(0.2)
    s.sendall(nxt)  # read as the rest of the first frame's DATA
    assert socksraw.closed_by_peer(s)
    p.wait_log(r"TLS handshake failed")
    # ... and one that stops mid-frame: the end of TCP ends the session
    s = _after_greeting(p)
    s.sendall(struct.pack("!BBH", 1, 1, len(hello) + 40) + hello)
    s.shutdown(socket.SHUT_WR)
    assert socksraw.closed_by_peer(s)
    p.wait_log(r"result=\"client closed during handshake\"")
    still_serving(p, pki)


def test_truncated_tls_record(stpd_factory, pki):
    p = start(stpd_factory, pki)
    s = _after_greeting(p)
    hello = _hello(pki)
    # the frame is complete but holds half a record; then X'02' follows
    s.sendall(X.frame(X.HANDSHAKE, hello[:len(hello) // 2]) + X.frame(X.OPTIONS, b"\x00"))
    assert socksraw.closed_by_peer(s)
    p.wait_log(r"sent STATE X'02' while the TLS handshake still needed bytes")
    still_serving(p, pki)


def test_garbage_instead_of_tls(stpd_factory, pki):
    p = start(stpd_factory, pki)
    s = _after_greeting(p)
    s.sendall(X.frame(X.HANDSHAKE, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    data = socksraw.recv_all(s)
    # an alert may come back (in an X'01' frame), then the end
    if data:
        assert data[:2] == b"\x01\x01"
    p.wait_log(r"TLS handshake failed")
    still_serving(p, pki)


# ---------------------------------------------------------------------------
# STATE is checked per frame when its bytes are used, whatever the TCP
# segments (docs/tls.md 2.5): in every phase a frame with a wrong STATE,
# once in its own write after the server has processed the frame before it
# ("split") and once in the same write as that frame ("coalesced").
#
# Each case builds (prev, bad, wait): prev is the good frame(s) before,
# bad the wrong one, wait an event showing the server used prev. A case
# also names the log line it expects for each mode.


def _expect(c, want):
    def wait():
        assert c._recv_exact(len(want)) == want
    return wait


def _case_hello(state):
    """Phase: TLS handshake (X'01' due). The ClientHello in another STATE."""
    def setup(c, p, pki, echo):
        return b"\x05\x01\x86", X.frame(state, _hello(pki)), _expect(c, b"\x05\x86")
    return setup


def _case_options(state):
    """Phase: options (X'02' due). The option list right behind our last
    handshake flight, in another STATE."""
    def setup(c, p, pki, echo):
        assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
        c.handshake(hold=True)
        bad = c.seal(state, bytes([1, X.OPT_UDP_NAKED]))
        return c.held, bad, lambda: p.wait_log(r"TLS X'86' version=")
    return setup


def _case_userpass(state):
    """Phase: options, sub-authentication (X'02' due). The RFC 1929 request
    behind the sub-method list, in another STATE."""
    def setup(c, p, pki, echo):
        assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
        c.handshake()
        assert c.options([X.OPT_SUBAUTH]) == [X.OPT_SUBAUTH]
        prev = c.seal(X.OPTIONS, bytes([5, 1, 2]))
        u, pw = USER.encode(), PASSWORD.encode()
        bad = c.seal(state, bytes([1, len(u)]) + u + bytes([len(pw)]) + pw)
        return prev, bad, _expect_plain(c, b"\x05\x02", X.OPTIONS)
    return setup


def _expect_plain(c, want, state):
    def wait():
        assert c.recv_plain(len(want), state) == want
    return wait


def _case_request(state, sub=False):
    """Phase: request (X'03' due). The SOCKS request behind the last X'02'
    message (the option list, or the RFC 1929 request), in another STATE."""
    def setup(c, p, pki, echo):
        assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
        c.handshake()
        if not sub:
            prev, answer = c.seal(X.OPTIONS, b"\x00"), b"\x00"
        else:
            assert c.options([X.OPT_SUBAUTH]) == [X.OPT_SUBAUTH]
            assert c.subauth_methods([0x02]) == 0x02
            u, pw = USER.encode(), PASSWORD.encode()
            prev = c.seal(X.OPTIONS, bytes([1, len(u)]) + u + bytes([len(pw)]) + pw)
            answer = b"\x01\x00"
        bad = c.seal(state, _req(echo.port))
        return prev, bad, _expect_plain(c, answer, X.OPTIONS)
    return setup


def _case_data(state):
    """Phase: data flow (X'03' due). Data behind the request, in another
    STATE."""
    def setup(c, p, pki, echo):
        assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
        c.handshake()
        assert c.options([]) == []
        prev = c.seal(X.DATA, _req(echo.port))
        bad = c.seal(state, b"data in the wrong STATE")
        return prev, bad, lambda: c.recv_plain(10, X.DATA)
    return setup


def _case_close(state):
    """Phase: closure (X'04' due for close_notify). Our close_notify behind
    our last data, in another STATE."""
    def setup(c, p, pki, echo):
        assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
        c.handshake()
        assert c.options([]) == []
        assert c.connect("127.0.0.1", echo.port)[0] == 0
        prev = c.seal(X.DATA, b"ping")
        return prev, c.seal_close(state), _expect_plain(c, b"ping", X.DATA)
    return setup


def _case_record_across_states():
    """Phase: closure. Our close_notify record begun in X'03' and ended in
    X'04': a record must not span a change of STATE."""
    def setup(c, p, pki, echo):
        assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
        c.handshake()
        assert c.options([]) == []
        assert c.connect("127.0.0.1", echo.port)[0] == 0
        ping = c.seal(X.DATA, b"ping")
        cn = c.seal_close()[4:]
        prev = ping + X.frame(X.DATA, cn[:3])
        return prev, X.frame(X.CLOSING, cn[3:]), _expect_plain(c, b"ping", X.DATA)
    return setup


_SKIPPED = r"X'86' peer sent STATE X'%02x' while %s still needed bytes"
_DURING = r"X'86' frame with STATE X'%02x' during %s"
_CARRIED = r"X'86' frame with STATE X'04' carried %s"

# id: (setup, subauth, log line when split, log line when coalesced)
STATE_CASES = {
    "handshake-in-02": (_case_hello(X.OPTIONS), "",
                        _SKIPPED % (2, "the TLS handshake"), None),
    "handshake-in-04": (_case_hello(X.CLOSING), "", _CARRIED % "TLS handshake messages", None),
    "options-in-01": (_case_options(X.HANDSHAKE), "",
                      _DURING % (1, "option negotiation"), None),
    "options-in-03": (_case_options(X.DATA), "", _SKIPPED % (3, "option negotiation"), None),
    "options-in-04": (_case_options(X.CLOSING), "", _CARRIED % "data", None),
    "userpass-in-03": (_case_userpass(X.DATA), "userpass",
                       _SKIPPED % (3, "option negotiation"), None),
    "userpass-in-04": (_case_userpass(X.CLOSING), "userpass", _CARRIED % "data", None),
    # coalesced, the X'01' frame is seen before the options are read (a
    # loaded machine may still deliver it later: either line is right)
    "request-in-01": (_case_request(X.HANDSHAKE), "", _DURING % (1, "data flow"),
                      _DURING % (1, "(option negotiation|data flow)")),
    "request-in-02": (_case_request(X.OPTIONS), "", _DURING % (2, "data flow"), None),
    "request-in-02-after-userpass": (_case_request(X.OPTIONS, sub=True), "userpass",
                                     _DURING % (2, "data flow"), None),
    "request-in-04": (_case_request(X.CLOSING), "", _CARRIED % "data", None),
    "data-in-02": (_case_data(X.OPTIONS), "", _DURING % (2, "data flow"), None),
    "data-in-04": (_case_data(X.CLOSING), "", _CARRIED % "data", None),
    "close-notify-in-02": (_case_close(X.OPTIONS), "", _DURING % (2, "data flow"), None),
    "close-notify-in-03": (_case_close(X.DATA), "",
                           r"X'86' close_notify in a frame with STATE X'03'", None),
    "close-notify-across-03-04": (_case_record_across_states(), "",
                                  r"X'86' TLS record spans frames with STATE X'03' and X'04'",
                                  None),
}


def _frames(raw):
    """(STATE, DATA) of each whole frame in raw."""
    out, off = [], 0
    while off + 4 <= len(raw):
        ver, st, ln = struct.unpack("!BBH", raw[off:off + 4])
        assert ver == 1
        out.append((st, raw[off + 4:off + 4 + ln]))
        off += 4 + ln
    return out


@pytest.mark.parametrize("mode", ["split", "coalesced"])
@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_wrong_state_in_every_phase(stpd_factory, pki, echo, case, mode):
    setup, subauth, log_split, log_coalesced = STATE_CASES[case]
    p = start(stpd_factory, pki, subauth=subauth)
    c = client(p, pki)
    prev, bad, wait = setup(c, p, pki, echo)
    if mode == "coalesced":
        c.send_raw(prev + bad)
    else:
        c.send_raw(prev)
        wait()  # the server has used prev: bad comes in a read of its own
        c.send_raw(bad)
    rest = c.read_eof(timeout=10)
    why = log_coalesced if mode == "coalesced" and log_coalesced else log_split
    p.wait_log(r"warning: id=\d+ .*: " + why)
    p.wait_log(r"session id=\d+ .*result=\".*" + why)
    if case.startswith("handshake"):
        # nothing after the method choice: no TLS answer to a wrong frame
        assert rest in (b"", b"\x05\x86")
    else:
        # a protocol error ends TCP without our close_notify (what the
        # server answered to prev before may still come, in its STATE)
        assert X.CLOSING not in [st for st, _ in _frames(rest)], _frames(rest)
    still_serving(p, pki)


# ---------------------------------------------------------------------------
# UDP ASSOCIATE: UDP-Naked


def _udp_associate(c):
    rep, host, port = c.request(3, "0.0.0.0", 0)
    return rep, host, port


def test_udp_naked_agreed(stpd_factory, pki, udp_echo):
    p = start(stpd_factory, pki)
    c = client(p, pki)
    assert full_login(c) == [X.OPT_SUBAUTH, X.OPT_UDP_NAKED]
    rep, host, port = _udp_associate(c)
    assert rep == 0
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.sendto(socksraw.udp_packet("127.0.0.1", udp_echo.port, b"naked"), (host, port))
    pkt, _ = u.recvfrom(65536)
    assert pkt.endswith(b"naked")
    u.close()
    c.close()


def test_udp_without_udp_naked_refused(stpd_factory, pki):
    p = start(stpd_factory, pki)
    c = client(p, pki)
    assert full_login(c, opts=(X.OPT_SUBAUTH,)) == [X.OPT_SUBAUTH]
    rep, _, _ = _udp_associate(c)
    assert rep == REP_CMD_NOT_SUPPORTED
    assert c.recv_until_close() == b""
    p.wait_log(r"UDP ASSOCIATE refused: UDP-Naked not agreed")


def test_udp_naked_disabled_by_config(stpd_factory, pki):
    p = start(stpd_factory, pki, udp_naked=False)
    c = client(p, pki)
    assert full_login(c) == [X.OPT_SUBAUTH]
    assert _udp_associate(c)[0] == REP_CMD_NOT_SUPPORTED


# ---------------------------------------------------------------------------
# downgrade protection


def test_require_tls_listener_refuses_weaker_methods(stpd_factory, pki):
    p = start(stpd_factory, pki, methods="ssl userpass none", listen_extra="require-tls on;")
    s = socksraw.dial(p.port)
    s.sendall(bytes([5, 2, 0x00, 0x02]))
    assert socksraw.recv_exact(s, 2) == b"\x05\xff"
    assert socksraw.closed_by_peer(s)
    p.wait_log(r"no acceptable authentication method")
    c = client(p, pki)
    assert c.greeting([0x00, 0x02, X.METHOD_SSL]) == X.METHOD_SSL
    c.close() if c.tls else c.abort()


def test_require_tls_client_rule(stpd_factory, pki):
    rules = "client pass { from 127.0.0.2; require-tls on }\n" + stpdconf.LOOPBACK_CLIENTS
    p = start(stpd_factory, pki, methods="ssl none", subauth="", client_rules=rules)
    s = socksraw.dial(p.port, source="127.0.0.2")
    s.sendall(bytes([5, 1, 0x00]))
    assert socksraw.recv_exact(s, 2) == b"\x05\xff"
    s = socksraw.dial(p.port, source="127.0.0.2")  # SOCKS4 has no TLS either
    s.sendall(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00")
    assert socksraw.recv_exact(s, 2) == b"\x00\x5b"
    # the rule for 127.0.0.1 does not require TLS: method none still works
    s = socksraw.dial(p.port)
    s.sendall(bytes([5, 1, 0x00]))
    assert socksraw.recv_exact(s, 2) == b"\x05\x00"
    # and X'86' from 127.0.0.2 does
    c = X.X86Client("127.0.0.1", p.port, pki.client_context(), server_hostname="localhost",
                    source="127.0.0.2")
    assert c.greeting([0x00, X.METHOD_SSL]) == X.METHOD_SSL
    c.handshake()
    assert c.options([]) == []
    c.close()


# ---------------------------------------------------------------------------
# SOCKS over TLS ("tls on" listener)


def test_socks_over_tls_stunnel_curl(stpd_factory, pki, http, tmp_path):
    stunnel = need("stunnel4", "stunnel4")
    tls_port = services.free_port()
    p = start(stpd_factory, pki, methods="none", subauth="", users=False,
              tls_listener=tls_port)
    local = services.free_port()
    conf = tmp_path / "stunnel.conf"
    conf.write_text("foreground = yes\npid =\n[socks]\nclient = yes\n"
                    "accept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                    "verifyChain = yes\nCAfile = %s\ncheckHost = localhost\n"
                    % (local, tls_port, pki.path("ca.pem")))
    st = subprocess.Popen([stunnel, str(conf)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    try:
        services.wait_until(lambda: services.tcp_listening(local), 10, what="stunnel")
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "-x",
                            "socks5h://127.0.0.1:%d" % local,
                            "http://127.0.0.1:%d/" % http.port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        assert r.returncode == 0, r.stderr.decode()
        assert len(r.stdout) > 0
    finally:
        st.terminate()
        st.wait(10)
    p.wait_log(r"TLS listener version=TLSv1\.[23] cipher=\S+")
    p.wait_log(r"session id=\d+ .*listener=tlsl .*cmd=connect .*rep=\"succeeded\"")


def test_socks_over_tls_behind_proxy_protocol(stpd_factory, pki, echo):
    """PROXY header in clear first, then TLS from the next byte."""
    p = stpd_factory(conf=(
        "listen 127.0.0.1:$port { name pp; proxy-protocol on; tls on }\n"
        "resolver $dns\nauth { methods none }\n"
        "tls { cert %s; key %s }\n"
        "client pass { from 10.0.0.0/8 }\nrequest pass\n")
        % (pki.path("server.pem"), pki.path("server.key")))
    raw = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    raw.sendall(b"PROXY TCP4 10.1.2.3 127.0.0.1 1111 2222\r\n")
    s = pki.client_context().wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"\x05\x01\x00")
    assert socksraw.recv_exact(s, 2) == b"\x05\x00"
    assert socksraw.request(s, socksraw.CMD_CONNECT, "127.0.0.1", echo.port).rep == 0
    s.sendall(b"through")
    assert socksraw.recv_exact(s, 7) == b"through"
    s.close()
    p.wait_log(r"client=10\.1\.2\.3:1111 user=-: TLS listener version=")


def test_socks_over_tls_openssl_s_client(stpd_factory, pki):
    tls_port = services.free_port()
    start(stpd_factory, pki, methods="none", subauth="", users=False, tls_listener=tls_port)
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tls_port,
                        "-CAfile", pki.path("ca.pem"), "-verify_return_error",
                        "-servername", "localhost"],
                       input=b"\x05\x01\x00", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20)
    out = r.stdout.decode(errors="replace")
    assert "subject=CN = stpd-test" in out
    assert "issuer=CN = stp test CA" in out
    assert "Verify return code: 0 (ok)" in out


def test_socks_over_tls_plaintext_client_fails_cleanly(stpd_factory, pki):
    tls_port = services.free_port()
    p = start(stpd_factory, pki, methods="none", subauth="", users=False, tls_listener=tls_port)
    s = socksraw.dial(tls_port)
    s.sendall(b"\x05\x01\x00" + b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50")
    socksraw.recv_all(s)  # a TLS alert at most, then the end
    p.wait_log(r"TLS handshake failed")


def test_socks_over_tls_userpass_inside(stpd_factory, pki, echo):
    tls_port = services.free_port()
    start(stpd_factory, pki, methods="userpass", subauth="", tls_listener=tls_port)
    ctx = pki.client_context()
    with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"\x05\x02\x00\x86")  # X'86' inside TLS is never chosen
            assert socksraw.recv_exact(s, 2) == b"\x05\xff"


# ---------------------------------------------------------------------------
# the wire: no cleartext password with X'86'


def test_capture_shows_no_cleartext_password(stpd_factory, pki, echo, tmp_path):
    tshark = need("tshark", "tshark")
    plain_pw = "Plain-Visible-77"
    p = start(stpd_factory, pki, methods="ssl userpass",
              users_map={USER: PASSWORD, "bob": plain_pw})
    pcap = str(tmp_path / "lo.pcap")
    cap = subprocess.Popen([tshark, "-i", "lo", "-f", "tcp port %d" % p.port, "-w", pcap, "-q"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(pcap) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        # X'86' with RFC 1929 inside TLS
        c = client(p, pki)
        full_login(c)
        assert c.connect("127.0.0.1", echo.port)[0] == 0
        c.close()
        # control: plain RFC 1929 on the same port must show up
        s = socksraw.dial(p.port)
        socksraw.negotiate(s, (socksraw.M_USERPASS,))
        assert socksraw.userpass(s, "bob", plain_pw) == 0
        s.close()
        time.sleep(1.0)
    finally:
        cap.send_signal(signal.SIGINT)
        try:
            cap.wait(15)
        except subprocess.TimeoutExpired:
            cap.kill()
    with open(pcap, "rb") as f:
        wire = f.read()
    assert plain_pw.encode() in wire, "the capture missed the control login"
    assert PASSWORD.encode() not in wire
    assert b"\x01\x05alice" not in wire
