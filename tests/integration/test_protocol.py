"""SOCKS on raw sockets: every field checked, every reply code provoked for
real (RFC 1928, RFC 1929, SOCKS4/4a)."""

import hashlib
import os
import re
import socket
import time

import pytest

import netns
import services
import socksraw as S
import stpdconf
from services import wait_until


def fields_in(line, **want):
    """Asserts every key=value (value a regex) is in the log line."""
    for k, v in want.items():
        assert re.search(r"(^|\s)%s=%s(\s|$)" % (re.escape(k), v), line), \
            "%s=%s not in: %s" % (k, v, line)


def target_rx(host, port):
    if ":" in host:
        return r"(\[%s\]|%s):%d" % (re.escape(host), re.escape(host), port)
    return r"%s:%d" % (re.escape(host), port)


# ---------------------------------------------------------------------------
# CONNECT


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "web.stp.test", "web6.stp.test"])
def test_connect_echo(proxy, echo, host):
    if "stp.test" in host:
        proxy.require("domain")
    s, rep = S.open_connect(proxy.port, host, echo.port)
    with s:
        assert rep.rep == 0x00, rep
        if proxy.has("stpd"):
            # BND is the proxy's own end of the target connection: a real
            # address of the target's family, never 0.0.0.0:0 (microsocks).
            want = ("::1",) if host in ("::1", "web6.stp.test") else ("127.0.0.1",)
            assert rep.host in want and rep.port != 0, rep
        payload = os.urandom(200000)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)       # half-close must reach the target ...
        back = S.recv_all(s)             # ... whose echo then ends with EOF
    assert back == payload
    if proxy.has("logs"):
        m = proxy.wait_log(r"session .*target=%s" % target_rx(host, echo.port))
        fields_in(m.string, cmd="connect", up=str(len(payload)), down=str(len(payload)),
                  client=r"127\.0\.0\.1:\d+", user="-")


def test_connect_pipelined(proxy, echo):
    """Greeting, request and the first data in one segment: bytes after the
    request belong to the target (no "one recv = one message")."""
    s = S.dial(proxy.port)
    with s:
        data = b"early bytes sent with the request\n"
        s.sendall(S.greeting() + S.request_msg(S.CMD_CONNECT, "127.0.0.1", echo.port) + data)
        assert S.recv_exact(s, 2) == b"\x05\x00"
        rep = S.read_reply(s)
        assert rep.rep == 0, rep
        assert S.recv_exact(s, len(data)) == data


def upload(proxy, sink, size, host="127.0.0.1"):
    """Streams size bytes to the sha256 sink through the proxy, half-closes,
    and returns the sink's "sha len" answer."""
    s, rep = S.open_connect(proxy.port, host, sink.port, timeout=30)
    with s:
        assert rep.rep == 0, rep
        for c in services.BigContent.chunks(size):
            s.sendall(c)
        s.shutdown(socket.SHUT_WR)
        return S.recv_all(s).decode()


def test_upload_100mb_sha256_then_reply_after_half_close(proxy, sha_sink):
    size = 100 * 1024 * 1024
    answer = upload(proxy, sha_sink, size)
    assert answer == "%s %d\n" % (services.BigContent.sha256(size), size)
    if proxy.has("logs"):
        m = proxy.wait_log(r"session .*target=127\.0\.0\.1:%d" % sha_sink.port, timeout=10)
        fields_in(m.string, up=str(size), down=str(len(answer)))


def test_target_half_closes_first(proxy, talk_first):
    """The target sends 1 MiB and its FIN first; the client must get all of
    it and the EOF, and can still send 1 MiB the other way."""
    s, rep = S.open_connect(proxy.port, "127.0.0.1", talk_first.port, timeout=30)
    with s:
        assert rep.rep == 0, rep
        got = S.recv_all(s)
        assert len(got) == 1 << 20
        assert hashlib.sha256(got).hexdigest() == services.BigContent.sha256(1 << 20)
        tag = os.urandom(16)
        body = tag + os.urandom((1 << 20) - 16)
        s.sendall(body)
        s.shutdown(socket.SHUT_WR)
        wait_until(lambda: tag in services.TALK_FIRST_SEEN, 10, what="the target's record")
        assert services.TALK_FIRST_SEEN[tag] == (hashlib.sha256(body).hexdigest(), len(body))
        assert S.recv_all(s) == b""


