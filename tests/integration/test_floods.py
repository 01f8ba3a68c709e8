"""Floods a client can cause at will must not flood the log: lines of one
kind are rate-limited (5 per 5 s, then one line with the count suppressed,
see src/common/log.h). A client refused for a session limit gets a SOCKS
answer (docs/protocol.md 4.1) instead of a bare reset. stpd only."""

import os
import re
import selectors
import time

import pytest

import servers
import services
import socksraw as S
import stpdconf

BURST, INTERVAL = 5, 5.0
SUPPRESSED = r'suppressed (\d+) more "%s" lines'


@pytest.fixture(autouse=True)
def _stpd_only():
    if servers.server_kind() != "stpd":
        pytest.skip("stpd log rate limits (running against %s)" % servers.server_kind())


def one_per_client(stpd_factory):
    """An stpd allowing one session per client address, and that session,
    held open after its greeting."""
    p = stpd_factory(conf=stpdconf.conf(extra="limits { sessions-per-client 1; }\n"),
                     args=["--workers", "2"])
    held = S.dial(p.port)
    assert S.negotiate(held) == S.M_NONE
    return p, held


def max_lines(seconds):
    """The most lines one call site may write in `seconds` (a burst per
    interval started, plus the summary of each)."""
    return (BURST + 1) * (int(seconds // INTERVAL) + 2)


def suppressed_total(p, what, since=0):
    return sum(int(m.group(1)) for ln in p.log_lines(SUPPRESSED % re.escape(what), since)
               for m in [re.search(SUPPRESSED % re.escape(what), ln)])


def test_refused_client_gets_socks_answer(stpd_factory):
    p, held = one_per_client(stpd_factory)
    with held:
        # SOCKS5: the method reply X'FF', then EOF
        s = S.dial(p.port)
        with s:
            s.sendall(S.greeting((S.M_NONE, S.M_USERPASS)))
            assert S.recv_exact(s, 2) == b"\x05\xff"
            assert S.closed_by_peer(s)
        # SOCKS4: CD 91 (rejected or failed)
        s = S.dial(p.port)
        with s:
            s.sendall(S.socks4_msg(1, "127.0.0.1", 80))
            assert S.recv_exact(s, 8) == b"\x00\x5b" + bytes(6)
            assert S.closed_by_peer(s)
        # a refused client that sends nothing is not kept for the
        # handshake timeout (10 s): a short timer closes it
        s = S.dial(p.port)
        with s:
            t0 = time.monotonic()
            assert S.closed_by_peer(s, timeout=8)
            assert time.monotonic() - t0 < 5
        # refused connections write no session line of their own
        assert not p.log_lines(r"session .*result=\"session limit")
    # once the held session is gone, the client is served again
    services.wait_until(lambda: p.log_lines(r"session id=1 "), 5, what="the held session to end")
    s = S.dial(p.port)
    with s:
        assert S.negotiate(s) == S.M_NONE


def test_refused_flood_bounded_log_with_count(stpd_factory):
    p, held = one_per_client(stpd_factory)
    n = 400
    with held:
        mark = p.log_mark()
        t0 = time.monotonic()
        for i in range(n):
            s = S.dial(p.port)
            with s:
                s.sendall(S.greeting())
                assert S.recv_exact(s, 2) == b"\x05\xff", i
        took = time.monotonic() - t0
        refused = p.log_lines(r"refused .*session limit for this client reached", mark)
        assert len(refused) <= max_lines(took), (len(refused), took)
        # the count arrives once the interval is over, with no new event
        services.wait_until(
            lambda: len(refused) + suppressed_total(p, "refused client", mark) == n,
            INTERVAL + 10, what="the suppressed count to add up to %d" % n)
        lines = p.log()[mark:].splitlines()
        assert len(lines) <= max_lines(took) + 2, lines[-20:]


def test_bad_greeting_flood_bounded_log(stpd_factory):
    p = stpd_factory(args=["--workers", "2"])
    mark = p.log_mark()
    n = 200
    t0 = time.monotonic()
    for _ in range(n):
        s = S.dial(p.port)
        with s:
            s.sendall(b"\x06\x01\x00")  # an unknown version: closed, no reply
            assert S.closed_by_peer(s)
    took = time.monotonic() - t0
    bad = p.log_lines(r"warning: .*bad greeting: ", mark)
    assert len(bad) <= max_lines(took), (len(bad), took)
    services.wait_until(lambda: len(bad) + suppressed_total(p, "bad client input", mark) == n,
                        INTERVAL + 10, what="the suppressed count to add up to %d" % n)


def test_emfile_accept_warnings_bounded(stpd_factory):
    """With the fd limit reached, every new connection is closed at once
    (listener.c gives up its spare descriptor to accept and close it): one
    line when the shortage starts, at most one per interval while it lasts,
    never one per refusal. tests/integration/test_survive.py has the rest
    (existing sessions keep relaying, recovery)."""
    p = stpd_factory(args=["--workers", "1"])
    before = services.prlimit_nofile(p.proc.pid)
    open_fds = len(os.listdir("/proc/%d/fd" % p.proc.pid))
    limit = open_fds + 8
    services.prlimit_nofile(p.proc.pid, (limit, before[1]))
    mark = p.log_mark()
    socks = []
    try:
        for _ in range(30):  # silent clients: the first ones take the free fds
            socks.append(S.dial(p.port))
        p.wait_log(r"worker 0: out of file descriptors \(Too many open files\)", since=mark)
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < INTERVAL + 1.5:  # refusals over an interval
            s = S.dial(p.port)
            with s:
                assert S.closed_by_peer(s, 5)
            n += 1
        assert n >= 20
        assert len(p.log_lines(r"out of file descriptors \(", mark)) == 1
        assert 1 <= len(p.log_lines(r"still out of file descriptors", mark)) <= 2
        assert not p.log_lines(r"accept on ", mark)
    finally:
        for s in socks:
            s.close()
        services.prlimit_nofile(p.proc.pid, before)


def test_auth_failure_flood_bounded_log(stpd_factory):
    p = stpd_factory(users={"alice": "right"}, args=["--workers", "2"])
    mark = p.log_mark()
    n = 40
    t0 = time.monotonic()
    for i in range(n):
        s = S.dial(p.port)
        with s:
            assert S.negotiate(s, (S.M_USERPASS,)) == S.M_USERPASS
            assert S.userpass(s, "alice", "wrong%d" % i) != 0
    took = time.monotonic() - t0
    failed = p.log_lines(r"auth failed ", mark)
    assert len(failed) <= max_lines(took), (len(failed), took)
    services.wait_until(lambda: len(failed) + suppressed_total(p, "auth failed", mark) == n,
                        INTERVAL + 10, what="the suppressed count to add up to %d" % n)


def test_blocked_client_flood_bounded_log(stpd_factory):
    """A client no client rule admits: closed without a reply as before,
    its deny lines rate-limited, and no session line per connection."""
    p = stpd_factory(args=["--allow", "127.0.0.2/32", "--workers", "2"])
    mark = p.log_mark()
    n = 200
    t0 = time.monotonic()
    for _ in range(n):
        s = S.dial(p.port, source="127.0.0.1")
        with s:
            assert S.closed_by_peer(s)
    took = time.monotonic() - t0
    deny = p.log_lines(r"deny .*why=\"client blocked\"", mark)
    assert len(deny) <= max_lines(took), (len(deny), took)
    services.wait_until(
        lambda: len(deny) + suppressed_total(p, "deny (client rule)", mark) == n,
        INTERVAL + 10, what="the suppressed count to add up to %d" % n)
    assert not p.log_lines(r"session .*result=\"client blocked", mark)


def test_refused_waiting_is_capped(stpd_factory):
    """Refused clients that send nothing cannot pin more than 64 waiting
    connections per worker, each for about 1 s: the ones beyond are closed
    at once (so before any waiting one), and the held session is not
    disturbed."""
    extra = "limits { sessions-per-client 1; }\n" + stpdconf.timeouts(handshake=60)
    p = stpd_factory(conf=stpdconf.conf(extra=extra), args=["--workers", "1"])
    held = S.dial(p.port)
    with held:
        assert S.negotiate(held) == S.M_NONE
        n, waiting = 150, 64
        silent = [S.dial(p.port) for _ in range(n)]
        sel = selectors.DefaultSelector()
        try:
            t0 = time.monotonic()
            for i, s in enumerate(silent):
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, i)
            order = []
            while len(order) < n and time.monotonic() - t0 < 15:
                for key, _ in sel.select(0.5):
                    try:
                        d = key.fileobj.recv(16)
                    except ConnectionResetError:
                        d = b""
                    assert d == b"", d  # closed without a reply: it sent nothing
                    order.append(key.data)
                    sel.unregister(key.fileobj)
            took = time.monotonic() - t0
            assert len(order) == n, "%d of %d still open after %.1fs" % (n - len(order), n, took)
            assert sorted(order[:n - waiting]) == list(range(waiting, n)), order
            assert took < 8, took
        finally:
            sel.close()
            for s in silent:
                s.close()
        assert S.request(held, S.CMD_CONNECT, "127.0.0.1", 1).rep != 0  # still served
