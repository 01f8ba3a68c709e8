"""Hostile and clumsy clients: the server must keep serving everyone else.

Every loop here is bounded in count and in time.
"""

import random
import selectors
import threading
import time

import pytest

import services
import socksraw as S
import stpdconf


def assert_serves(proxy, echo, within=5.0):
    """A normal client completes CONNECT + an echo round trip in time."""
    assert proxy.alive(), "server died:\n" + proxy.log()[-3000:]
    t0 = time.monotonic()
    s, rep = S.open_connect(proxy.port, "127.0.0.1", echo.port, timeout=within)
    with s:
        assert rep.rep == 0, rep
        assert S.echo_roundtrip(s, b"still serving\n") == b"still serving\n"
    took = time.monotonic() - t0
    assert took < within, "round trip took %.2fs" % took
    return took


def send_quietly(s, data):
    """sendall that tolerates the server closing first."""
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def cut_everywhere(proxy, prefix_steps, message):
    """For each cut point 0..len-1: do the prefix steps (send, read reply),
    send message[:cut] and close."""
    for cut in range(len(message)):
        s = S.dial(proxy.port, timeout=5)
        with s:
            for send, expect_len in prefix_steps:
                s.sendall(send)
                S.recv_exact(s, expect_len)
            send_quietly(s, message[:cut])
        # closing abruptly right after the cut; give the server no rest


def test_truncated_handshake_messages(proxy, echo):
    greet = S.greeting((S.M_NONE, S.M_USERPASS))
    cut_everywhere(proxy, [], greet)
    assert_serves(proxy, echo)
    after_greeting = [(S.greeting(), 2)]
    for host in ("127.0.0.1", "::1", "web.stp.test"):
        cut_everywhere(proxy, after_greeting, S.request_msg(S.CMD_CONNECT, host, echo.port))
        assert_serves(proxy, echo)
    if proxy.has("udp"):
        cut_everywhere(proxy, after_greeting, S.request_msg(S.CMD_UDP, "127.0.0.1", 9))
    if proxy.has("socks4a"):
        cut_everywhere(proxy, [], S.socks4_msg(1, None, echo.port, b"user", "web.stp.test"))
    assert_serves(proxy, echo)


def test_truncated_userpass(proxy_factory, echo):
    p = proxy_factory(users={"alice": "pw-for-alice"})
    p.require("userpass")
    cut_everywhere(p, [(S.greeting((S.M_USERPASS,)), 2)],
                   S.userpass_msg("alice", "pw-for-alice"))
    s, rep = S.open_connect(p.port, "127.0.0.1", echo.port, auth=("alice", "pw-for-alice"))
    with s:
        assert rep.rep == 0
        assert S.echo_roundtrip(s, b"ok") == b"ok"


def test_zero_methods(proxy, echo):
    s = S.dial(proxy.port, timeout=5)
    with s:
        s.sendall(b"\x05\x00")
        got = b""
        try:
            while len(got) < 3:
                d = s.recv(3 - len(got))
                if not d:
                    break
                got += d
        except ConnectionResetError:
            pass
        # nothing acceptable was offered: X'FF' (or just the close)
        assert got in (b"", b"\x05\xff"), got
        assert S.closed_by_peer(s)
    assert_serves(proxy, echo)


def test_255_methods(proxy, echo):
    s = S.dial(proxy.port, timeout=5)
    with s:
        methods = bytes(range(1, 256))[::-1][:254] + b"\x00"    # 255 methods, 00 last
        assert len(methods) == 255
        s.sendall(b"\x05\xff" + methods)
        assert S.recv_exact(s, 2) == b"\x05\x00"
        rep = S.request(s, S.CMD_CONNECT, "127.0.0.1", echo.port)
        assert rep.rep == 0, rep
        assert S.echo_roundtrip(s, b"255") == b"255"


def test_zero_length_domain_then_serves(proxy, echo):
    s = S.dial(proxy.port, timeout=5)
    with s:
        assert S.negotiate(s) == S.M_NONE
        s.sendall(bytes([5, 1, 0, 3, 0, 0, 80]))
        rep = S.read_reply(s)
        assert rep.rep != 0, rep
        assert S.closed_by_peer(s)
    assert_serves(proxy, echo)


