"""`stp dns` (a local stub resolver forwarding every query through the
proxy with DNS QUERY X'F2') queried by dig over UDP and TCP, and
`stp resolve` through X'F2'; against stpd whose resolver is a dnsmasq the
test starts on loopback (tests/integration/dnszone.py). A proxy without
X'F2' (a small fake answering X'07', as Tor does) is still asked A, AAAA and
PTR through RESOLVE X'F0' / RESOLVE_PTR X'F1'."""

import re
import shutil
import socket
import struct
import subprocess
import threading

import pytest

import dnszone as Z
import socksraw as S
import stpdconf
from test_client_lib import clean_env, stp, stp_bin
from tls_fixtures import pki  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def zone(tmp_path_factory):
    z = Z.Zone(str(tmp_path_factory.mktemp("zone")))
    yield z
    z.close()


def proxy_url(p):
    return "socks5h://127.0.0.1:%d" % p.port


class Stub:
    """stp dns --listen 127.0.0.1:0 URL; the port from its stderr line."""

    def __init__(self, url, *opts):
        self.proc = subprocess.Popen([stp_bin()] + list(opts) + ["dns", "--listen",
                                                                 "127.0.0.1:0", url],
                                     stderr=subprocess.PIPE, env=clean_env())
        line = self.proc.stderr.readline().decode()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+) \(udp, tcp\)", line)
        assert m, line
        self.port = int(m.group(1))

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stderr.close()


