"""CMD X'F2' DNS QUERY (docs/protocol.md §5.4): whole DNS messages of any
type through stpd, answered by its c-ares resolver (a dnsmasq the test
starts) or its cache; rules refusing names; bad and truncated input."""

import re
import socket
import struct
import time

import pytest

import dnszone as Z
import socksraw as S
import stpdconf

CMD_DNS = 0xF2


@pytest.fixture(scope="module")
def zone(tmp_path_factory):
    z = Z.Zone(str(tmp_path_factory.mktemp("zone")))
    yield z
    z.close()


def zconf(zone, **kw):
    kw.setdefault("resolver", "resolver %s\n" % zone.addr)
    return stpdconf.conf(**kw)


def request_bytes(name, qtype, msg, port=None):
    t = Z.TYPES[qtype] if isinstance(qtype, str) else qtype
    return (S.request_msg(CMD_DNS, name, t if port is None else port, S.ATYP_DOMAIN)
            + struct.pack(">H", len(msg)) + msg)


def ask(p, name, qtype, msg=None, raw=None):
    """(second reply, answer message or None, closed) for one DNS QUERY
    sent in one piece; the first reply must be X'00' unless it is the
    only one."""
    msg = Z.query(name, qtype) if msg is None else msg
    s = S.dial(p.port)
    with s:
        assert S.negotiate(s) == S.M_NONE
        s.sendall(raw if raw is not None else request_bytes(name, qtype, msg))
        rep = S.read_reply(s)
        if rep.rep == 0:
            rep = S.read_reply(s)
        ans = None
        if rep.rep == 0:
            n = struct.unpack(">H", S.recv_exact(s, 2))[0]
            ans = S.recv_exact(s, n)
        return rep, ans, S.closed_by_peer(s, 10)


def records(ans, rtype, section=0):
    return [rr for rr in Z.parse(ans)[3] if rr[2] == Z.TYPES[rtype] and rr[0] == section]


@pytest.mark.parametrize("qtype,check", [
    ("A", lambda rd: rd == bytes([127, 0, 0, 1])),
    ("AAAA", lambda rd: rd == socket.inet_pton(socket.AF_INET6, "::1")),
])
def test_address_records(stpd_factory, zone, qtype, check):
    p = stpd_factory(conf=zconf(zone))
    msg = Z.query("web.example.test", qtype, qid=0x4242)
    rep, ans, closed = ask(p, "web.example.test", qtype, msg)
    assert rep.rep == 0 and rep.host == "web.example.test" and rep.port == Z.TYPES[qtype]
    qid, flags, rcode, _ = Z.parse(ans)
    assert qid == 0x4242 and flags & 0x8000 and rcode == 0
    rrs = records(ans, qtype)
    assert len(rrs) == 1 and check(rrs[0][4])
    assert closed
    p.wait_log(r"dns web\.example\.test type %d: NOERROR" % Z.TYPES[qtype])
    p.wait_log(r"session .* cmd=dns target=web\.example\.test:%d .*rep=\"succeeded\""
               % Z.TYPES[qtype])


def test_mx_txt_srv_ptr(stpd_factory, zone):
    p = stpd_factory(conf=zconf(zone))
    _, ans, _ = ask(p, "example.test", "MX")
    mx = records(ans, "MX")
    assert len(mx) == 1 and mx[0][4][:2] == b"\x00\x0a" and b"mail" in mx[0][4]
    _, ans, _ = ask(p, "example.test", "TXT")
    txt = records(ans, "TXT")
    assert txt and txt[0][4] == b"\x0bv=spf1 -all\x0dsecond string"
    _, ans, _ = ask(p, "_sip._tcp.example.test", "SRV")
    srv = records(ans, "SRV")
    assert srv and srv[0][4][:6] == struct.pack(">HHH", 1, 2, 5060)
    _, ans, _ = ask(p, "77.0.0.127.in-addr.arpa", "PTR")
    ptr = records(ans, "PTR")
    assert ptr and b"\x03ptr\x07example\x04test\x00" == ptr[0][4]