def test_parallel_transfers_both_ways(proxy, sha_sink, http):
    """40 uploads and 40 downloads of 2 MiB at once, every byte checked."""
    import concurrent.futures as cf
    size = 2 * 1024 * 1024
    want = services.BigContent.sha256(size)

    def down(i):
        s, rep = S.open_connect(proxy.port, "::1" if i % 2 else "127.0.0.1", http.port,
                                timeout=30)
        with s:
            assert rep.rep == 0
            s.sendall(b"GET /big/%d HTTP/1.0\r\n\r\n" % size)
            data = S.recv_all(s)
        body = data.partition(b"\r\n\r\n")[2]
        return hashlib.sha256(body).hexdigest() == want and len(body) == size

    def up(i):
        return upload(proxy, sha_sink, size) == "%s %d\n" % (want, size)

    with cf.ThreadPoolExecutor(max_workers=80) as ex:
        futs = [ex.submit(down, i) for i in range(40)] + [ex.submit(up, i) for i in range(40)]
        results = [f.result(timeout=120) for f in futs]
    assert all(results), "%d of %d transfers corrupted" % (results.count(False), len(results))


def test_reply_00_many_sessions_in_parallel(proxy, echo):
    socks = []
    try:
        for i in range(50):
            s, rep = S.open_connect(proxy.port, "127.0.0.1", echo.port)
            socks.append(s)
            assert rep.rep == 0
        for i, s in enumerate(socks):
            msg = b"session %d\n" % i
            assert S.echo_roundtrip(s, msg) == msg
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------
# Reply codes, each provoked for real


def one_request(proxy, host, port, cmd=S.CMD_CONNECT, atyp=None, raw=None):
    s = S.dial(proxy.port)
    with s:
        assert S.negotiate(s) == S.M_NONE
        if raw is not None:
            s.sendall(raw)
            rep = S.read_reply(s)
        else:
            rep = S.request(s, cmd, host, port, atyp)
        if rep.rep != 0:
            # a failure reply ends the connection (RFC 1928 section 6)
            assert S.closed_by_peer(s), "connection left open after reply %r" % rep
    return rep


def test_reply_01_zero_length_domain(proxy):
    raw = bytes([5, S.CMD_CONNECT, 0, S.ATYP_DOMAIN, 0]) + b"\x00\x50"
    rep = one_request(proxy, None, None, raw=raw)
    assert rep.rep == 0x01, rep


def test_reply_02_request_rule(stpd_factory, echo):
    text = stpdconf.conf(request_rules="request block { to 127.0.0.3/32 }\n"
                                       "request pass { }\n")
    line = stpdconf.line_of(text, "request block")
    p = stpd_factory(conf=text)
    rep = one_request(p, "127.0.0.3", echo.port)
    assert rep.rep == 0x02, rep
    m = p.wait_log(r"deny .*target=127\.0\.0\.3:%d" % echo.port)
    fields_in(m.string, client=r"127\.0\.0\.1:\d+", cmd="connect")
    assert 'rule="rule at %s:%d"' % (p.conf_path, line) in m.string, m.string
    # the next rule still passes other targets
    s, rep = S.open_connect(p.port, "127.0.0.1", echo.port)
    with s:
        assert rep.rep == 0
        assert S.echo_roundtrip(s, b"x") == b"x"


def test_reply_02_default_rule(stpd_factory, echo):
    """No request rule matches: blocked by the default rule."""
    p = stpd_factory(conf=stpdconf.conf(request_rules="request pass { to 127.0.0.1/32 }\n"))
    rep = one_request(p, "::1", echo.port)
    assert rep.rep == 0x02, rep
    m = p.wait_log(r"deny .*target=%s" % target_rx("::1", echo.port))
    assert 'rule="default rule"' in m.string, m.string


