"""Feature discovery (method X'87', CMD X'F3'; docs/protocol.md 5.6) against
a real stpd: the exact exchange on raw sockets, with the document parsed
here by an implementation independent of stp's codec; answers that differ
by listener and by client (rules), and by user after authentication;
old clients (curl, PySocks, a greeting offering X'87' among methods stpd
accepts) served exactly as before; `stp features --json` parsed with Python's json; `stp lookup`
choosing the proxy's RESOLVE or a local look-up from the features."""

import json
import re
import subprocess

import pytest

import servers
import services
import socksraw as S
import stpdconf
from test_client_lib import clean_env, stp_bin
from tls_fixtures import pki  # noqa: F401  (a fixture)

pytestmark = pytest.mark.stpd_module("discovery")

M_FEATURES = 0x87
CMD_FEATURES = 0xF3
CMD_CONNECT, CMD_BIND, CMD_UDP, CMD_RESOLVE = 0x01, 0x02, 0x03, 0xF0


# ---------------------------------------------------------------------------
# the document, parsed independently of src/proto/featdoc.c


def read_doc(s):
    """FVER FLAGS LEN ENTRIES from the socket -> (header, entries)."""
    head = S.recv_exact(s, 4)
    body = S.recv_exact(s, head[2] << 8 | head[3])
    return head, parse_entries(body)


def parse_entries(body):
    """SCOPE CODE TYPE NLEN NAME VLEN VALUE ... -> {(scope, code, name): value}."""
    out, i = {}, 0
    while i < len(body):
        scope, code, typ, nlen = body[i:i + 4]
        name = body[i + 4:i + 4 + nlen].decode("ascii")
        assert re.fullmatch(r"[a-z0-9-]{1,32}", name), name
        vlen = body[i + 4 + nlen]
        value = body[i + 5 + nlen:i + 5 + nlen + vlen]
        assert len(value) == vlen, "entry runs past LEN"
        if typ == 1:
            assert 1 <= vlen <= 8
            value = int.from_bytes(value, "big")
        elif typ == 2:
            value = value.decode("ascii")
        elif typ == 4:
            assert vlen == 0
            value = True
        else:
            value = list(value)
        out[(scope, code, name)] = value
        i += 5 + nlen + vlen
    return out


def discover(port, source=None, methods=(M_FEATURES,)):
    """Greeting with methods; returns (choice, header, entries) and leaves
    the socket to the caller as the 4th element."""
    s = S.dial(port, source=source)
    choice = S.negotiate(s, methods)
    if choice != M_FEATURES:
        return choice, None, None, s
    head, entries = read_doc(s)
    return choice, head, entries, s


def features(port, source=None):
    choice, head, entries, s = discover(port, source)
    s.close()
    assert choice == M_FEATURES
    assert head[0] == 0x01 and head[1] == 0x00  # FVER 1, not truncated
    return entries


def cmds(entries):
    return entries[(0, 0, "commands")]


# ---------------------------------------------------------------------------
# the exchange


def test_document_lists_what_the_config_says(stpd_factory):
    p = stpd_factory(conf=stpdconf.conf(
        extra="limits { sessions 77; sessions-per-client 7 }\n"
              "timeouts { connect 9; udp-idle 42 }\n"))
    e = features(p.port)
    assert e[(0, 0, "versions")] == [4, 5]
    assert e[(0, 0, "methods")] == [0x00, M_FEATURES]  # X'87' last
    assert {CMD_FEATURES, CMD_CONNECT, CMD_BIND, CMD_UDP} <= set(cmds(e))
    assert e[(3, 4, "commands")] == [CMD_CONNECT, CMD_BIND]  # over SOCKS4
    assert e[(0, 0, "max-sessions")] == 77
    assert e[(0, 0, "max-sessions-per-client")] == 7
    assert e[(2, CMD_CONNECT, "timeout")] == 9
    assert e[(2, CMD_UDP, "idle-timeout")] == 42
    p.wait_log(r"features sent \(\d+ bytes\)")


def test_modules_describe_themselves(stpd_factory):
    """Each built module adds its own entries (describe hook)."""
    p = stpd_factory()
    e = features(p.port)
    mods = servers.stpd_modules(servers.stpd_binary())
    if "mcast" in mods:
        assert 0x05 in cmds(e) and e[(2, 0x05, "suites")] == [1]
        assert e[(2, 0x85, "sources-max")] == 32
    if "resolve" in mods:
        assert {0xF0, 0xF1} <= set(cmds(e))
        assert e[(2, 0xF0, "atyps")] == [1, 4]