def test_caa_and_dnskey_with_edns_do(stpd_factory, zone):
    """Record types c-ares has no parser for travel whole; EDNS with DO goes
    to the resolver and its OPT comes back."""
    p = stpd_factory(conf=zconf(zone))
    _, ans, _ = ask(p, "example.test", "CAA", Z.query("example.test", "CAA", edns=1232, do=True))
    assert [rr[4] for rr in records(ans, "CAA")] == [Z.CAA_RDATA]
    assert records(ans, "OPT", section=2)
    _, ans, _ = ask(p, "example.test", "DNSKEY")
    assert [rr[4] for rr in records(ans, "DNSKEY")] == [Z.DNSKEY_RDATA]


def test_nxdomain_is_an_answer(stpd_factory, zone):
    p = stpd_factory(conf=zconf(zone))
    rep, ans, _ = ask(p, "nope.example.test", "A")
    assert rep.rep == 0
    assert Z.parse(ans)[2] == 3
    assert records(ans, "SOA", section=1)
    p.wait_log(r"dns nope\.example\.test type 1: NXDOMAIN")


def test_upstream_refused_is_an_answer(stpd_factory, zone):
    """dnsmasq REFUSES names outside its zone: the client gets that answer,
    RCODE 5, not a SOCKS error (ARES_FLAG_NOCHECKRESP on the raw channel)."""
    p = stpd_factory(conf=zconf(zone))
    msg = Z.query("www.elsewhere.test", "A", qid=0x5151)
    rep, ans, closed = ask(p, "www.elsewhere.test", "A", msg)
    assert rep.rep == 0 and closed
    qid, flags, rcode, rrs = Z.parse(ans)
    assert qid == 0x5151 and flags & 0x8000 and rcode == 5 and rrs == []
    p.wait_log(r"dns www\.elsewhere\.test type 1: REFUSED, \d+ bytes")


@pytest.fixture(scope="module")
def fixed():
    f = Z.Fixed()
    yield f
    f.close()


@pytest.mark.parametrize("name,rcode,word", [("servfail.example.test", 2, "SERVFAIL"),
                                             ("notimp.example.test", 4, "NOTIMP")])
def test_upstream_servfail_notimp_are_answers(stpd_factory, fixed, name, rcode, word):
    """Every upstream RCODE reaches the client whole; none is cached."""
    p = stpd_factory(conf=zconf(fixed, extra="workers 1\n"))
    for _ in range(2):
        rep, ans, _ = ask(p, name, "A")
        assert rep.rep == 0 and Z.parse(ans)[2] == rcode
    p.wait_log(r"dns %s type 1: %s, \d+ bytes$" % (re.escape(name), word))
    assert sum(1 for a in fixed.asked if a[0] == name) >= 2  # not served from the cache


def test_dnssec_rrsig_comes_back_whole(stpd_factory, fixed):
    """A signed record set: with EDNS DO the A record and its RRSIG come
    back byte for byte with the OPT's DO bit; without DO only the A."""
    p = stpd_factory(conf=zconf(fixed))
    msg = Z.query(Z.SIGNED, "A", edns=1232, do=True)
    rep, ans, _ = ask(p, Z.SIGNED, "A", msg)
    assert rep.rep == 0 and Z.parse(ans)[2] == 0
    rrs = Z.parse(ans)[3]
    assert [rr[4] for rr in rrs if rr[2] == 1 and rr[0] == 0] == [Z.SIGNED_A]
    assert [rr[4] for rr in rrs if rr[2] == Z.RRSIG and rr[0] == 0] == [Z.RRSIG_RDATA]
    opt = [rr for rr in rrs if rr[2] == 41 and rr[0] == 2]
    assert opt and opt[0][3] & 0x8000  # the DO bit, in the OPT's TTL field
    assert (Z.SIGNED, 1, True) in fixed.asked
    _, ans, _ = ask(p, Z.SIGNED, "A")
    assert [rr[2] for rr in Z.parse(ans)[3]] == [1]