def test_reply_03_network_unreachable(proxy):
    # Linux refuses a TCP connect to a multicast address with ENETUNREACH
    # before any packet is sent, so this never leaves the machine.
    rep = one_request(proxy, "224.0.0.1", 80)
    assert rep.rep == 0x03, rep


def test_reply_04_nxdomain(proxy):
    proxy.require("domain")
    rep = one_request(proxy, services.NXDOMAIN_NAME, 80)
    assert rep.rep == 0x04, rep


def test_reply_05_refused(proxy):
    closed = services.free_port()
    rep = one_request(proxy, "127.0.0.1", closed)
    assert rep.rep == 0x05, rep
    rep = one_request(proxy, "::1", closed)
    assert rep.rep == 0x05, rep


def test_reply_06_connect_timeout_in_netns(stpd_factory):
    """A target that never answers: stpd runs in a namespace of our own where
    SYNs to the target are silently dropped; its connect timeout (2 s) ends
    the attempt with X'06'."""
    ns = netns.Netns()
    try:
        target = ns.add_blackhole()
        p = stpd_factory(conf=stpdconf.conf(extra=stpdconf.timeouts(connect=2),
                                            resolver=""), netns=ns.name)

        def attempt():
            t0 = time.monotonic()
            rep = one_request(p, target, 80)
            return rep, time.monotonic() - t0

        rep, took = ns.run(attempt)
        assert rep.rep == 0x06, rep
        assert 1.5 < took < 10, took
        p.stop()
    finally:
        ns.close()


def test_reply_07_unknown_command(proxy):
    rep = one_request(proxy, "127.0.0.1", 80, cmd=0x09)
    assert rep.rep == 0x07, rep


def test_reply_08_unknown_atyp(proxy):
    raw = bytes([5, S.CMD_CONNECT, 0, 0x02, 127, 0, 0, 1, 0, 80])
    rep = one_request(proxy, None, None, raw=raw)
    assert rep.rep == 0x08, rep


# ---------------------------------------------------------------------------
# BIND


def test_bind_third_party(proxy):
    proxy.require("bind")
    s = S.dial(proxy.port)
    with s:
        assert S.negotiate(s) == S.M_NONE
        first = S.request(s, S.CMD_BIND, "127.0.0.1", 0)
        assert first.rep == 0, first
        assert first.port != 0, first
        host = first.host
        if proxy.has("stpd"):
            assert host == "127.0.0.1", first   # a usable address, not 0.0.0.0
        elif host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        peer = socket.create_connection((host, first.port), timeout=10)
        with peer:
            second = S.read_reply(s)
            assert second.rep == 0, second
            assert (second.host, second.port) == peer.getsockname()[:2], second
            peer.sendall(b"from peer\n")
            assert S.recv_exact(s, 10) == b"from peer\n"
            s.sendall(b"from client\n")
            assert S.recv_exact(peer, 12) == b"from client\n"
            peer.shutdown(socket.SHUT_WR)
            assert S.recv_all(s) == b""
    if proxy.has("logs"):
        m = proxy.wait_log(r"session .*cmd=bind ")
        fields_in(m.string, up="12", down="10")


# ---------------------------------------------------------------------------
# UDP ASSOCIATE


class Assoc:
    """A UDP association: the control connection plus our UDP socket."""

    def __init__(self, proxy, src="127.0.0.1"):
        self.u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.u.bind((src, 0))
        self.u.settimeout(5)
        self.s = S.dial(proxy.port)
        assert S.negotiate(self.s) == S.M_NONE
        rep = S.request(self.s, S.CMD_UDP, src, self.u.getsockname()[1])
        assert rep.rep == 0, rep
        host = rep.host
        if proxy.has("stpd"):
            assert host == "127.0.0.1" and rep.port != 0, rep
        elif host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        self.relay = (host, rep.port)

    def send(self, host, port, data, frag=0):
        self.u.sendto(S.udp_packet(host, port, data, frag), self.relay)

    def recv(self):
        pkt, src = self.u.recvfrom(65535)
        assert src[:2] == self.relay, (src, self.relay)
        return S.udp_parse(pkt)

    def close(self):
        self.s.close()
        self.u.close()