@pytest.fixture
def stub_for():
    made = []

    def make(url, *opts):
        s = Stub(url, *opts)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def dig(stub, *args):
    if not shutil.which("dig"):
        pytest.fail("dig missing (scripts/deps.sh installs bind9-dnsutils)")
    r = subprocess.run(["dig", "@127.0.0.1", "-p", str(stub.port), "+time=10", "+tries=1"]
                       + list(args), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def short(stub, *args):
    return dig(stub, "+short", *args).split("\n")[:-1]


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_dig_every_type(stpd_factory, zone, stub_for, transport):
    p = stpd_factory(conf=stpdconf.conf(resolver="resolver %s\n" % zone.addr))
    st = stub_for(proxy_url(p))
    assert short(st, transport, "A", "web.example.test") == ["127.0.0.1"]
    assert short(st, transport, "AAAA", "web.example.test") == ["::1"]
    assert short(st, transport, "MX", "example.test") == ["10 mail.example.test."]
    assert short(st, transport, "TXT", "example.test") == ['"v=spf1 -all" "second string"']
    assert short(st, transport, "SRV", "_sip._tcp.example.test") == \
        ["1 2 5060 sip.example.test."]
    assert short(st, transport, "-x", "127.0.0.77") == ["ptr.example.test."]
    out = dig(st, transport, "A", "nope.example.test")
    assert "status: NXDOMAIN" in out and "example.test." in out.split("AUTHORITY SECTION")[1]
    for qt in (1, 28, 15, 16, 33, 12):
        p.wait_log(r"session .* cmd=dns target=\S+:%d .*rep=\"succeeded\"" % qt)


def test_dig_big_answer_udp_then_tcp(stpd_factory, zone, stub_for):
    """An answer over 512 bytes: TC over UDP, then dig asks over TCP and
    gets all of it."""
    p = stpd_factory(conf=stpdconf.conf(resolver="resolver %s\n" % zone.addr))
    st = stub_for(proxy_url(p))
    out = dig(st, "+noedns", "TXT", "big.example.test")
    assert "Truncated, retrying in TCP mode" in out, out
    assert out.count("x" * 250) == 8
    out = dig(st, "+noedns", "+ignore", "TXT", "big.example.test")
    assert " tc " in out.split("flags:")[1].split(";")[0] + " "


def test_dig_refused_by_rules(stpd_factory, zone, stub_for):
    rules = ("request pass { command dns; to .example.test }\n"
             "request block { command dns }\nrequest pass { }\n")
    p = stpd_factory(conf=stpdconf.conf(resolver="resolver %s\n" % zone.addr,
                                        request_rules=rules))
    st = stub_for(proxy_url(p))
    assert short(st, "A", "web.example.test") == ["127.0.0.1"]
    out = dig(st, "A", "www.other.test")
    assert "status: REFUSED" in out
    p.wait_log(r"deny .*cmd=dns target=www\.other\.test:1")
    assert zone.queries("www.other.test") == 0


def test_dig_proxy_down_is_servfail(stub_for):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    st = stub_for("socks5h://127.0.0.1:%d" % port, "--timeout", "5")
    assert "status: SERVFAIL" in dig(st, "A", "web.example.test")


# ---------------------------------------------------------------------------
# a proxy with RESOLVE X'F0' / RESOLVE_PTR X'F1' only


class FakeProxy:
    """A SOCKS5 server on 127.0.0.1: each connection in turn goes to
    self._one(conn) on one thread, and is closed after it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                try:
                    self._one(c)
                except (OSError, ValueError):
                    pass

    def close(self):
        self.sock.close()


class TorLike(FakeProxy):
    """A SOCKS5 server that knows Tor's RESOLVE and RESOLVE_PTR (one name,
    one address) and answers X'07' to everything else, X'F2' included."""

    def __init__(self):
        self.cmds = []
        super().__init__()

    def _one(self, c):
        c.settimeout(10)
        ver, n = S.recv_exact(c, 2)
        S.recv_exact(c, n)
        c.sendall(b"\x05\x00")
        _, cmd, _ = S.recv_exact(c, 3)
        atyp, host, _ = S.read_addr(c)
        self.cmds.append((cmd, host))
        if cmd == 0xF0 and host == "web.example.test":
            c.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00")
        elif cmd == 0xF0:
            c.sendall(b"\x05\x04\x00\x01" + bytes(6))
        elif cmd == 0xF1 and host == "127.0.0.77":
            name = b"ptr.example.test"
            c.sendall(b"\x05\x00\x00\x03" + bytes([len(name)]) + name + b"\x00\x00")
        else:
            c.sendall(b"\x05\x07\x00\x01" + bytes(6))


@pytest.fixture
def torlike():
    t = TorLike()
    yield t
    t.close()


def test_fallback_to_resolve(torlike, stub_for):
    st = stub_for("socks5h://127.0.0.1:%d" % torlike.port)
    out = dig(st, "A", "web.example.test")
    assert re.search(r"web\.example\.test\.\s+60\s+IN\s+A\s+127\.0\.0\.1", out), out
    assert short(st, "-x", "127.0.0.77") == ["ptr.example.test."]
    assert "status: NXDOMAIN" in dig(st, "A", "nope.example.test")
    # RESOLVE gave an IPv4 address: AAAA is NODATA
    out = dig(st, "AAAA", "web.example.test")
    assert "status: NOERROR" in out and "ANSWER: 0" in out
    assert "status: SERVFAIL" in dig(st, "MX", "example.test")
    cmds = [c for c, _ in torlike.cmds]
    assert 0xF2 in cmds and 0xF0 in cmds and 0xF1 in cmds


# ---------------------------------------------------------------------------
# stp resolve


def test_stp_resolve_through_f2(stpd_factory, zone):
    p = stpd_factory(conf=stpdconf.conf(resolver="resolver %s\n" % zone.addr))
    r = stp("resolve", "web.example.test", proxy=proxy_url(p))
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["127.0.0.1", "::1"]
    p.wait_log(r"session .* cmd=dns target=web\.example\.test:1 ")
    p.wait_log(r"session .* cmd=dns target=web\.example\.test:28 ")
    r = stp("resolve", "nope.example.test", proxy=proxy_url(p))
    assert r.returncode == 8 and b"NXDOMAIN" in r.stderr


def test_stp_resolve_falls_back_to_f0(torlike):
    r = stp("resolve", "web.example.test", proxy="socks5h://127.0.0.1:%d" % torlike.port)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["127.0.0.1"]


def test_stp_resolve_refused_is_12(stpd_factory, zone):
    p = stpd_factory(conf=stpdconf.conf(resolver="resolver %s\n" % zone.addr,
                                        request_rules="request block { command dns }\n"
                                                      "request pass { }\n"))
    r = stp("resolve", "web.example.test", proxy=proxy_url(p))
    assert r.returncode == 12, r.stderr  # 10 + X'02'


# ---------------------------------------------------------------------------
# the client reading a DNS QUERY exchange cut at every byte


class CutProxy(FakeProxy):
    """Answers X'F2' properly, or cut after `cut` bytes of its whole
    response (first reply, second reply, ALEN, answer), then closes."""

    def __init__(self):
        self.cut = None
        super().__init__()

    def _one(self, c):
        c.settimeout(10)
        _, n = S.recv_exact(c, 2)
        S.recv_exact(c, n)
        c.sendall(b"\x05\x00")
        _, cmd, _ = S.recv_exact(c, 3)
        atyp, host, qtype = S.read_addr(c)
        rep = b"\x05\x00\x00\x03" + bytes([len(host)]) + host.encode() + struct.pack(">H", qtype)
        c.sendall(rep)
        q = S.recv_exact(c, struct.unpack(">H", S.recv_exact(c, 2))[0])
        ans = q[:2] + b"\x81\x80" + q[4:6] + (b"\x00\x01" if qtype == 1 else b"\x00\x00") + \
            b"\x00\x00\x00\x00" + q[12:]
        if qtype == 1:
            ans += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01"
        rest = rep + struct.pack(">H", len(ans)) + ans
        c.sendall(rest if self.cut is None else rest[:self.cut])


def test_client_answer_cut_at_every_byte():
    p = CutProxy()
    try:
        url = "socks5h://127.0.0.1:%d" % p.port
        r = stp("resolve", "web.example.test", proxy=url)
        assert r.returncode == 0 and r.stdout.decode().split() == ["127.0.0.1"], r.stderr
        name = len("web.example.test")
        total = (7 + name) + 2 + 12 + (name + 2 + 4) + 16
        for cut in range(total):
            p.cut = cut
            r = stp("resolve", "--timeout", "5", "web.example.test", proxy=url)
            assert r.returncode == 5 and r.stdout == b"", (cut, r.returncode, r.stderr)
    finally:
        p.close()


@pytest.mark.stpd_module("tls")
def test_through_tls_proxies(stpd_factory, zone, pki, stub_for):  # noqa: F811
    """X'F2' inside method X'86' (socks5s://): libstp's look-ups run on its
    connection object, so TLS proxies work as plain ones."""
    text = ("listen 127.0.0.1:$port\nresolver %s\n"
            "auth { methods ssl; backend file; users-file $users; }\n"
            "tls { cert %s; key %s; }\n"
            "client pass { from 127.0.0.0/8 }\nrequest pass { }\n"
            % (zone.addr, pki.path("server.pem"), pki.path("server.key")))
    p = stpd_factory(conf=text, users={"alice": "pw-Secret-1"})
    url = "socks5s://127.0.0.1:%d?ca=%s" % (p.port, pki.path("ca.pem"))
    r = stp("resolve", "web.example.test", proxy=url)
    assert r.returncode == 0 and r.stdout.decode().split() == ["127.0.0.1", "::1"], r.stderr
    st = stub_for(url)
    assert short(st, "MX", "example.test") == ["10 mail.example.test."]
    p.wait_log(r"session .* cmd=dns target=example\.test:15 .*rep=\"succeeded\"")