def json_entries(doc):
    """`stp features --json` entries -> {(scope, code, name): value}."""
    return {(x["scope"], x["code"], x["name"]): x["value"] for x in doc["entries"]}


def test_every_module_in_stp_features_json(stpd_factory):
    """resolve (X'F2'), autoconf (X'F4') and bind (X'10'/X'11') describe
    themselves with the values of this config, as `stp features --json`
    prints them; X'F4' is left out without a profile."""
    mods = servers.stpd_modules(servers.stpd_binary())
    extra = "timeouts { dns 7 }\n"
    if "resolve" in mods:
        extra += "dns-cache { entries 123; max-ttl 456; negative-ttl 78 }\n"
    if "autoconf" in mods:
        extra += ("autoconfig {\n http 127.0.0.1:%d\n profile a\n refresh 900\n"
                  " profile b\n refresh 45\n}\n" % services.free_port())
    if "bind" in mods:
        extra += "binds { max-binds 3; max-pending 9; max-peers 11; accept-timeout 13; " \
                 "max-backlog 17 }\n"
    p = stpd_factory(conf=stpdconf.conf(extra=extra))
    r = stp("features", "socks5://127.0.0.1:%d" % p.port, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["truncated"] is False
    e = json_entries(doc)
    if "resolve" in mods:
        assert 0xF2 in doc["commands"]
        assert e[("command", 0xF2, "timeout")] == 7
        assert e[("command", 0xF2, "query-max")] == 1232
        assert e[("command", 0xF2, "answer-max")] == 65535
        assert e[("command", 0xF2, "cache-entries")] == 123
        assert e[("command", 0xF2, "cache-max-ttl")] == 456
        assert e[("command", 0xF2, "cache-negative-ttl")] == 78
    if "autoconf" in mods:
        assert 0xF4 in doc["commands"]
        assert e[("command", 0xF4, "profiles")] == 2
        assert e[("command", 0xF4, "refresh")] == 45  # the shortest
        assert e[("command", 0xF4, "doc-max")] == 8192
        assert e[("command", 0xF4, "pac")] is True
    if "bind" in mods:
        assert {0x10, 0x11} <= set(doc["commands"])
        assert e[("command", 0x10, "kinds")] == [1, 2]
        assert e[("command", 0x10, "binds-per-request")] == 16
        assert e[("command", 0x10, "max-binds")] == 3
        assert e[("command", 0x10, "max-pending")] == 9
        assert e[("command", 0x10, "max-peers")] == 11
        assert e[("command", 0x10, "accept-timeout")] == 13
        assert e[("command", 0x10, "max-backlog")] == 17
        assert e[("command", 0x11, "accept-timeout")] == 13
    # Without a profile X'F4' answers X'07': not listed, not described.
    q = stpd_factory()
    doc = json.loads(stp("features", "socks5://127.0.0.1:%d" % q.port, "--json").stdout)
    assert 0xF4 not in doc["commands"]
    assert not [x for x in doc["entries"] if x["code"] == 0xF4 and x["scope"] == "command"]
    if "bind" in mods:  # the defaults of docs/config.md
        e = json_entries(doc)
        assert e[("command", 0x10, "max-binds")] == 16
        assert e[("command", 0x10, "accept-timeout")] == 30


def test_differs_by_listener(stpd_factory):
    other = services.free_port()
    p = stpd_factory(conf=stpdconf.conf(
        listen="listen 127.0.0.1:$port { name a }\nlisten 127.0.0.1:%d { name b }\n" % other,
        request_rules="request block { listener b; command bind udpassociate }\n"
                      "request pass { }\n"))
    a, b = features(p.port), features(other)
    assert {CMD_BIND, CMD_UDP} <= set(cmds(a))
    assert CMD_BIND not in cmds(b) and CMD_UDP not in cmds(b)
    assert CMD_CONNECT in cmds(b)
    assert (2, CMD_UDP, "idle-timeout") in a and (2, CMD_UDP, "idle-timeout") not in b
    assert b[(3, 4, "commands")] == [CMD_CONNECT]


def test_differs_by_client(stpd_factory):
    p = stpd_factory(conf=stpdconf.conf(
        request_rules="request block { from 127.0.0.2; command bind }\n"
                      "request pass { to 192.0.2.0/24; command connect }\n"
                      "request pass { from 127.0.0.2; command discover }\n"
                      "request block { from 127.0.0.2 }\n"
                      "request pass { }\n"))
    one, two = features(p.port, "127.0.0.1"), features(p.port, "127.0.0.2")
    assert {CMD_CONNECT, CMD_BIND, CMD_UDP} <= set(cmds(one))
    # from .2: BIND blocked; CONNECT may pass (to 192.0.2.0/24); the rest
    # blocked, discovery passed
    assert cmds(two) == [CMD_CONNECT, CMD_FEATURES]


def test_fresh_greeting_after_discovery(stpd_factory, http):
    """X'87' alone, the document, then a new greeting and a CONNECT on the
    same connection; X'87' is not offered twice."""
    p = stpd_factory()
    choice, _, _, s = discover(p.port)
    with s:
        assert choice == M_FEATURES
        assert S.negotiate(s, (M_FEATURES,)) == S.M_NOACCEPT
        assert S.closed_by_peer(s, 10)
    choice, _, _, s = discover(p.port)
    with s:
        assert S.negotiate(s, (S.M_NONE,)) == S.M_NONE
        rep = S.request(s, CMD_CONNECT, "127.0.0.1", http.port)
        assert rep.rep == 0
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 200 ", S.recv_all(s))


def test_offered_among_others(stpd_factory, http):
    """X'87' next to a method stpd accepts: that method, as from a server
    without discovery (X'87' is stpd's last preference), so an old client
    that happens to offer X'87' is served as before. X'87' next to methods
    stpd refuses: the document, then X'FF' for the rest."""
    p = stpd_factory()
    for order in ((M_FEATURES, S.M_NONE), (S.M_NONE, M_FEATURES)):
        s = S.dial(p.port)
        with s:
            s.sendall(S.greeting(order))
            assert S.recv_exact(s, 2) == bytes([5, S.M_NONE])
            assert S.request(s, CMD_CONNECT, "127.0.0.1", http.port).rep == 0
    s = S.dial(p.port)
    with s:
        s.sendall(S.greeting((S.M_USERPASS, M_FEATURES, 0x96)))  # X'96': unassigned
        assert S.recv_exact(s, 2) == bytes([5, M_FEATURES])
        read_doc(s)
        assert S.recv_exact(s, 2) == bytes([5, S.M_NOACCEPT])
        assert S.closed_by_peer(s, 10)
    assert len(p.log_lines(r"features sent")) == 1


def test_pipelined_and_byte_by_byte(stpd_factory, http):
    """Greeting, new greeting and request sent byte by byte before reading:
    the same answers."""
    p = stpd_factory()
    msg = (S.greeting((M_FEATURES,)) + S.greeting((S.M_NONE,)) +
           S.request_msg(CMD_CONNECT, "127.0.0.1", http.port))
    s = S.dial(p.port)
    with s:
        for b in msg:
            s.sendall(bytes([b]))
        assert S.recv_exact(s, 2) == bytes([5, M_FEATURES])
        read_doc(s)
        assert S.recv_exact(s, 2) == bytes([5, S.M_NONE])
        assert S.read_reply(s).rep == 0


def test_denied_client_sees_an_rfc1928_server(stpd_factory, http):
    """A client whose discovery the rules block is not offered X'87': X'FF'
    for X'87' alone (and X'87' next to X'00' still gets X'00')."""
    p = stpd_factory(conf=stpdconf.conf(
        request_rules="request block { from 127.0.0.3; command discover }\n"
                      "request pass { }\n"))
    choice, _, _, s = discover(p.port, "127.0.0.3")
    with s:
        assert choice == S.M_NOACCEPT
    choice, _, _, s = discover(p.port, "127.0.0.3", (M_FEATURES, S.M_NONE))
    with s:
        assert choice == S.M_NONE
        assert S.request(s, CMD_CONNECT, "127.0.0.1", http.port).rep == 0
    assert features(p.port, "127.0.0.1")  # others still get it


def test_old_clients_unaffected(stpd_factory, http):
    """curl and PySocks never offer X'87': same bytes, same results."""
    p = stpd_factory()
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--noproxy", "", "-x",
                        "socks5h://127.0.0.1:%d" % p.port, "http://web.stp.test:%d/" % http.port],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    import socks
    s = socks.socksocket()
    s.settimeout(15)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", p.port, rdns=True)
    try:
        s.connect(("web.stp.test", http.port))
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 200 ", S.recv_all(s))
    finally:
        s.close()
    p.wait_log(r"session .*cmd=connect target=web\.stp\.test.*rep=\"succeeded\"")
    assert not p.log_lines(r"features sent")


