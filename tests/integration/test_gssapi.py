"""Method X'01', GSS-API (RFC 1961; docs/protocol.md "Method X'01'"),
against a real MIT KDC the tests start on loopback (kdc.py: one per module).

The client here is independent of stp: gss_client.py speaks RFC 1961 in raw
bytes with python3-gssapi. Every protection level (0 as curl sends it, 1
integrity, 2 confidentiality, 3 selective) carries a CONNECT and data
through the protection, with Kerberos and with SPNEGO; tickets for the
wrong service, tampered, expired and garbage tokens get the refusal
X'01' X'FF' and a log line; principals the rules do not allow get REP
X'02'; principals map to rule users. Replayed AP-REQs and tickets from a
KDC that does not share stpd's key (an unknown ticket) are refused too."""

import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

import kdc as K
import socksraw as S
import servers
import services
import stpdconf

gssapi = pytest.importorskip("gssapi")
import gss_client as G  # noqa: E402

pytestmark = pytest.mark.stpd_module("gssapi")

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw"}


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    k = K.Kdc(str(tmp_path_factory.mktemp("gss")))
    # python-gssapi in this process reads the test realm's krb5.conf
    old = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = k.krb5_conf
    try:
        for u, p in USERS.items():
            k.add_user(u, p)
            k.kinit(u, p)
        k.service_keytab(K.OTHER_SERVICE, os.path.join(k.dir, "other.keytab"))
        yield k
    finally:
        if old is None:
            os.environ.pop("KRB5_CONFIG", None)
        else:
            os.environ["KRB5_CONFIG"] = old
        k.close()


def gss_conf(realm, protection="none", methods="gssapi", extra_gss="", debug=False):
    return stpdconf.conf(
        auth="auth { methods %s; }\n" % methods,
        extra=("log { level debug }\n" if debug else "") + ("gssapi { keytab %s; principal %s; map bob@%s robert; map *@%s %%u; "
               "protection %s; %s}\n" % (realm.keytab, K.SERVICE, K.REALM, K.REALM, protection,
                                         extra_gss)),
        request_rules="request block { user carol }\nrequest pass { }\n")


@pytest.fixture
def gssd(stpd_factory, realm):
    def make(**kw):
        return stpd_factory(conf=gss_conf(realm, **kw), env=realm.env)
    return make


def client(proxy, realm, user="alice", **kw):
    return G.GssSocks(S.dial(proxy.port), realm.ccache(user), **kw)


def roundtrip(g, echo, size=100000):
    assert g.connect("127.0.0.1", echo.port) == 0
    data = os.urandom(size)
    g.send(data)
    assert g.recv_exact(len(data)) == data


def refused(s):
    """The RFC 1961 refusal X'01' X'FF', then the server closes."""
    assert S.recv_exact(s, 2) == b"\x01\xff"
    assert S.closed_by_peer(s, 10)


@pytest.mark.parametrize("mech", ["krb5", "spnego"])
@pytest.mark.parametrize("level,chosen,name", [(0, 0, "none"), (1, 1, "integrity"),
                                               (2, 2, "confidentiality"),
                                               (3, 2, "confidentiality")])
def test_levels_relay_data(gssd, realm, echo, mech, level, chosen, name):
    p = gssd()
    g = client(p, realm, mech=G.SPNEGO if mech == "spnego" else G.KRB5)
    assert g.handshake(level) == chosen
    roundtrip(g, echo)
    g.s.close()
    p.wait_log(r"user=alice: GSS-API principal=alice@STP.TEST mech=%s protection=%s" %
               ("spnego/krb5" if mech == "spnego" else "krb5", name))
    p.wait_log(r"session .* user=alice cmd=connect .* up=100000 down=100000")


def test_level_zero_is_clear_on_the_wire(gssd, realm, echo):
    """curl's level 0: after the level answer, plain SOCKS bytes."""
    p = gssd()
    g = client(p, realm)
    assert g.handshake(0) == 0
    g.s.sendall(S.request_msg(S.CMD_CONNECT, "127.0.0.1", echo.port))
    r = S.read_reply(g.s)
    assert r.rep == 0
    assert S.echo_roundtrip(g.s, b"clear bytes") == b"clear bytes"


@pytest.mark.parametrize("pipelined", [False, True])
def test_level_zero_drops_the_filter(gssd, realm, echo, pipelined):
    """At level 0 nothing is wrapped: once the level is agreed stpd drops
    its GSS-API stream filter (session_drop_filter) and the relay splices;
    a CONNECT sent in the same segment as the level message is parsed from
    what the filter held. At level 1 the filter stays (copy relay)."""
    p = gssd(debug=True)
    g = client(p, realm)
    g.greet()
    g.context()
    req = S.request_msg(S.CMD_CONNECT, "127.0.0.1", echo.port)
    if pipelined:
        g.s.sendall(G.frame(2, g.ctx.wrap(b"\x00", False).message) + req)
        mtyp, tok = G.read_frame(g.s)
        assert mtyp == 2 and g.ctx.unwrap(tok).message == b"\x00"
    else:
        assert g.negotiate(0) == 0
        g.s.sendall(req)
    assert S.read_reply(g.s).rep == 0
    data = os.urandom(200000)
    assert S.echo_roundtrip(g.s, data) == data
    p.wait_log(r"user=alice: relay by splice")
    g = client(p, realm, user="bob")
    assert g.handshake(1) == 1
    roundtrip(g, echo, 1000)
    p.wait_log(r"user=robert: relay by copy")