def no_datagram(sock, wait=1.0):
    sock.settimeout(wait)
    try:
        sock.recvfrom(65535)
        return False
    except socket.timeout:
        return True


def test_udp_associate_ipv4_domain_ipv6(proxy, udp_echo):
    proxy.require("udp")
    a = Assoc(proxy)
    try:
        for host, want in (("127.0.0.1", "127.0.0.1"), ("web.stp.test", "127.0.0.1"),
                           ("::1", "::1")):
            if "stp.test" in host and not proxy.has("domain"):
                continue
            data = b"udp to %s " % host.encode() + os.urandom(8).hex().encode()
            a.send(host, udp_echo.port, data)
            frag, atyp, rhost, rport, rdata = a.recv()
            assert frag == 0
            # the reply header carries the echo's own address
            assert (rhost, rport) == (want, udp_echo.port), (rhost, rport)
            assert atyp == (S.ATYP_V6 if ":" in want else S.ATYP_V4)
            assert rdata == data
    finally:
        a.close()


def test_udp_foreign_source_dropped(proxy, udp_echo):
    proxy.require("udp")
    a = Assoc(proxy)
    try:
        foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        foreign.bind(("127.0.0.1", 0))
        with foreign:
            tag = b"foreign " + os.urandom(8).hex().encode()
            foreign.sendto(S.udp_packet("127.0.0.1", udp_echo.port, tag), a.relay)
            assert no_datagram(foreign, 1.0), "a foreign source got an answer"
            assert not udp_echo.got(tag), "datagram from a foreign source was relayed"
        # the association itself still works
        a.send("127.0.0.1", udp_echo.port, b"still here")
        assert a.recv()[4] == b"still here"
    finally:
        a.close()


def test_udp_frag_dropped(proxy, udp_echo):
    proxy.require("udp")
    a = Assoc(proxy)
    try:
        tag = b"fragment " + os.urandom(8).hex().encode()
        a.send("127.0.0.1", udp_echo.port, tag, frag=1)
        assert no_datagram(a.u, 1.0)
        assert not udp_echo.got(tag), "FRAG != 0 was relayed"
        a.send("127.0.0.1", udp_echo.port, b"whole")
        assert a.recv()[4] == b"whole"
    finally:
        a.close()


def test_udp_association_ends_with_control_connection(proxy, udp_echo):
    proxy.require("udp")
    a = Assoc(proxy)
    try:
        a.send("127.0.0.1", udp_echo.port, b"before")
        assert a.recv()[4] == b"before"
        relay_port = a.relay[1]
        assert services.udp_bound(relay_port)
        a.s.close()
        wait_until(lambda: not services.udp_bound(relay_port), 5,
                   what="relay port %d to close" % relay_port)
        tag = b"after close " + os.urandom(8).hex().encode()
        a.u.connect(a.relay)
        a.u.send(S.udp_packet("127.0.0.1", udp_echo.port, tag))
        with pytest.raises((ConnectionRefusedError, socket.timeout)):
            a.u.recv(65535)        # ICMP port unreachable: nobody listens
        assert not udp_echo.got(tag)
    finally:
        a.close()
    if proxy.has("logs"):
        m = proxy.wait_log(r"session .*cmd=udpassociate")
        fields_in(m.string, up=r"\d+", down=r"\d+")


# ---------------------------------------------------------------------------
# RFC 1929

USERS = {"alice": "s3cret-Pa55word"}
OTHER_PASSWORD = "other-Pa55word"


@pytest.fixture
def upproxy(proxy_factory):
    p = proxy_factory(users=USERS)
    p.require("userpass")
    return p