def test_cmd_f3_after_authentication(stpd_factory):
    """CMD X'F3' answers for the authenticated user: rules naming users
    decide exactly (before authentication they only may)."""
    p = stpd_factory(users={"alice": "a-pass", "bob": "b-pass"}, conf=stpdconf.conf(
        auth=stpdconf.userpass_auth(),
        request_rules="request block { user bob; command connect }\n"
                      "request block { user carol; command discover }\n"
                      "request pass { }\n"))
    pre = features(p.port)
    assert pre[(0, 0, "methods")] == [S.M_USERPASS, M_FEATURES]
    assert pre[(0, 0, "versions")] == [5]  # no X'00': no SOCKS4
    assert CMD_CONNECT in cmds(pre)
    for user, has_connect in (("alice", True), ("bob", False)):
        s = S.dial(p.port)
        with s:
            assert S.negotiate(s, (S.M_USERPASS,)) == S.M_USERPASS
            assert S.userpass(s, user, user[0] + "-pass") == 0
            rep = S.request(s, CMD_FEATURES, "0.0.0.0", 0)
            assert rep.rep == 0
            head, e = read_doc(s)
            assert e[(0, 0, "user")] == user
            assert (CMD_CONNECT in cmds(e)) == has_connect
            assert S.closed_by_peer(s, 10)


