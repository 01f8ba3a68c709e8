"""The client side of binds (docs/client.md, `stp listen`) through TLS
proxies: the control connection and every data connection over method
X'86' (socks5s://) and over a `tls on` listener (socks5+tls://), a TCP
and a UDP bind each, bytes checked both ways; UDP binds need
udp-naked=1; and `stp listen` printing the local address the service
sees each peer as (docs/client.md "stp listen").

Run: STPD=build/src/server/stpd /usr/bin/python3 -m pytest \\
       tests/integration/test_binds_client.py
"""

import os
import re
import socket
import subprocess
import threading
import time

import pytest

import services
from test_client_lib import clean_env, stp, stp_bin
from test_tls_client import (EXIT_LOCAL, PASSWORD, USER, start, wrap_url,  # noqa: F401
                             x86_url)
from tls_fixtures import pki  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.stpd_module("tls"), pytest.mark.stpd_module("bind")]

AUTH = "%s:%s@" % (USER, PASSWORD)


class Listen:
    """`stp listen SPEC...` on loopback; .bound = [(host, port)], .lines()."""

    def __init__(self, url, tmp_path, *specs):
        self.path = os.path.join(str(tmp_path), "listen.out")
        self.out = open(self.path, "w+")
        self.proc = subprocess.Popen([stp_bin(), "--proxy", url, "listen"] + list(specs),
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     env=clean_env())
        deadline = time.time() + 20
        while time.time() < deadline:
            got = [ln.split() for ln in self.lines() if ln.startswith("bound ")]
            if len(got) == len(specs):
                self.bound = [(g[2].rsplit(":", 1)[0], int(g[2].rsplit(":", 1)[1]))
                              for g in got]
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        pytest.fail("stp listen did not bind: %s" % open(self.path).read())

    def lines(self):
        return open(self.path).read().splitlines()

    def wait_line(self, pattern, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for ln in self.lines():
                m = re.search(pattern, ln)
                if m:
                    return m
            time.sleep(0.05)
        pytest.fail("no line %r in: %s" % (pattern, open(self.path).read()))

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.out.close()


@pytest.fixture
def listen_factory(tmp_path):
    made = []

    def make(url, *specs):
        lst = Listen(url, tmp_path, *specs)
        made.append(lst)
        return lst
    yield make
    for lst in made:
        lst.close()


def exchange_tcp(addr, n=3):
    for i in range(n):
        with socket.create_connection(addr, timeout=20) as c:
            msg = b"tls-bind-%d " % i * 1000
            c.sendall(msg)
            c.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                got += d
            assert got == msg


def exchange_udp(addr):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(2)
        for _ in range(10):  # datagrams may be lost: a few tries
            u.sendto(b"udp-through-tls", addr)
            try:
                data, src = u.recvfrom(65536)
            except socket.timeout:
                continue
            assert data == b"udp-through-tls" and src == addr
            return
    pytest.fail("no UDP echo through the bind")


def test_listen_x86(stpd_factory, pki, echo, udp_echo, listen_factory):
    p = start(stpd_factory, pki)
    url = x86_url(p, pki, auth=AUTH, opts="&udp-naked=1")
    lst = listen_factory(url, "tcp:127.0.0.1:%d" % echo.port,
                         "udp:127.0.0.1:%d" % udp_echo.port)
    exchange_tcp(lst.bound[0])
    exchange_udp(lst.bound[1])
    # the control and each data connection negotiated X'86' with the user
    p.wait_log(r"LISTEN: 1 TCP and 1 UDP binds")
    p.wait_log(r"session .*user=%s .*result=\"accepted: data in a flow" % USER)
    p.wait_log(r"flow id=\d+\.\d+ .*cmd=accept target=127\.0\.0\.1:\d+ up=11000 down=11000 ",
               timeout=20)
    assert len(re.findall(r"X'86' options offered", p.log())) >= 4  # ctl + 3 data


def test_listen_tls_listener(stpd_factory, pki, echo, udp_echo, listen_factory):
    port = services.free_port()
    p = start(stpd_factory, pki, tls_listener=port, methods="userpass")
    p.tls_port = port
    url = wrap_url(p, pki=pki, opts="ca=%s&udp-naked=1" % pki.path("ca.pem"))
    lst = listen_factory(url, "tcp:127.0.0.1:%d" % echo.port,
                         "udp:127.0.0.1:%d" % udp_echo.port)
    exchange_tcp(lst.bound[0])
    exchange_udp(lst.bound[1])
    p.wait_log(r"flow id=\d+\.\d+ .*cmd=accept target=127\.0\.0\.1:\d+ up=11000 down=11000 ",
               timeout=20)


def test_listen_x86_udp_needs_udp_naked(stpd_factory, pki, udp_echo):
    p = start(stpd_factory, pki)
    r = stp("listen", "udp:127.0.0.1:%d" % udp_echo.port, proxy=x86_url(p, pki, auth=AUTH))
    assert r.returncode == EXIT_LOCAL
    assert b"udp-naked=1" in r.stderr


class SeenServer:
    """A UDP and a TCP service on loopback that answer with the address
    they saw the client as."""

    def __init__(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.stop = False
        threading.Thread(target=self._udp, daemon=True).start()
        threading.Thread(target=self._tcp, daemon=True).start()

    def _udp(self):
        self.udp.settimeout(0.2)
        while not self.stop:
            try:
                _, src = self.udp.recvfrom(2048)
            except (socket.timeout, OSError):
                continue
            self.udp.sendto(("%s:%d" % src).encode(), src)

    def _tcp(self):
        self.tcp.settimeout(0.2)
        while not self.stop:
            try:
                c, src = self.tcp.accept()
            except (socket.timeout, OSError):
                continue
            c.sendall(("%s:%d" % src).encode())
            c.close()

    def close(self):
        self.stop = True
        self.udp.close()
        self.tcp.close()


def test_listen_prints_how_the_service_sees_peers(stpd_factory, pki, listen_factory):
    """`stp listen` prints one `peer KIND PEER seen as LOCAL` line per new
    peer: LOCAL is exactly the source address the service saw."""
    p = start(stpd_factory, pki)
    srv = SeenServer()
    try:
        url = x86_url(p, pki, auth=AUTH, opts="&udp-naked=1")
        lst = listen_factory(url, "tcp:127.0.0.1:%d" % srv.tcp.getsockname()[1],
                             "udp:127.0.0.1:%d" % srv.udp.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(2)
            seen = None
            for _ in range(10):
                u.sendto(b"who", lst.bound[1])
                try:
                    seen = u.recv(2048).decode()
                    break
                except socket.timeout:
                    continue
            assert seen
            me = "127.0.0.1:%d" % u.getsockname()[1]  # unbound: 0.0.0.0 locally
            m = lst.wait_line(r"^peer udp (\S+) seen as (\S+)$")
            assert m.group(1) == me and m.group(2) == seen
        with socket.create_connection(lst.bound[0], timeout=20) as c:
            me = "%s:%d" % c.getsockname()
            seen = c.recv(2048).decode()
        m = lst.wait_line(r"^peer tcp (\S+) seen as (\S+)$")
        assert m.group(1) == me and m.group(2) == seen
    finally:
        srv.close()


def test_x86_udp_bind_needs_udp_naked_on_the_wire(stpd_factory, pki):
    """stpd's side, in raw X'86' frames: a LISTEN with a UDP bind inside
    X'86' without UDP-Naked gets X'07' (as UDP ASSOCIATE does); with
    UDP-Naked agreed the same request opens its TCP and UDP binds."""
    import bindraw as B
    import test_tls as T
    import x86_client as X
    p = T.start(stpd_factory, pki)
    req = B.listen_msg([(B.TCP, 0, 0), (B.UDP, 0, 0)])
    c = T.client(p, pki)
    assert T.full_login(c, opts=(X.OPT_SUBAUTH,)) == [X.OPT_SUBAUTH]
    c.send_plain(X.DATA, req)
    assert c.recv_plain(2, X.DATA) == b"\x05\x07"
    p.wait_log(r"LISTEN refused: UDP bind without UDP-Naked")
    c.close()
    c = T.client(p, pki)
    assert T.full_login(c) == [X.OPT_SUBAUTH, X.OPT_UDP_NAKED]
    c.send_plain(X.DATA, req)
    assert c.recv_plain(2, X.DATA) == b"\x05\x00"
    p.wait_log(r"LISTEN: 1 TCP and 1 UDP binds")
    c.close()