def test_large_answer_over_tcp(stpd_factory, zone):
    """A TXT answer over 2000 bytes: dnsmasq truncates it over UDP, c-ares
    asks again over TCP, the client gets it whole."""
    p = stpd_factory(conf=zconf(zone))
    rep, ans, _ = ask(p, "big.example.test", "TXT")
    assert rep.rep == 0 and len(ans) > 2000
    assert not Z.parse(ans)[1] & 0x0200  # not TC
    assert records(ans, "TXT")[0][4].count(b"x" * 250) == 8


# ---------------------------------------------------------------------------
# the cache: TTLs honoured, negative answers per RFC 2308


def test_cache_serves_and_ages(stpd_factory, zone):
    p = stpd_factory(conf=zconf(zone, extra="workers 1\n"))
    before = zone.queries("example.test")
    _, a1, _ = ask(p, "example.test", "MX")
    deadline = time.time() + 10
    while zone.queries("example.test") == before:
        assert time.time() < deadline
        time.sleep(0.05)
    asked = zone.queries("example.test")
    time.sleep(2.1)
    _, a2, _ = ask(p, "EXAMPLE.test", "MX", Z.query("EXAMPLE.test", "MX", qid=7))
    p.wait_log(r"dns EXAMPLE\.test type 15: NOERROR, \d+ bytes \(cached\)")
    assert Z.parse(a2)[0] == 7
    ttl1, ttl2 = records(a1, "MX")[0][3], records(a2, "MX")[0][3]
    assert ttl1 - 4 <= ttl2 <= ttl1 - 2, (ttl1, ttl2)
    time.sleep(0.5)
    assert zone.queries("example.test") == asked


def test_negative_cache_and_limits(stpd_factory, zone):
    conf = zconf(zone, extra="workers 1\ndns-cache { negative-ttl 1; }\n")
    p = stpd_factory(conf=conf)
    n0 = zone.queries("gone.example.test")
    ask(p, "gone.example.test", "A")
    ask(p, "gone.example.test", "A")
    p.wait_log(r"dns gone\.example\.test type 1: NXDOMAIN, \d+ bytes \(cached\)")
    assert zone.queries("gone.example.test") == n0 + 1
    time.sleep(1.5)  # negative-ttl 1 caps the SOA's 300
    ask(p, "gone.example.test", "A")
    services_wait(lambda: zone.queries("gone.example.test") == n0 + 2)


def test_cache_off(stpd_factory, zone):
    p = stpd_factory(conf=zconf(zone, extra="workers 1\ndns-cache { entries 0; }\n"))
    n0 = zone.queries("_sip._tcp.example.test")
    ask(p, "_sip._tcp.example.test", "SRV")
    ask(p, "_sip._tcp.example.test", "SRV")
    services_wait(lambda: zone.queries("_sip._tcp.example.test") == n0 + 2)


def services_wait(pred, timeout=10):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, "condition not met"
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# rules: a user allowed *.example.test only


ONLY_EXAMPLE = ("request pass { command dns; to .example.test }\n"
                "request block { command dns }\n"
                "request pass { }\n")


def test_rules_refuse_other_names(stpd_factory, zone):
    text = zconf(zone, request_rules=ONLY_EXAMPLE)
    line = stpdconf.line_of(text, "request block")
    p = stpd_factory(conf=text)
    rep, ans, closed = ask(p, "web.example.test", "A")
    assert rep.rep == 0 and ans
    rep, ans, closed = ask(p, "www.other.test", "A")
    assert rep.rep == 2 and ans is None and closed
    m = p.wait_log(r"deny .*cmd=dns target=www\.other\.test:1")
    assert 'rule="rule at %s:%d"' % (p.conf_path, line) in m.string, m.string
    assert zone.queries("www.other.test") == 0