def test_protected_reply_is_framed(gssd, realm, echo):
    """At level 2 the reply comes as MTYP X'03' frames whose plaintext
    is nowhere in the bytes on the wire."""
    p = gssd()
    g = client(p, realm)
    assert g.handshake(2) == 2
    assert g.connect("127.0.0.1", echo.port) == 0
    secret = b"the-secret-payload-" * 20
    g.send(secret)
    raw = b""
    while len(g.inbuf) < len(secret):
        head = S.recv_exact(g.s, 4)
        assert head[:2] == b"\x01\x03"
        tok = S.recv_exact(g.s, struct.unpack(">H", head[2:])[0])
        raw += tok
        u = g.ctx.unwrap(tok)
        assert u.encrypted
        g.inbuf += u.message
    assert g.inbuf == secret
    assert b"the-secret" not in raw


def test_unwrapped_level_nec(gssd, realm, echo):
    """A one-octet level token is the unwrapped (NEC) form; answered alike."""
    p = gssd()
    g = client(p, realm)
    g.greet()
    g.context()
    assert g.negotiate(1, unwrapped=True) == 1
    roundtrip(g, echo, 5000)
    p.wait_log(r"protection=integrity \(asked integrity\) unwrapped")


@pytest.mark.parametrize("asked,chosen", [(0, 2), (1, 2), (2, 2)])
def test_minimum_protection(gssd, realm, echo, asked, chosen):
    p = gssd(protection="confidentiality")
    g = client(p, realm)
    assert g.handshake(asked) == chosen
    roundtrip(g, echo, 3000)


def test_principal_mapping_and_rules(gssd, realm, echo):
    p = gssd()
    g = client(p, realm, user="bob")
    assert g.handshake(1) == 1
    roundtrip(g, echo, 1000)
    p.wait_log(r"user=robert: GSS-API principal=bob@STP.TEST")
    # carol authenticates, but a rule blocks her: REP X'02', protected
    g = client(p, realm, user="carol")
    assert g.handshake(2) == 2
    assert g.connect("127.0.0.1", echo.port) == 0x02
    p.wait_log(r"user=carol.*(block|denied)")
    g = client(p, realm, user="carol")
    assert g.handshake(0) == 0
    assert g.connect("127.0.0.1", echo.port) == 0x02


def test_ticket_for_another_service(gssd, realm):
    p = gssd()
    g = client(p, realm, service="other@localhost")
    g.greet()
    g.s.sendall(G.frame(1, g.ctx.step()))
    refused(g.s)
    p.wait_log(r"GSS-API refused: .*")


