"""Tor's RESOLVE X'F0' and RESOLVE_PTR X'F1' (docs/protocol.md): tor-resolve
from Debian's tor package against stpd, the exact reply bytes on raw
sockets, rules refusing names, and truncated requests."""

import re
import shutil
import socket
import subprocess

import pytest

import socksraw as S
import stpdconf

CMD_RESOLVE = 0xF0
CMD_RESOLVE_PTR = 0xF1


def tor_resolve(proxy, *args):
    if not shutil.which("tor-resolve"):
        pytest.fail("tor-resolve missing (scripts/deps.sh installs Debian's tor)")
    return subprocess.run(["tor-resolve", "-5"] + list(args) + ["127.0.0.1:%d" % proxy.port],
                          capture_output=True, text=True, timeout=30)


def raw_request(proxy, cmd, host, port=0, atyp=None):
    """One request; returns (reply bytes after VER REP RSV parsed, closed)."""
    s = S.dial(proxy.port)
    with s:
        assert S.negotiate(s) == S.M_NONE
        s.sendall(S.request_msg(cmd, host, port, atyp))
        head = S.recv_exact(s, 4)
        if head[3] == S.ATYP_DOMAIN:
            n = S.recv_exact(s, 1)
            rest = n + S.recv_exact(s, n[0] + 2)
        else:
            rest = S.recv_exact(s, (4 if head[3] == S.ATYP_V4 else 16) + 2)
        return head + rest, S.closed_by_peer(s, 10)


# ---------------------------------------------------------------------------
# tor-resolve


def test_tor_resolve_ipv4(stpd_factory):
    p = stpd_factory()
    r = tor_resolve(p, "web.stp.test")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "127.0.0.1"
    p.wait_log(r"resolve web\.stp\.test:0: 127\.0\.0\.1")


def test_tor_resolve_ipv6(stpd_factory):
    p = stpd_factory()
    r = tor_resolve(p, "web6.stp.test")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "::1"


def test_tor_resolve_reverse(stpd_factory):
    p = stpd_factory()
    r = tor_resolve(p, "-x", "127.0.0.77")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ptr.stp.test"
    p.wait_log(r"resolve-ptr 127\.0\.0\.77:0: ptr\.stp\.test")
    p.wait_log(r"session .* cmd=resolve-ptr target=127\.0\.0\.77:0 .*rep=\"succeeded\"")


def test_tor_resolve_missing_name(stpd_factory):
    p = stpd_factory()
    r = tor_resolve(p, "nonexistent.stp.test")
    assert r.returncode != 0
    assert r.stdout.strip() == ""
    p.wait_log(r"resolve nonexistent\.stp\.test:0 failed")


# ---------------------------------------------------------------------------
# the bytes


def test_resolve_reply_bytes_ipv4(stpd_factory):
    p = stpd_factory()
    got, closed = raw_request(p, CMD_RESOLVE, "web.stp.test")
    assert got == bytes([5, 0, 0, 1, 127, 0, 0, 1, 0, 0])
    assert closed


def test_resolve_reply_bytes_ipv6(stpd_factory):
    p = stpd_factory()
    got, closed = raw_request(p, CMD_RESOLVE, "web6.stp.test")
    assert got == bytes([5, 0, 0, 4]) + socket.inet_pton(socket.AF_INET6, "::1") + b"\0\0"
    assert closed


def test_resolve_literal_is_itself(stpd_factory):
    p = stpd_factory()
    got, _ = raw_request(p, CMD_RESOLVE, "192.0.2.9")
    assert got == bytes([5, 0, 0, 1, 192, 0, 2, 9, 0, 0])


def test_resolve_nxdomain_is_04(stpd_factory):
    p = stpd_factory()
    got, closed = raw_request(p, CMD_RESOLVE, "nonexistent.stp.test")
    assert got == bytes([5, 4, 0, 1, 0, 0, 0, 0, 0, 0])
    assert closed


def test_resolve_ptr_reply_bytes(stpd_factory):
    p = stpd_factory()
    got, closed = raw_request(p, CMD_RESOLVE_PTR, "127.0.0.77")
    name = b"ptr.stp.test"
    assert got == bytes([5, 0, 0, 3, len(name)]) + name + b"\0\0"
    assert closed


def test_resolve_ptr_no_record_is_04(stpd_factory):
    p = stpd_factory()
    got, _ = raw_request(p, CMD_RESOLVE_PTR, "192.0.2.55")
    assert got[:2] == bytes([5, 4])


def test_resolve_ptr_of_a_name_is_08(stpd_factory):
    p = stpd_factory()
    got, _ = raw_request(p, CMD_RESOLVE_PTR, "web.stp.test")
    assert got[:2] == bytes([5, 8])


# ---------------------------------------------------------------------------
# rules