@pytest.mark.parametrize("first", [None, b"\x05", b"\x04\x01", b"\x05\x01\x00\x05\x01\x00"])
def test_garbage_10k(proxy, echo, first):
    rnd = random.Random(len(first or b"") * 7919 + 1)
    junk = (first or b"") + bytes(rnd.getrandbits(8) for _ in range(10240))
    if first is None and junk[0] in (4, 5):
        junk = b"\x47" + junk[1:]          # "GET"-like: neither SOCKS4 nor 5
    s = S.dial(proxy.port, timeout=5)
    with s:
        send_quietly(s, junk)
        assert S.closed_by_peer(s, timeout=15), "server kept a garbage connection open"
    assert_serves(proxy, echo)


def test_500_slow_clients(proxy, echo):
    """500 clients dribbling a byte every 200 ms for ~10 s while a normal
    client keeps getting quick round trips."""
    services.raise_nofile(4096)
    n, interval, duration = 500, 0.2, 10.0
    script = S.greeting() + S.request_msg(S.CMD_CONNECT, "127.0.0.1", echo.port)
    script += b"x" * int(duration / interval)
    slow = []
    try:
        for _ in range(n):
            s = S.dial(proxy.port, timeout=10)
            s.setblocking(False)
            slow.append(s)
        stop = threading.Event()
        sent = [0]
        errors = []

        def dribble():
            deadline = time.monotonic() + duration
            i = 0
            while i < len(script) and time.monotonic() < deadline and not stop.is_set():
                for s in slow:
                    try:
                        s.send(script[i:i + 1])
                    except OSError as e:
                        errors.append(e)
                sent[0] = i + 1
                i += 1
                time.sleep(interval)

        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        worst = 0.0
        rounds = 0
        t_end = time.monotonic() + duration
        while time.monotonic() < t_end and rounds < 100:
            worst = max(worst, assert_serves(proxy, echo, within=3.0))
            rounds += 1
            time.sleep(0.3)
        stop.set()
        t.join(5)
        assert rounds >= 10
        assert not errors, errors[:3]
        # every slow client got its method choice, a success reply and the
        # echo of the bytes it managed to send after the request
        hs = 2 + 10
        echoed = sent[0] - len(S.greeting()) - 10
        assert echoed > 0
        want = b"\x05\x00" + b"\x05\x00"
        sel = selectors.DefaultSelector()
        got = {s.fileno(): b"" for s in slow}
        for s in slow:
            sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + 10
        pending = set(got)
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                s = key.fileobj
                try:
                    d = s.recv(4096)
                except BlockingIOError:
                    continue
                got[s.fileno()] += d
                if not d or len(got[s.fileno()]) >= hs + echoed:
                    pending.discard(s.fileno())
                    sel.unregister(s)
        sel.close()
        bad = [v[:hs] for v in got.values()
               if not (v.startswith(want) and v[hs:] == b"x" * echoed)]
        assert not bad, "%d of %d slow clients not served, e.g. %r" % (len(bad), n, bad[:3])
    finally:
        for s in slow:
            s.close()
    assert_serves(proxy, echo)


def test_half_open_flood(stpd_factory, echo):
    """Connections that never send (and some that stop after the greeting)
    are closed by the 2 s handshake timeout; others are served meanwhile."""
    services.raise_nofile(4096)
    p = stpd_factory(conf=stpdconf.conf(extra=stpdconf.timeouts(handshake=2)))
    n_silent, n_greeted = 700, 50
    socks = []
    try:
        t0 = time.monotonic()
        for i in range(n_silent + n_greeted):
            s = S.dial(p.port, timeout=10)
            if i >= n_silent:
                s.sendall(S.greeting())
            socks.append(s)
        assert_serves(p, echo, within=3.0)
        sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        closed = 0
        deadline = time.monotonic() + 10
        while closed < len(socks) and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                s = key.fileobj
                try:
                    d = s.recv(64)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    d = b""
                if d == b"\x05\x00":       # the greeted ones got their choice first
                    continue
                assert d == b"", d
                closed += 1
                sel.unregister(s)
        took = time.monotonic() - t0
        sel.close()
        assert closed == len(socks), "%d of %d idle connections still open after %.1fs" % (
            len(socks) - closed, len(socks), took)
        assert took > 1.5, "closed before the handshake timeout (%.1fs)" % took
    finally:
        for s in socks:
            s.close()
    assert_serves(p, echo)
