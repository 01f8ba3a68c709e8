"""stpd behind a real haproxy (mode tcp) sending PROXY protocol v1 or v2.

The client connects to haproxy from 127.0.0.2 (or ::1); haproxy connects to
stpd from 127.0.0.1. stpd's client rules allow only the real client
addresses, so a session that works proves the rules saw the address from
the PROXY header, and the session line must name it too.
"""

import re
import shutil

import pytest

import socksraw as S
from haproxy import Haproxy


PP_CONF = """\
listen 127.0.0.1:$port { proxy-protocol on; }
resolver $dns
client pass { from 127.0.0.2/32 }
client pass { from ::1/128 }
request pass { }
"""


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def behind_haproxy(request, stpd_factory, tmp_path):
    if not shutil.which("haproxy"):
        pytest.skip("haproxy not installed")
    p = stpd_factory(conf=PP_CONF)
    h = Haproxy(str(tmp_path), [p.port], "send-proxy-v2" if request.param == 2 else "send-proxy")
    yield p, h
    h.close()


def client_rx(host, port):
    if ":" in host:
        return r"client=(\[%s\]|%s):%d\b" % (re.escape(host), re.escape(host), port)
    return r"client=%s:%d\b" % (re.escape(host), port)


@pytest.mark.parametrize("src", ["127.0.0.2", "::1"])
def test_real_client_allowed_and_logged(behind_haproxy, echo, src):
    p, h = behind_haproxy
    s = S.dial(h.port, host="::1" if ":" in src else "127.0.0.1", source=src)
    with s:
        cport = s.getsockname()[1]
        assert S.negotiate(s) == S.M_NONE
        rep = S.request(s, S.CMD_CONNECT, "127.0.0.1", echo.port)
        assert rep.rep == 0, rep
        assert S.echo_roundtrip(s, b"through haproxy\n") == b"through haproxy\n"
    m = p.wait_log(r"session .*target=127\.0\.0\.1:%d" % echo.port)
    assert re.search(client_rx(src, cport), m.string), m.string


def test_other_client_denied(behind_haproxy, echo):
    p, h = behind_haproxy
    s = S.dial(h.port, source="127.0.0.3")
    with s:
        cport = s.getsockname()[1]
        try:
            s.sendall(S.greeting())
            got = s.recv(2)
        except ConnectionResetError:
            got = b""
        assert got in (b"", b"\x05\xff"), got       # never a method choice
        assert S.closed_by_peer(s)
    m = p.wait_log(r"deny .*" + client_rx("127.0.0.3", cport))
    assert "rule=" in m.string


def test_missing_header_rejected(stpd_factory, echo):
    """The listener expects a PROXY header: a plain SOCKS client (even from
    an address a rule would allow) is closed without a SOCKS reply."""
    p = stpd_factory(conf=PP_CONF)
    s = S.dial(p.port, source="127.0.0.2")
    with s:
        try:
            s.sendall(S.greeting() + S.request_msg(S.CMD_CONNECT, "127.0.0.1", echo.port))
            got = s.recv(16)
        except ConnectionResetError:
            got = b""
        assert got == b"", got
        assert S.closed_by_peer(s)
    assert p.alive()


def test_handwritten_v1_header(stpd_factory, echo):
    p = stpd_factory(conf=PP_CONF)
    s = S.dial(p.port)
    with s:
        s.sendall(b"PROXY TCP4 127.0.0.2 127.0.0.1 40404 1080\r\n" + S.greeting())
        assert S.recv_exact(s, 2) == b"\x05\x00"
        assert S.request(s, S.CMD_CONNECT, "127.0.0.1", echo.port).rep == 0
        assert S.echo_roundtrip(s, b"v1\n") == b"v1\n"
    m = p.wait_log(r"session .*target=127\.0\.0\.1:%d" % echo.port)
    assert re.search(client_rx("127.0.0.2", 40404), m.string), m.string


def test_refused_after_header_gets_socks_answer(stpd_factory):
    """The per-client limit counts the client the header names; one over it
    is answered after the header and the greeting sent with it."""
    p = stpd_factory(conf=PP_CONF + "limits { sessions-per-client 1; }\n")
    hdr = b"PROXY TCP4 127.0.0.2 127.0.0.1 %d 1080\r\n"
    held = S.dial(p.port)
    with held:
        held.sendall(hdr % 40404 + S.greeting())
        assert S.recv_exact(held, 2) == b"\x05\x00"
        s = S.dial(p.port)
        with s:
            s.sendall(hdr % 40405 + S.greeting())
            assert S.recv_exact(s, 2) == b"\x05\xff"
            assert S.closed_by_peer(s)