def test_rule_refuses_name(stpd_factory):
    text = stpdconf.conf(request_rules="request block { command resolve; to .blocked.test }\n"
                                       "request pass { }\n")
    line = stpdconf.line_of(text, "request block")
    p = stpd_factory(conf=text)
    got, closed = raw_request(p, CMD_RESOLVE, "www.blocked.test")
    assert got[:2] == bytes([5, 2])
    assert closed
    m = p.wait_log(r"deny .*cmd=resolve target=www\.blocked\.test:0")
    assert 'rule="rule at %s:%d"' % (p.conf_path, line) in m.string, m.string
    # other names, and CONNECT to the blocked name's rule, are not affected
    got, _ = raw_request(p, CMD_RESOLVE, "web.stp.test")
    assert got[:2] == bytes([5, 0])
    r = tor_resolve(p, "x.blocked.test")
    assert r.returncode != 0


def test_rule_resolve_ptr_command(stpd_factory):
    text = stpdconf.conf(request_rules="request block { command resolve-ptr; }\n"
                                       "request pass { }\n")
    p = stpd_factory(conf=text)
    got, _ = raw_request(p, CMD_RESOLVE_PTR, "127.0.0.77")
    assert got[:2] == bytes([5, 2])
    got, _ = raw_request(p, CMD_RESOLVE, "web.stp.test")
    assert got[:2] == bytes([5, 0])


# ---------------------------------------------------------------------------
# truncation: every prefix of the request, then EOF or the handshake timeout


def full_request(cmd, host):
    return S.request_msg(cmd, host, 0)


@pytest.mark.parametrize("cmd,host", [(CMD_RESOLVE, "web.stp.test"),
                                      (CMD_RESOLVE_PTR, "127.0.0.77"),
                                      (CMD_RESOLVE_PTR, "::1")])
def test_truncated_request_eof(stpd_factory, cmd, host):
    p = stpd_factory(conf=stpdconf.conf(extra=stpdconf.timeouts(handshake=2)))
    msg = full_request(cmd, host)
    for cut in range(len(msg)):
        s = S.dial(p.port)
        with s:
            assert S.negotiate(s) == S.M_NONE
            s.sendall(msg[:cut])
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            assert s.recv(64) == b"", "reply to a %d-byte prefix" % cut
    assert p.alive()
    got, _ = raw_request(p, cmd, host)
    assert got[:2] == bytes([5, 0])


def test_truncated_request_timeout(stpd_factory):
    p = stpd_factory(conf=stpdconf.conf(extra=stpdconf.timeouts(handshake=1)))
    msg = full_request(CMD_RESOLVE, "web.stp.test")
    socks = []
    for cut in range(len(msg)):
        s = S.dial(p.port)
        assert S.negotiate(s) == S.M_NONE
        s.sendall(msg[:cut])
        socks.append(s)
    for s in socks:
        with s:
            assert S.closed_by_peer(s, 15)
    assert p.alive()


# ---------------------------------------------------------------------------
# a resolver that never answers: the look-up times out, or the client leaves
# while it is pending


@pytest.fixture
def silent_dns():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    yield u.getsockname()[1]
    u.close()


def test_resolver_timeout_is_04(stpd_factory, silent_dns):
    p = stpd_factory(conf=stpdconf.conf(resolver="resolver 127.0.0.1:%d\n" % silent_dns,
                                        extra=stpdconf.timeouts(dns=1)))
    got, closed = raw_request(p, CMD_RESOLVE, "web.stp.test")
    assert got == bytes([5, 4, 0, 1, 0, 0, 0, 0, 0, 0])
    assert closed
    p.wait_log(r"resolve web\.stp\.test:0 failed: .*[Tt]imeout")


@pytest.mark.parametrize("cmd,host", [(CMD_RESOLVE, "web.stp.test"),
                                      (CMD_RESOLVE_PTR, "127.0.0.77")])
def test_client_leaves_during_lookup(stpd_factory, silent_dns, cmd, host):
    p = stpd_factory(conf=stpdconf.conf(resolver="resolver 127.0.0.1:%d\n" % silent_dns,
                                        extra=stpdconf.timeouts(dns=2)))
    s = S.dial(p.port)
    with s:
        assert S.negotiate(s) == S.M_NONE
        s.sendall(S.request_msg(cmd, host, 0))
    # the session ends at the client's end of stream, not at the look-up's
    # timeout (several seconds with c-ares' retries)
    m = p.wait_log(r"session .* cmd=%s .*duration=(\d+\.\d+) rep=\"-\" "
                   r"result=\"control connection closed\"" %
                   ("resolve" if cmd == CMD_RESOLVE else "resolve-ptr"))
    assert float(m.group(1)) < 1.5, m.string
    # the cancelled look-up ends later without touching the closed session
    got, _ = raw_request(p, cmd, host)
    assert got[:2] == bytes([5, 4])
    assert p.alive()