def test_tampered_ticket(gssd, realm):
    p = gssd()
    g = client(p, realm)
    g.greet()
    tok = bytearray(g.ctx.step())
    tok[len(tok) // 2] ^= 0x55
    g.s.sendall(G.frame(1, bytes(tok)))
    refused(g.s)
    p.wait_log(r"GSS-API refused: ")


def test_garbage_token(gssd, realm):
    p = gssd()
    s = S.dial(p.port)
    assert S.negotiate(s, (S.M_GSSAPI,)) == S.M_GSSAPI
    s.sendall(G.frame(1, b"not a GSS-API token"))
    refused(s)
    p.wait_log(r"GSS-API refused: ")


def test_expired_ticket(gssd, realm):
    """A ticket that expires between the client's token and its arrival
    (krb5.conf clockskew 2 s): refused, with Kerberos's reason logged."""
    realm.kinit("dave", USERS["dave"], lifetime="3s")
    p = gssd()
    g = client(p, realm, user="dave")
    tok = g.ctx.step()
    time.sleep(6.5)
    g.greet()
    g.s.sendall(G.frame(1, tok))
    refused(g.s)
    p.wait_log(r"GSS-API refused: .*(expired|skew)", timeout=10)


def test_replayed_ticket(gssd, realm, echo):
    """The AP-REQ of a completed session, sent again on a new connection:
    Kerberos's replay cache refuses it."""
    p = gssd()
    g = client(p, realm)
    g.greet()
    tok = g.ctx.step()
    g.context(tok)
    assert g.negotiate(1) == 1
    roundtrip(g, echo, 100)
    s = S.dial(p.port)
    assert S.negotiate(s, (S.M_GSSAPI,)) == S.M_GSSAPI
    s.sendall(G.frame(1, tok))
    refused(s)
    p.wait_log(r"GSS-API refused: .*[Rr]eplay")


def test_ticket_from_unknown_kdc(gssd, realm, tmp_path):
    """A ticket for the right name (socks/localhost@STP.TEST) issued by
    another KDC, whose key for that service stpd's keytab does not hold:
    refused, never mapped to a user."""
    rogue = K.Kdc(str(tmp_path / "rogue"))
    old = os.environ["KRB5_CONFIG"]
    try:
        rogue.add_user("alice", "rogue-pw")
        rogue.kinit("alice", "rogue-pw")
        os.environ["KRB5_CONFIG"] = rogue.krb5_conf  # the client asks the rogue KDC
        g = G.GssSocks(None, rogue.ccache("alice"))
        tok = g.ctx.step()
    finally:
        os.environ["KRB5_CONFIG"] = old
        rogue.close()
    p = gssd()
    s = S.dial(p.port)
    assert S.negotiate(s, (S.M_GSSAPI,)) == S.M_GSSAPI
    s.sendall(G.frame(1, tok))
    refused(s)
    p.wait_log(r"GSS-API refused: .*Cannot decrypt ticket")
    assert not p.log_lines(r"GSS-API principal=alice")


@pytest.mark.parametrize("level", [0, 1, 2])
def test_principal_denied_by_rules_each_level(gssd, realm, echo, level):
    """carol authenticates at every level; the rule `request block { user
    carol }` answers her CONNECT with REP X'02' (wrapped at 1 and 2), and
    the relay never starts."""
    p = gssd()
    g = client(p, realm, user="carol")
    assert g.handshake(level) == level
    assert g.connect("127.0.0.1", echo.port) == 0x02
    assert S.closed_by_peer(g.s, 10)


def test_unknown_principal_has_no_ticket(realm):
    """A principal the KDC does not know never gets a ticket to offer."""
    with pytest.raises(gssapi.exceptions.GSSError):
        G.GssSocks(socket.socket(), realm.ccache("nobody")).ctx.step()


@pytest.mark.parametrize("first", [G.frame(3, b"x" * 8), G.frame(2, b"\x01"), b"\x02\x01\x00\x00",
                                   b"\x01\x04\x00\x00"])
def test_bad_first_frame(gssd, realm, first):
    p = gssd()
    s = S.dial(p.port)
    assert S.negotiate(s, (S.M_GSSAPI,)) == S.M_GSSAPI
    s.sendall(first)
    refused(s)


@pytest.mark.parametrize("level", [4, 0xFF])
def test_undefined_level(gssd, realm, level):
    p = gssd()
    g = client(p, realm)
    g.greet()
    g.context()
    g.s.sendall(G.frame(2, g.ctx.wrap(bytes([level]), False).message))
    refused(g.s)
    p.wait_log(r"protection level X'%02x' is not defined" % level)


def test_client_abort(gssd, realm):
    p = gssd()
    s = S.dial(p.port)
    assert S.negotiate(s, (S.M_GSSAPI,)) == S.M_GSSAPI
    s.sendall(b"\x01\xff")
    assert S.closed_by_peer(s, 10)
    p.wait_log(r"GSS-API: client aborted")


def test_truncated_context_token(gssd, realm):
    """The first frame cut at several points, then the client leaves: the
    session ends (no reply, nothing leaks: the fixture checks the log for
    sanitizer reports)."""
    p = gssd()
    g = client(p, realm)
    whole = G.frame(1, g.ctx.step())
    for cut in list(range(0, 6)) + [len(whole) // 2, len(whole) - 1]:
        s = S.dial(p.port)
        assert S.negotiate(s, (S.M_GSSAPI,)) == S.M_GSSAPI
        s.sendall(whole[:cut])
        s.shutdown(socket.SHUT_WR)
        assert S.recv_all(s) == b""
        s.close()
    p.wait_log(r"client closed during handshake")


@pytest.mark.parametrize("level", [0, 1, 2])
def test_udp_associate(gssd, realm, udp_echo, level):
    """UDP ASSOCIATE under each level: at 1 and 2 every datagram both ways
    is one X'03' frame wrapping the whole RFC 1928 UDP datagram (RFC 1961
    section 5); at 0 datagrams are plain RFC 1928 ones. Tampered and
    unwrapped datagrams are dropped and counted."""
    p = gssd()
    g = client(p, realm)
    assert g.handshake(level) == level
    g.send(S.request_msg(S.CMD_UDP, "0.0.0.0", 0))
    head = g.recv_exact(4)
    assert head[1] == 0
    relay = (socket.inet_ntoa(g.recv_exact(4)), struct.unpack(">H", g.recv_exact(2))[0])
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(10)
    u.bind(("127.0.0.1", 0))
    for i in range(5):
        payload = b"datagram-%d-" % i + os.urandom(200)
        dgram = S.udp_packet("127.0.0.1", udp_echo.port, payload)
        if level:
            w = g.ctx.wrap(dgram, level == 2)
            assert w.encrypted == (level == 2)
            dgram = G.frame(3, w.message)
        u.sendto(dgram, relay)
        back, _ = u.recvfrom(70000)
        if level:
            assert back[:2] == b"\x01\x03"
            assert struct.unpack(">H", back[2:4])[0] == len(back) - 4
            assert payload not in back or level == 1
            un = g.ctx.unwrap(back[4:])
            assert un.encrypted == (level == 2)
            back = un.message
        frag, atyp, host, port, data = S.udp_parse(back)
        assert (frag, host, port, data) == (0, "127.0.0.1", udp_echo.port, payload)
    if level:
        # not a frame, and a tampered token: dropped, nothing comes back
        u.sendto(S.udp_packet("127.0.0.1", udp_echo.port, b"clear"), relay)
        bad = bytearray(G.frame(3, g.ctx.wrap(S.udp_packet("127.0.0.1", udp_echo.port, b"x"),
                                              level == 2).message))
        bad[-3] ^= 1
        u.sendto(bytes(bad), relay)
        u.settimeout(1)
        with pytest.raises(socket.timeout):
            u.recvfrom(70000)
    g.s.close()
    p.wait_log(r"udp datagrams up=5 down=5")
    if level:
        p.wait_log(r"udp datagrams failing the method's protection: 2")


def test_gssapi_and_userpass_offered(stpd_factory, realm, echo):
    """With both methods on, a client offering both gets X'01'."""
    p = stpd_factory(conf=gss_conf(realm, methods="gssapi userpass") .replace(
        "auth { methods gssapi userpass; }", "auth { methods gssapi userpass; users-file $users; }"),
        env=realm.env, users={"u": "p"})
    with S.dial(p.port) as s:
        assert S.negotiate(s, (S.M_USERPASS, S.M_GSSAPI, S.M_NONE)) == S.M_GSSAPI
    with S.dial(p.port) as s:
        assert S.negotiate(s, (S.M_USERPASS,)) == S.M_USERPASS


# ---- stp's own client: libstp, `stp`, stpify ---------------------------------

def _build_dir():
    stpd = os.environ.get("STPD")
    if stpd:
        return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(stpd))))
    return os.path.join(os.path.dirname(__file__), "..", "..", "build")


def stp_bin():
    return os.environ.get("STP_BIN") or os.path.join(_build_dir(), "src", "cli", "stp")