def test_userpass_right_password(upproxy, echo):
    s, rep = S.open_connect(upproxy.port, "127.0.0.1", echo.port,
                            auth=("alice", USERS["alice"]))
    with s:
        assert rep.rep == 0
        assert S.echo_roundtrip(s, b"authenticated\n") == b"authenticated\n"
    if upproxy.has("logs"):
        m = upproxy.wait_log(r"session .*target=127\.0\.0\.1:%d" % echo.port)
        fields_in(m.string, user="alice")


@pytest.mark.parametrize("user,password", [("alice", "wrong-Pa55word"),
                                           ("alice", OTHER_PASSWORD),
                                           ("mallory", "s3cret-Pa55word")])
def test_userpass_wrong(upproxy, user, password):
    s = S.dial(upproxy.port)
    with s:
        assert S.negotiate(s, (S.M_USERPASS,)) == S.M_USERPASS
        st = S.userpass(s, user, password)
        assert st != 0
        assert S.closed_by_peer(s), "connection left open after a failed login"
    if upproxy.has("logs"):
        m = upproxy.wait_log(r"auth failed .*user=%s" % re.escape(user))
        fields_in(m.string, client=r"127\.0\.0\.1:\d+")
        log = upproxy.log()
        for pw in (password, USERS["alice"], OTHER_PASSWORD):
            if pw:
                assert pw not in log, "a password appears in the log"


def test_userpass_empty_password(upproxy):
    """PLEN 0 is outside RFC 1929 (1..255): refused like a wrong password."""
    s = S.dial(upproxy.port)
    with s:
        assert S.negotiate(s, (S.M_USERPASS,)) == S.M_USERPASS
        s.sendall(b"\x01\x05alice\x00")
        try:
            st = S.recv_exact(s, 2)
            assert st[0] == 0x01 and st[1] != 0, st
        except (EOFError, ConnectionResetError):
            pass                                  # or just the close
        assert S.closed_by_peer(s)
    if upproxy.has("logs"):
        m = upproxy.wait_log(r"auth failed ")
        fields_in(m.string, client=r"127\.0\.0\.1:\d+")


def test_userpass_required(upproxy):
    """The client offers only 'no authentication': X'FF' and close."""
    s = S.dial(upproxy.port)
    with s:
        assert S.negotiate(s, (S.M_NONE,)) == S.M_NOACCEPT
        assert S.closed_by_peer(s)


# ---------------------------------------------------------------------------
# SOCKS4 / 4a


def socks4(proxy, ip, port, host=None, userid=b"tester"):
    s = S.dial(proxy.port)
    s.sendall(S.socks4_msg(1, ip, port, userid, host))
    return s, S.socks4_reply(s)


def test_socks4_connect(proxy, echo):
    proxy.require("socks4")
    s, (vn, cd, _, _) = socks4(proxy, "127.0.0.1", echo.port)
    with s:
        assert (vn, cd) == (0, 90)
        assert S.echo_roundtrip(s, b"socks4 data\n") == b"socks4 data\n"
    if proxy.has("logs"):
        proxy.wait_log(r"session .*cmd=connect .*target=127\.0\.0\.1:%d" % echo.port)


def test_socks4_refused(proxy):
    proxy.require("socks4")
    s, (vn, cd, _, _) = socks4(proxy, "127.0.0.1", services.free_port())
    with s:
        assert (vn, cd) == (0, 91)
        assert S.closed_by_peer(s)


def test_socks4a_connect(proxy, echo):
    proxy.require("socks4a", "domain")
    s, (vn, cd, _, _) = socks4(proxy, None, echo.port, host="web.stp.test")
    with s:
        assert (vn, cd) == (0, 90)
        assert S.echo_roundtrip(s, b"socks4a data\n") == b"socks4a data\n"


def test_socks4a_nxdomain(proxy):
    proxy.require("socks4a", "domain")
    s, (vn, cd, _, _) = socks4(proxy, None, 80, host=services.NXDOMAIN_NAME)
    with s:
        assert (vn, cd) == (0, 91)
        assert S.closed_by_peer(s)