def test_rules_match_qtype_as_port(stpd_factory, zone):
    p = stpd_factory(conf=zconf(zone, request_rules="request block { command dns; port 16 }\n"
                                                     "request pass { }\n"))
    assert ask(p, "example.test", "TXT")[0].rep == 2
    assert ask(p, "example.test", "MX")[0].rep == 0


# ---------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("case,rep", [
    ("name differs", 1), ("type differs", 1), ("response", 1), ("two questions", 1),
    ("garbage", 1), ("length 11", 1), ("length 2000", 1), ("address", 8),
])
def test_bad_requests(stpd_factory, zone, case, rep):
    p = stpd_factory(conf=zconf(zone))
    good = Z.query("web.example.test", "A")
    raw = None
    if case == "name differs":
        raw = request_bytes("web.example.test", "A", Z.query("web2.example.test", "A"))
    elif case == "type differs":
        raw = request_bytes("web.example.test", "A", Z.query("web.example.test", "AAAA"))
    elif case == "response":
        raw = request_bytes("web.example.test", "A", good[:2] + b"\x81" + good[3:])
    elif case == "two questions":
        raw = request_bytes("web.example.test", "A", good[:5] + b"\x02" + good[6:])
    elif case == "garbage":
        raw = request_bytes("web.example.test", "A", good[:12] + b"\xff" * 20)
    elif case == "length 11":
        raw = S.request_msg(CMD_DNS, "web.example.test", 1, S.ATYP_DOMAIN) + b"\x00\x0b" + good[:11]
    elif case == "length 2000":
        raw = S.request_msg(CMD_DNS, "web.example.test", 1, S.ATYP_DOMAIN) + b"\x07\xd0"
    elif case == "address":
        raw = S.request_msg(CMD_DNS, "127.0.0.1", 1) + struct.pack(">H", len(good)) + good
    rep_, ans, closed = ask(p, "web.example.test", "A", raw=raw)
    assert rep_.rep == rep and ans is None and closed
    assert p.alive()


def test_truncated_at_every_byte(stpd_factory, zone):
    """Every prefix of request + LEN + message, then EOF: no reply, no
    crash; the whole thing still works afterwards."""
    p = stpd_factory(conf=zconf(zone, extra=stpdconf.timeouts(handshake=2)))
    msg = request_bytes("web.example.test", "A", Z.query("web.example.test", "A", edns=1232))
    reqlen = len(S.request_msg(CMD_DNS, "web.example.test", 1, S.ATYP_DOMAIN))
    for cut in range(len(msg)):
        s = S.dial(p.port)
        with s:
            assert S.negotiate(s) == S.M_NONE
            s.sendall(msg[:cut])
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            if cut >= reqlen:  # the first reply, never a second
                assert S.read_reply(s).rep == 0
            assert s.recv(64) == b"", "second reply to a %d-byte prefix" % cut
    assert p.alive()
    assert ask(p, "web.example.test", "A")[0].rep == 0


def test_message_never_sent_times_out(stpd_factory, zone):
    p = stpd_factory(conf=zconf(zone, extra=stpdconf.timeouts(handshake=1)))
    s = S.dial(p.port)
    with s:
        assert S.negotiate(s) == S.M_NONE
        s.sendall(S.request_msg(CMD_DNS, "web.example.test", 1, S.ATYP_DOMAIN) + b"\x00\x20")
        assert S.read_reply(s).rep == 0
        assert S.closed_by_peer(s, 15)
    p.wait_log(r"dns: no DNS message after the request")


def test_one_byte_at_a_time(stpd_factory, zone):
    p = stpd_factory(conf=zconf(zone))
    msg = request_bytes("web.example.test", "AAAA", Z.query("web.example.test", "AAAA"))
    s = S.dial(p.port)
    with s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert S.negotiate(s) == S.M_NONE
        for b in msg:
            s.sendall(bytes([b]))
        assert S.read_reply(s).rep == 0
        rep = S.read_reply(s)
        assert rep.rep == 0
        n = struct.unpack(">H", S.recv_exact(s, 2))[0]
        assert records(S.recv_exact(s, n), "AAAA")