def test_cmd_f3_blocked(stpd_factory):
    p = stpd_factory(conf=stpdconf.conf(
        request_rules="request block { command discover }\nrequest pass { }\n"))
    s = S.dial(p.port)
    with s:
        assert S.negotiate(s, (S.M_NONE,)) == S.M_NONE
        assert S.request(s, CMD_FEATURES, "0.0.0.0", 0).rep == 0x02


def test_waiting_for_a_new_greeting_ends(stpd_factory, echo):
    """After the document the session waits for a new greeting under the
    handshake timeout; garbage there closes it with no reply; SOCKS4's
    X'F3' is 91; and stpd still serves."""
    p = stpd_factory(conf=stpdconf.conf(extra=stpdconf.timeouts(handshake=1)))
    choice, _, _, s = discover(p.port)
    with s:
        assert choice == M_FEATURES
        assert S.closed_by_peer(s, 10)
    p.wait_log(r"handshake timeout in greeting")
    choice, _, _, s = discover(p.port)
    with s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.settimeout(10)
        try:
            got = S.recv_all(s)
        except ConnectionResetError:  # unread bytes at close: a reset
            got = b""
        assert got == b""  # closed with no reply (RFC 1928: bad version)
    s = S.dial(p.port)
    with s:
        s.sendall(S.socks4_msg(CMD_FEATURES, "127.0.0.1", 1))
        assert S.socks4_reply(s)[1] == 91
    s, rep = S.open_connect(p.port, "127.0.0.1", echo.port)
    with s:
        assert rep.rep == 0 and S.echo_roundtrip(s, b"still") == b"still"


# ---------------------------------------------------------------------------
# the client side: stp features, stp lookup


def stp(*args, timeout=30):
    return subprocess.run([stp_bin()] + [str(a) for a in args], capture_output=True,
                          timeout=timeout, env=clean_env())


def test_stp_features_json(stpd_factory):
    other = services.free_port()
    p = stpd_factory(conf=stpdconf.conf(
        listen="listen 127.0.0.1:$port { name a }\nlisten 127.0.0.1:%d { name b }\n" % other,
        request_rules="request block { listener b; command udpassociate }\n"
                      "request pass { }\n"))
    r = stp("features", "socks5://127.0.0.1:%d" % p.port, "--json")
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["supported"] is True and a["truncated"] is False
    assert a["methods"] == [0, M_FEATURES] and CMD_UDP in a["commands"]
    assert {"scope": "command", "code": CMD_UDP, "name": "idle-timeout", "type": "uint",
            "value": 300} in a["entries"]
    b = json.loads(stp("features", "socks5://127.0.0.1:%d" % other, "--json").stdout)
    assert CMD_UDP not in b["commands"]
    r = stp("features", "socks5h://127.0.0.1:%d" % p.port)
    assert r.returncode == 0
    assert "methods:   X'00' none, X'87' features" in r.stdout.decode()
    assert "command X'01': timeout=30" in r.stdout.decode()