def test_udp_associate_unspecified_address(proxy, udp_echo):
    """DST 0.0.0.0:0 (client does not know its address yet): the relay
    serves the first source that sends from the client's host."""
    proxy.require("udp")
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(5)
    s = S.dial(proxy.port)
    with s, u:
        assert S.negotiate(s) == S.M_NONE
        rep = S.request(s, S.CMD_UDP, "0.0.0.0", 0)
        assert rep.rep == 0, rep
        relay = ("127.0.0.1" if rep.host in ("0.0.0.0", "::") else rep.host, rep.port)
        big = os.urandom(60000)
        for data in (b"small", big):
            u.sendto(S.udp_packet("127.0.0.1", udp_echo.port, data), relay)
            pkt, src = u.recvfrom(65535)
            frag, atyp, host, port, rdata = S.udp_parse(pkt)
            assert (host, port, rdata) == ("127.0.0.1", udp_echo.port, data)


def test_udp_request_rule_per_datagram(stpd_factory, udp_echo):
    text = stpdconf.conf(request_rules="request block { to 127.0.0.3/32 }\n"
                                       "request pass { }\n")
    p = stpd_factory(conf=text)
    a = Assoc(p)
    try:
        tag = b"blocked " + os.urandom(8).hex().encode()
        a.send("127.0.0.3", udp_echo.port, tag)
        assert no_datagram(a.u, 1.0)
        assert not udp_echo.got(tag)
        a.send("127.0.0.1", udp_echo.port, b"allowed")
        assert a.recv()[4] == b"allowed"
    finally:
        a.close()


def test_udp_idle_timeout_ends_association(stpd_factory, udp_echo):
    """timeouts { udp-idle }: an association with no datagram for that long
    ends: the control connection is closed, the session line says why and
    carries the payload bytes both ways, the counters line the datagrams."""
    p = stpd_factory(conf=stpdconf.conf(extra="timeouts { udp-idle 1 }\n"))
    a = Assoc(p)
    try:
        a.send("127.0.0.1", udp_echo.port, b"12345")
        assert a.recv()[4] == b"12345"
        assert S.closed_by_peer(a.s, 10)
        m = p.wait_log(r'cmd=udpassociate .* up=(\d+) down=(\d+) duration=([\d.]+) '
                       r'rep="succeeded" result="udp idle timeout"', timeout=10)
        assert (m.group(1), m.group(2)) == ("5", "5")
        assert float(m.group(3)) >= 1.0
        p.wait_log(r"udp datagrams up=1 down=1 dropped frag=0 foreign=0 bad=0 denied=0 "
                   r"unresolved=0 before-client=0 send-errors=0")
    finally:
        a.close()


def test_udp_listener_advertise_and_external(stpd_factory, udp_echo):
    """udp-advertise names BND.ADDR (the relay's own port kept); external is
    the source of the datagrams the relay sends to targets."""
    p = stpd_factory(conf=stpdconf.conf(
        listen="listen 127.0.0.1:$port { udp-advertise 127.0.0.9; external 127.0.0.3 }\n"))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(5)
    s = S.dial(p.port)
    with s, u:
        assert S.negotiate(s) == S.M_NONE
        rep = S.request(s, S.CMD_UDP, "127.0.0.1", u.getsockname()[1])
        assert rep.rep == 0 and rep.host == "127.0.0.9" and rep.port != 0, rep
        tag = b"from external " + os.urandom(8).hex().encode()
        u.sendto(S.udp_packet("127.0.0.1", udp_echo.port, tag), ("127.0.0.1", rep.port))
        pkt, src = u.recvfrom(65535)
        assert src == ("127.0.0.1", rep.port)
        assert S.udp_parse(pkt)[2:] == ("127.0.0.1", udp_echo.port, tag)
        with udp_echo.lock:
            peers = [peer for d, peer in udp_echo.received if d == tag]
        assert [peer[0] for peer in peers] == ["127.0.0.3"]