def gss_url(p, level=None, mech=None, service="socks@localhost", scheme="socks5+gssapi"):
    q = ["gss-service=" + service]
    if level:
        q.append("gss-protection=" + level)
    if mech:
        q.append("gss-mech=" + mech)
    return "%s://127.0.0.1:%d?%s" % (scheme, p.port, "&".join(q))


def user_env(realm, user):
    env = {k: v for k, v in realm.user_env(user).items()
           if k.upper() not in ("STP_PROXY", "ALL_PROXY", "NO_PROXY", "STP_DEBUG")}
    return env


def run_stp(realm, user, *args, proxy, data=b"", timeout=30):
    return subprocess.run([stp_bin(), "--proxy", proxy] + [str(a) for a in args], input=data,
                          capture_output=True, timeout=timeout, env=user_env(realm, user))


@pytest.mark.parametrize("level,mech", [("none", None), ("integrity", None),
                                        ("confidentiality", None), (None, "spnego"),
                                        ("integrity", "spnego")])
def test_stp_cli_levels(gssd, realm, echo, level, mech):
    p = gssd()
    data = os.urandom(300000)
    r = run_stp(realm, "alice", "connect", "127.0.0.1", echo.port,
                proxy=gss_url(p, level, mech), data=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    p.wait_log(r"user=alice: GSS-API principal=alice@STP.TEST mech=%s protection=%s" % (
        "spnego/krb5" if mech else "krb5", level or "confidentiality"))


def test_stp_cli_raised_by_minimum(gssd, realm, echo):
    """Asking for none where the server wants confidentiality: the server
    raises it, the client accepts more than it asked for."""
    p = gssd(protection="confidentiality")
    r = run_stp(realm, "bob", "connect", "127.0.0.1", echo.port, proxy=gss_url(p, "none"),
                data=b"hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello"
    p.wait_log(r"user=robert: GSS-API .* protection=confidentiality \(asked none\)")


def test_stp_cli_no_ticket(gssd, realm, echo):
    """No credential cache: a local GSS-API failure, exit code 4 (auth)."""
    p = gssd()
    r = run_stp(realm, "nobody", "connect", "127.0.0.1", echo.port, proxy=gss_url(p))
    assert r.returncode == 4, r
    assert b"GSS-API: no usable credentials" in r.stderr


def test_stp_cli_wrong_service_refused(gssd, realm, echo):
    """A ticket for a service stpd has no key for: X'01' X'FF'."""
    p = gssd()
    r = run_stp(realm, "alice", "connect", "127.0.0.1", echo.port,
                proxy=gss_url(p, service="other@localhost"))
    assert r.returncode == 4, r
    assert b"X'01' X'FF'" in r.stderr
    p.wait_log(r"GSS-API refused: ")


def test_stp_cli_rule_denies(gssd, realm, echo):
    p = gssd()
    r = run_stp(realm, "carol", "connect", "127.0.0.1", echo.port, proxy=gss_url(p))
    assert r.returncode == 12, r  # CLI_EXIT_REP_BASE + X'02'
    assert b"not allowed by ruleset" in r.stderr


def test_libstp_stp_connect(gssd, realm, echo):
    """stp_connect (blocking API, relay thread behind a socketpair):
    the example program."""
    p = gssd()
    ex = os.path.join(_build_dir(), "examples", "stp-example-connect")
    for level in ("none", "integrity", "confidentiality"):
        r = subprocess.run([ex, "127.0.0.1", str(echo.port), "via-gss-" + level],
                           capture_output=True, timeout=30,
                           env=dict(user_env(realm, "alice"), STP_PROXY=gss_url(p, level)))
        assert r.returncode == 0, r.stderr
        assert r.stdout == ("via-gss-%s\n" % level).encode()


def stpify_bin():
    return os.environ.get("STPIFY") or os.path.join(_build_dir(), "src", "shim", "stpify")


def run_stpify(realm, user, proxy, *argv, timeout=60):
    env = dict(user_env(realm, user), STP_PROXY_LOOPBACK="1", STP_LOG="info")
    return subprocess.run([stpify_bin(), "--proxy", proxy, "--"] + [str(a) for a in argv],
                          capture_output=True, timeout=timeout, env=env)


@pytest.mark.parametrize("level", ["none", "integrity", "confidentiality"])
def test_stpify_curl(gssd, realm, http, level):
    """curl (a non-blocking connect) socksified through GSS-API: 3 MiB
    through the protection, checked by sha256."""
    import services
    p = gssd()
    size = 3 << 20
    r = run_stpify(realm, "alice", gss_url(p, level), "curl", "-sS", "--max-time", "50",
                   "http://127.0.0.1:%d/big/%d" % (http.port, size))
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(r.stdout).hexdigest() == services.BigContent.sha256(size)
    p.wait_log(r"user=alice: GSS-API principal=alice@STP.TEST mech=krb5 protection=%s" % level)


PY_ECHO = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
data = bytes(range(256)) * 400
s.sendall(data)
got = b""
while len(got) < len(data):
    got += s.recv(65536)
assert got == data
s.close()
print("ok")
"""


@pytest.mark.parametrize("level", ["none", "integrity", "confidentiality"])
def test_stpify_python_blocking(gssd, realm, echo, level):
    p = gssd()
    r = run_stpify(realm, "bob", gss_url(p, level, mech="spnego"), "/usr/bin/python3", "-c",
                   PY_ECHO, echo.port)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"ok\n"
    p.wait_log(r"user=robert: GSS-API .* mech=spnego/krb5 protection=%s" % level)


def test_stpify_refused_context(gssd, realm, echo):
    """The proxy's X'01' X'FF' becomes connect()'s EACCES."""
    p = gssd()
    r = run_stpify(realm, "alice", gss_url(p, service="other@localhost"), "/usr/bin/python3",
                   "-c", PY_ECHO, echo.port)
    assert r.returncode != 0
    assert b"PermissionError" in r.stderr
    assert b"X'01' X'FF'" in r.stderr



@pytest.mark.parametrize("level", ["none", "integrity", "confidentiality"])
def test_stp_cli_udp(gssd, realm, udp_echo, level):
    """`stp udp` through GSS-API: at integrity and confidentiality each
    datagram travels as one X'03' frame (stpd counts them relayed both
    ways, and none failing the protection)."""
    p = gssd()
    lines = b"".join(b"line %d\n" % i for i in range(5))
    r = run_stp(realm, "alice", "udp", "127.0.0.1", udp_echo.port, proxy=gss_url(p, level),
                data=lines)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == sorted(lines.splitlines())
    p.wait_log(r"user=alice: GSS-API .* protection=%s" % level)
    p.wait_log(r"udp datagrams up=5 down=5")
    assert "failing the method's protection" not in p.log()


def test_curl_socks5_gssapi(gssd, realm, http):
    """curl's --socks5-gssapi against stpd. Debian 12's curl 7.88.1 gives
    up on its own ("per-message authentication is not supported", exit 97,
    or "Undocumented SOCKS5 mode"; docs/protocol.md §5.7); a fixed curl
    asks for level 0, which stpd accepts as no protection, and must then
    fetch the page. Either way stpd ends the session cleanly."""
    import shutil
    if not shutil.which("curl"):
        pytest.fail("curl missing (scripts/deps.sh)")
    p = gssd()
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--socks5-gssapi",
                        "--socks5-gssapi-service", "socks", "--proxy",
                        "socks5://localhost:%d" % p.port, "http://127.0.0.1:%d/" % http.port],
                       capture_output=True, timeout=60, env=user_env(realm, "alice"))
    if r.returncode == 0:
        import services
        assert r.stdout == services.PAGE
        p.wait_log(r"GSS-API principal=alice@STP.TEST .* protection=none \(asked none\)")
    else:
        assert r.returncode in (97, 7), r  # CURLE_PROXY, CURLE_COULDNT_CONNECT
        p.wait_log(r"session id=1 .* result=\"(client closed during handshake|GSS-API)")


def test_bad_keytab_stops_start(realm, tmp_path):
    """A keytab that does not load stops stpd at start (worker_init), with
    the GSS-API reason and exit status 1, before it says it is ready,
    rather than refusing every client later."""
    missing = tmp_path / "no.keytab"
    port = services.free_port()
    text = gss_conf(realm).replace(realm.keytab, str(missing))
    text = text.replace("$port", str(port)).replace("$dns", "127.0.0.1:53")
    conf = tmp_path / "stpd.conf"
    conf.write_text(text)
    env = dict(os.environ)
    env.update(realm.env)
    # stpd ends through fatalx: what is still allocated then is no leak
    # (an ASan build would otherwise turn exit 1 into LeakSanitizer's abort).
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    r = subprocess.run([servers.stpd_binary(), "-c", str(conf)], env=env,
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    # stpd started as root drops (the default) and reads the keytab into
    # memory first; else Kerberos finds it missing
    assert ("gssapi: keytab %s: No such file or directory" % missing in out
            or "gssapi: acceptor credentials (keytab %s)" % missing in out), out
    assert "ready" not in out, out


@pytest.mark.stpd_module("bind")
@pytest.mark.parametrize("level", ["none", "confidentiality"])
def test_stp_listen_through_gssapi(gssd, realm, echo, level):
    """`stp listen` (LISTEN X'10') through method X'01': the control and
    each data connection (ACCEPT X'11') run their own context; at
    confidentiality the data connection's frames are handed over with it
    (session_take_conn) and the peer's bytes arrive whole both ways."""
    p = gssd()
    out = open(os.path.join(os.path.dirname(p.log_path), "listen-%s.out" % level), "w+")
    proc = subprocess.Popen([stp_bin(), "--proxy", gss_url(p, level), "listen",
                             "tcp:127.0.0.1:%d" % echo.port],
                            stdout=out, stderr=subprocess.STDOUT, env=user_env(realm, "alice"))
    try:
        deadline = time.time() + 20
        bound = None
        while time.time() < deadline and bound is None:
            for ln in open(out.name).read().splitlines():
                if ln.startswith("bound tcp "):
                    h, port = ln.split()[2].rsplit(":", 1)
                    bound = (h, int(port))
            assert proc.poll() is None, open(out.name).read()
            time.sleep(0.05)
        assert bound, open(out.name).read()
        data = os.urandom(200000)
        with socket.create_connection(bound, timeout=20) as c:
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
            got = S.recv_all(c)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        p.wait_log(r"session .*user=alice cmd=accept .*result=\"accepted: data in a flow")
        p.wait_log(r"flow id=\d+\.\d+ .*user=alice cmd=accept .*up=200000 down=200000 ",
                   timeout=20)
    finally:
        proc.terminate()
        proc.wait(10)
        out.close()


@pytest.mark.stpd_module("bind")
@pytest.mark.parametrize("level", ["none", "integrity", "confidentiality"])
def test_stp_listen_udp_through_gssapi(gssd, realm, udp_echo, tmp_path, level):
    """A UDP bind (LISTEN X'10', docs/protocol.md 5.9) through method X'01':
    at integrity and confidentiality the datagrams between `stp listen` and
    the bind's relay are sealed like UDP ASSOCIATE's (5.7); an outside peer
    gets its datagrams echoed by the local service, and stpd drops none
    for failing the protection."""
    p = gssd()
    out = tmp_path / "listen-udp.out"
    with open(out, "w+") as f:
        proc = subprocess.Popen([stp_bin(), "--proxy", gss_url(p, level), "listen",
                                 "udp:127.0.0.1:%d" % udp_echo.port],
                                stdout=f, stderr=subprocess.STDOUT,
                                env=user_env(realm, "alice"))
    try:
        deadline = time.time() + 20
        bound = None
        while time.time() < deadline and bound is None:
            for ln in open(out).read().splitlines():
                if ln.startswith("bound udp "):
                    h, port = ln.split()[2].rsplit(":", 1)
                    bound = (h, int(port))
            assert proc.poll() is None, open(out).read()
            time.sleep(0.05)
        assert bound, open(out).read()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(3)
        got = 0
        for i in range(5):
            msg = b"bind-dgram-%d-" % i + os.urandom(100)
            for _ in range(5):  # UDP: a lost first datagram is sent again
                u.sendto(msg, bound)
                try:
                    back, src = u.recvfrom(65536)
                except socket.timeout:
                    continue
                assert back == msg and src == bound
                got += 1
                break
        assert got == 5
        u.close()
    finally:
        proc.terminate()
        proc.wait(10)
    p.wait_log(r"user=alice: GSS-API .* protection=%s" % level)
    assert "failing the method's protection" not in p.log()


class _Plain:
    """GssSocks' plaintext as a socket for socksraw's readers."""
    def __init__(self, g):
        self.g = g

    def recv(self, n):
        return self.g.recv_exact(1)


@pytest.mark.stpd_module("bind")
@pytest.mark.parametrize("level", [1, 2])
def test_udp_bind_sealed_raw(gssd, realm, level):
    """A UDP bind (LISTEN X'10') from the independent RFC 1961 client: the
    datagrams between it and RELAY are single X'03' frames wrapping the RFC
    1928 datagram with the control connection's context (protocol.md 5.7,
    "UDP binds"); a peer's datagram arrives sealed, a sealed one reaches the
    peer from BND, and a clear or tampered one is dropped and counted."""
    import bindraw as B
    p = gssd()
    g = client(p, realm)
    assert g.handshake(level) == level
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(10)
    u.bind(("127.0.0.1", 0))
    g.send(B.listen_msg([(B.UDP, 0, u.getsockname()[1])]))
    rep, binds = B.read_listen_reply(_Plain(g))
    assert rep == 0 and binds[0][0] == B.UDP
    bnd, relay = binds[0][1], binds[0][2]
    bnd = ("127.0.0.1", bnd[1])
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.settimeout(10)
    peer.bind(("127.0.0.1", 0))
    # peer -> BND -> client, sealed
    peer.sendto(b"from-peer-MARKER", bnd)
    back, _ = u.recvfrom(70000)
    assert back[:2] == b"\x01\x03" and struct.unpack(">H", back[2:4])[0] == len(back) - 4
    assert (b"from-peer-MARKER" in back) == (level == 1)
    un = g.ctx.unwrap(back[4:])
    assert un.encrypted == (level == 2)
    frag, atyp, host, port, data = S.udp_parse(un.message)
    assert (frag, host, port, data) == (0, "127.0.0.1", peer.getsockname()[1],
                                        b"from-peer-MARKER")
    # client -> RELAY -> peer, from BND
    dgram = S.udp_packet("127.0.0.1", peer.getsockname()[1], b"to-peer")
    u.sendto(G.frame(3, g.ctx.wrap(dgram, level == 2).message), relay)
    data, src = peer.recvfrom(70000)
    assert data == b"to-peer" and src[1] == bnd[1]
    # clear, and tampered: dropped, the peer gets nothing
    u.sendto(S.udp_packet("127.0.0.1", peer.getsockname()[1], b"clear"), relay)
    bad = bytearray(G.frame(3, g.ctx.wrap(S.udp_packet("127.0.0.1", peer.getsockname()[1],
                                                         b"tampered"), level == 2).message))
    bad[-3] ^= 1
    u.sendto(bytes(bad), relay)
    peer.settimeout(1)
    with pytest.raises(socket.timeout):
        peer.recvfrom(70000)
    g.s.close()
    p.wait_log(r"udp datagrams failing the method's protection: 2")


def test_described_to_feature_discovery(gssd):
    """Method X'01' describes itself (docs/protocol.md 5.6): the mechanisms
    and the levels the configured minimum leaves, in `stp features --json`."""
    import json
    from test_client_lib import clean_env, stp_bin
    p = gssd(protection="integrity", methods="gssapi none")
    r = subprocess.run([stp_bin(), "features", "socks5://127.0.0.1:%d" % p.port, "--json"],
                       capture_output=True, timeout=30, env=clean_env())
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert 0x01 in doc["methods"]
    e = {(x["scope"], x["code"], x["name"]): x["value"] for x in doc["entries"]}
    assert e[("method", 1, "mechanisms")] == "krb5 spnego"
    assert e[("method", 1, "levels")] == [1, 2]
    assert e[("method", 1, "min-level")] == 1


@pytest.mark.stpd_module("metrics")
def test_metrics_count_gssapi(stpd_factory, realm, echo):
    """stp_auth_total{method="gssapi"} (docs/operations.md §1): one good
    context and one tampered ticket."""
    import services
    import test_metrics as TM
    mp = services.free_port()
    conf = gss_conf(realm).replace("gssapi {", "metrics { http 127.0.0.1:%d }\ngssapi {" % mp)
    p = stpd_factory(conf=conf, env=realm.env)
    g = client(p, realm)
    assert g.handshake(0) == 0
    roundtrip(g, echo, 1000)
    g.s.close()
    g = client(p, realm)
    g.greet()
    tok = bytearray(g.ctx.step())
    tok[len(tok) // 2] ^= 0x55
    g.s.sendall(G.frame(1, bytes(tok)))
    refused(g.s)
    m = TM.wait_idle(mp)
    assert TM.val(m, "stp_auth_total", method="gssapi", backend="gssapi", result="ok") == 1
    assert TM.val(m, "stp_auth_total", method="gssapi", backend="none", result="fail") == 1


# ---------------------------------------------------------------------------
# stpify: UDP programs through the GSS-API proxy (RFC 1961 section 5)

PY_UDP = """
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(10)
for i in range(5):
    msg = b"GSSUDP-MARKER-%d-" % i + bytes(range(200))
    u.sendto(msg, ("127.0.0.1", int(sys.argv[1])))
    if i == 0:  # a peek, then the read that takes it out (unsealed once)
        assert u.recvfrom(65536, socket.MSG_PEEK)[0] == msg
    back, src = u.recvfrom(65536)
    assert back == msg, back
    assert src == ("127.0.0.1", int(sys.argv[1])), src
print("ok")
"""


def _relay_port(stderr):
    import re
    m = re.search(rb"UDP association for fd \d+, relay 127\.0\.0\.1:(\d+)(, datagrams sealed)?",
                  stderr)
    assert m, stderr
    return int(m.group(1)), m.group(2) is not None


def _udp_payloads(pcap, port):
    """The UDP payloads between port and the one peer port that talked to it
    most in the capture (tshark): the program's socket. A stray datagram of
    another process that happens to use the same port number on lo (a
    shared machine) is left out."""
    r = subprocess.run(["tshark", "-r", pcap, "-Y", "udp.port == %d" % port, "-T", "fields",
                        "-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.payload"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = []
    for ln in r.stdout.decode().splitlines():
        f = ln.split("\t")
        if len(f) == 3 and f[2]:
            src, dst = int(f[0]), int(f[1])
            rows.append((dst if src == port else src, bytes.fromhex(f[2].replace(":", ""))))
    if not rows:
        return []
    peers = [peer for peer, _ in rows]
    main = max(set(peers), key=peers.count)
    return [w for peer, w in rows if peer == main]


@pytest.mark.parametrize("level", ["none", "integrity", "confidentiality"])
def test_stpify_udp(gssd, realm, udp_echo, dns, tmp_path, level):
    """An unmodified UDP program (a python echo client, then dig against
    dnsmasq) under stpify through a GSS-API stpd: the answers come back at
    each level; on the wire between the program and the relay (tshark on
    lo) every datagram is one X'01' X'03' frame at integrity and
    confidentiality, plain RFC 1928 at none, and the payload marker is
    visible nowhere at confidentiality."""
    import shutil
    if shutil.which("tshark") is None or shutil.which("dig") is None:
        pytest.skip("needs tshark and dig")
    p = gssd()
    pcap = str(tmp_path / "udp.pcap")
    cap = subprocess.Popen(["tshark", "-i", "lo", "-f", "udp and not port 88", "-w", pcap,
                            "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(pcap) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        r = run_stpify(realm, "alice", gss_url(p, level), "/usr/bin/python3", "-c", PY_UDP,
                       udp_echo.port)
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"ok\n"
        d = run_stpify(realm, "alice", gss_url(p, level), "dig", "+short", "+tries=2",
                       "+time=5", "@127.0.0.1", "-p", dns.port, "web.stp.test", "A")
        assert d.returncode == 0, d.stderr
        assert d.stdout.strip() == b"127.0.0.1"
        time.sleep(1.0)
    finally:
        cap.send_signal(2)
        try:
            cap.wait(15)
        except subprocess.TimeoutExpired:
            cap.kill()
    p.wait_log(r"user=alice: GSS-API .* protection=%s" % level)
    p.wait_log(r"udp datagrams up=5 down=5")
    assert "failing the method's protection" not in p.log()
    port, sealed = _relay_port(r.stderr)
    assert sealed == (level != "none")
    wire = _udp_payloads(pcap, port)
    assert len(wire) >= 10, wire  # 5 up, 5 down
    for w in wire:
        if level == "none":
            assert w[:4] == b"\x00\x00\x00\x01" and b"GSSUDP-MARKER-" in w
        else:
            assert w[:2] == b"\x01\x03" and struct.unpack(">H", w[2:4])[0] == len(w) - 4
            assert (b"GSSUDP-MARKER-" in w) == (level == "integrity")
    dport, dsealed = _relay_port(d.stderr)
    dwire = _udp_payloads(pcap, dport)
    assert dwire and all((w[:2] == b"\x01\x03") == dsealed for w in dwire)
    # the question's name: in clear at none and integrity, nowhere at confidentiality
    assert any(b"web\x03stp\x04test" in w for w in dwire) == (level != "confidentiality")


@pytest.mark.parametrize("level", ["none", "integrity", "confidentiality"])
def test_stp_resolve_dns_udp(gssd, realm, dns, level):
    """`stp resolve --dns` asks dnsmasq over UDP ASSOCIATE: through GSS-API
    its queries and answers are sealed datagrams at integrity and
    confidentiality (libstp stp_udp_*), and the answer is right."""
    p = gssd()
    r = run_stp(realm, "alice", "resolve", "--dns", dns.addr, "web.stp.test",
                proxy=gss_url(p, level))
    assert r.returncode == 0, r.stderr
    assert b"127.0.0.1" in r.stdout, r.stdout
    p.wait_log(r"user=alice: GSS-API .* protection=%s" % level)
    p.wait_log(r"udp datagrams up=\d+ down=[1-9]")
    assert "failing the method's protection" not in p.log()


class _FakeGssProxy:
    """Just enough of an RFC 1961 proxy, written with python3-gssapi (not
    stpd), to send stpify a tampered sealed datagram: it accepts the
    context, the level and UDP ASSOCIATE, and answers each datagram with a
    tampered copy first and the good one after it."""

    def __init__(self, realm):
        import threading
        self.creds = gssapi.Credentials(usage="accept",
                                        store={b"keytab": realm.keytab.encode()})
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(30)
        self.error = None
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            c, _ = self.ls.accept()
            c.settimeout(30)
            head = S.recv_exact(c, 2)
            S.recv_exact(c, head[1])
            c.sendall(b"\x05\x01")
            ctx = gssapi.SecurityContext(creds=self.creds, usage="accept")
            _, tok = G.read_frame(c)
            out = ctx.step(tok)
            if out:
                c.sendall(G.frame(1, out))
            _, tok = G.read_frame(c)
            level = ctx.unwrap(tok).message
            c.sendall(G.frame(2, ctx.wrap(level, False).message))
            conf = level == b"\x02"
            _, tok = G.read_frame(c)
            assert ctx.unwrap(tok).message[:2] == b"\x05\x03"
            rep = b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(
                ">H", self.udp.getsockname()[1])
            c.sendall(G.frame(3, ctx.wrap(rep, conf).message))
            d, src = self.udp.recvfrom(70000)
            frag, atyp, host, port, data = S.udp_parse(ctx.unwrap(d[4:]).message)
            good = G.frame(3, ctx.wrap(S.udp_packet(host, port, b"good:" + data), conf).message)
            bad = bytearray(G.frame(3, ctx.wrap(S.udp_packet(host, port, b"tampered"),
                                                conf).message))
            bad[-3] ^= 1
            self.udp.sendto(bytes(bad), src)
            self.udp.sendto(good, src)
            c.recv(1)  # until stpify's program exits
            c.close()
        except Exception as e:  # reported by the test
            self.error = e


PY_UDP_ONE = """
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(20)
u.sendto(b"ping", ("127.0.0.1", int(sys.argv[1])))
print(u.recvfrom(65536)[0].decode())
"""


@pytest.mark.parametrize("level", ["integrity", "confidentiality"])
def test_stpify_udp_drops_tampered(realm, level):
    """stpify unseals every datagram from the relay: a tampered one (here
    from a minimal proxy written with python3-gssapi) never reaches the
    program, and stpify says so; the good one after it does."""
    fake = _FakeGssProxy(realm)
    url = "socks5+gssapi://127.0.0.1:%d?gss-service=socks@localhost&gss-protection=%s" % (
        fake.port, level)
    r = run_stpify(realm, "alice", url, "/usr/bin/python3", "-c", PY_UDP_ONE, 9)
    fake.t.join(30)
    assert fake.error is None, fake.error
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"good:ping\n"
    assert b"dropped a datagram failing the GSS-API protection" in r.stderr, r.stderr


@pytest.mark.stpd_module("transparent")
@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("ptcl", [(0x11, "UDP"), (0x06, "TCP")], ids=["udp", "tcp"])
def test_transparent_refused_under_protection(gssd, realm, level, ptcl):
    """TRANSPARENT X'04' relays outside the GSS-API context (UDP datagrams
    without a header RFC 1961 could frame, TCP on a connection of its own),
    so under integrity or confidentiality it is refused with X'09'
    (docs/protocol.md 5.7) and logged, never relayed in clear."""
    p = gssd()
    g = client(p, realm)
    assert g.handshake(level) == level
    req = (b"\x05\x04\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", 53) +
           bytes([ptcl[0], 1]) + socket.inet_aton("127.0.0.1") + struct.pack(">H", 5300))
    g.send(req)
    rep = S.read_reply(_Plain(g))
    assert rep.rep == 0x09, rep
    p.wait_log(r"transparent: %s is not relayed under the method's per-message protection"
               % ptcl[1])
    g.s.close()


def test_root_only_keytab_is_copied_at_start_and_reread_on_reload(stpd_factory, realm, echo,
                                                                   tmp_path):
    """Started as root, stpd's workers run as nobody (the default) and could
    not open a root-only 0600 keytab in a 0700 directory: stpd copies it into
    memory before the drop (src/ext/gssapi/gss_keytab.c), and a reload reads
    the file again through the broker. The file gets a second service's keys
    while stpd runs: that service is refused until SIGHUP, accepted after."""
    import signal
    d = tmp_path / "private"
    d.mkdir(mode=0o700)
    kt = d / "rot.keytab"
    shutil.copyfile(realm.keytab, kt)
    os.chmod(kt, 0o600)
    conf = gss_conf(realm).replace(realm.keytab, str(kt)).replace(
        "principal %s; " % K.SERVICE, "")
    p = stpd_factory(conf=conf, env=realm.env)
    g = client(p, realm)
    assert g.handshake(0) == 0
    roundtrip(g, echo, 1000)
    g.s.close()

    def other_accepted():
        g = client(p, realm, service="other@localhost")
        g.greet()
        g.s.sendall(G.frame(1, g.ctx.step()))
        hdr = S.recv_exact(g.s, 2)
        g.s.close()
        return hdr != b"\x01\xff"
    assert not other_accepted()
    with open(os.path.join(realm.dir, "other.keytab"), "rb") as f:
        extra = f.read()
    with open(kt, "ab") as f:
        assert extra[:2] == b"\x05\x02"
        f.write(extra[2:])  # its entries, after the format version
    assert not other_accepted()  # the copy in memory, not the file
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"configuration reloaded", since=mark, timeout=30)
    if os.geteuid() == 0:
        assert p.log_lines(r"broker: opened %s for a reload" % re.escape(str(kt)), mark), p.log()
    assert other_accepted()