def test_stp_features_without_discovery(stpd_factory):
    p = stpd_factory(conf=stpdconf.conf(
        request_rules="request block { command discover }\nrequest pass { }\n"))
    r = stp("features", "socks5://127.0.0.1:%d" % p.port, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["supported"] is False
    assert "discovery: not offered" in stp("features", "socks5://127.0.0.1:%d" % p.port
                                           ).stdout.decode()


def test_stp_lookup_chooses_by_features(stpd_factory):
    """The proxy's RESOLVE when offered; else a local look-up for socks5://
    and a refusal for socks5h:// (the name must not leak)."""
    p = stpd_factory()
    r = stp("--proxy", "socks5h://127.0.0.1:%d" % p.port, "lookup", "web.stp.test")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "127.0.0.1\tproxy\n"
    p.wait_log(r"resolve web\.stp\.test:0: 127\.0\.0\.1")
    q = stpd_factory(conf=stpdconf.conf(
        request_rules="request block { command resolve }\nrequest pass { }\n"))
    r = stp("--proxy", "socks5h://127.0.0.1:%d" % q.port, "lookup", "web.stp.test")
    assert r.returncode == 7, (r.returncode, r.stderr)
    r = stp("--proxy", "socks5://127.0.0.1:%d" % q.port, "lookup", "localhost")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"(127\.0\.0\.1|::1)\tlocal\n", r.stdout.decode())
    assert not q.log_lines(r"cmd=resolve")


# ---------------------------------------------------------------------------
# TLS: X'87' in the clear where only TLS methods are accepted, and inside a
# "tls on" listener


@pytest.mark.stpd_module("tls")
def test_require_tls_and_tls_listener(stpd_factory, pki):  # noqa: F811
    from test_tls import tls_conf
    tls_port = services.free_port()
    p = stpd_factory(conf=tls_conf(pki, listen_extra="require-tls on", methods="ssl userpass",
                                   udp_naked=True, tls_listener=tls_port),
                     users={"alice": "tls-Secret-42"})
    e = features(p.port)
    assert e[(0, 0, "methods")] == [0x86, 0x06, M_FEATURES]
    assert e[(1, 0x86, "subauth")] == [S.M_USERPASS]
    assert e[(1, 0x86, "udp-naked")] is True
    assert (0, 0, "tls-listener") not in e
    # X'87' next to X'86' where TLS is required: X'86', no document
    choice, _, _, s = discover(p.port, methods=(M_FEATURES, S.M_USERPASS, 0x86))
    with s:
        assert choice == 0x86
    raw = S.dial(tls_port)
    with pki.client_context().wrap_socket(raw, server_hostname="localhost") as s:
        assert S.negotiate(s, (M_FEATURES,)) == M_FEATURES
        head, e = read_doc(s)
        assert e[(0, 0, "tls-listener")] is True
        assert 0x86 not in e[(0, 0, "methods")]  # never X'86' inside TLS
        assert S.M_USERPASS in e[(0, 0, "methods")]
        assert S.negotiate(s, (S.M_USERPASS,)) == S.M_USERPASS
        assert S.userpass(s, "alice", "tls-Secret-42") == 0
        assert S.request(s, CMD_FEATURES, "0.0.0.0", 0).rep == 0
        assert read_doc(s)[1][(0, 0, "user")] == "alice"


def test_transparent_describes_itself(stpd_factory):
    """TRANSPARENT lists the PTCLs it relays, its engine and its limits
    (docs/protocol.md 5.6), what stpify's udp_transparent auto reads."""
    if "transparent" not in servers.stpd_modules(servers.stpd_binary()):
        pytest.skip("stpd built without the transparent extension")
    p = stpd_factory(conf=stpdconf.conf(extra="transparent {\n idle 60\n end-on-fin no\n}\n"))
    e = features(p.port)
    assert 0x04 in cmds(e)
    assert e[(2, 0x04, "ptcls")] == [0x06, 0x11]
    assert e[(2, 0x04, "engine")] == "user"
    assert e[(2, 0x04, "idle-timeout")] == 60
    assert (2, 0x04, "end-on-fin") not in e
    e = features(stpd_factory().port)  # the defaults
    assert e[(2, 0x04, "idle-timeout")] == 300 and e[(2, 0x04, "end-on-fin")] is True
