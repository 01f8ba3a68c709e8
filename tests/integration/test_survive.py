"""Surviving the limits (docs/operations.md "Running out of file
descriptors", "Reloading"): with its open-file limit reached, stpd keeps
relaying the sessions it has, refuses new connections at once (closed, not
left hanging in the backlog), logs the shortage once when it starts and
at most once per 5 s while it lasts, and serves again when descriptors
free up. The limit is the process's own (RLIMIT_NOFILE lowered with
prlimit to what stpd holds), whatever this machine's hard limit is."""

import asyncio
import hashlib
import os
import re
import signal
import socket
import time

import pytest

import services
import socksraw as S
import stpdconf

HELD = 20


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def roundtrip(s, n=1000):
    data = os.urandom(n)
    s.sendall(data)
    assert S.recv_exact(s, n) == data


def refused_quickly(port):
    """True when stpd closes a new connection without a byte, fast."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    with s:
        try:
            s.sendall(S.greeting())
            return s.recv(16) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True


def test_fd_exhaustion(stpd_factory, echo):
    p = stpd_factory(conf=stpdconf.conf(extra="workers 1\n"))
    pid = p.proc.pid
    held = []
    for _ in range(HELD):
        s, rep = S.open_connect(p.port, "127.0.0.1", echo.port)
        assert rep.rep == 0
        roundtrip(s)
        held.append(s)
    soft, hard = services.prlimit_nofile(pid)
    try:
        # stpd may have no descriptor left: the next one it needs fails
        services.prlimit_nofile(pid, (open_fds(pid), hard))
        t0 = time.monotonic()
        refused = 0
        while time.monotonic() - t0 < 6.5:  # over one log interval (5 s)
            assert refused_quickly(p.port)
            refused += 1
            time.sleep(0.1)
        # the sessions it has keep relaying, both ways
        for s in held:
            roundtrip(s, 4096)
        assert len(p.log_lines(r"worker 0: out of file descriptors \(Too many open files\): "
                               r"refusing new connections")) == 1
        still = p.log_lines(r"worker 0: still out of file descriptors: refused \d+ connections")
        assert 1 <= len(still) <= 2, still
        assert not p.log_lines(r"accept on"), "a line per refusal"
        # descriptors free up: new sessions are served again
        for s in held[:HELD // 2]:
            s.close()
        mark = p.log_mark()

        def served():
            try:
                s, rep = S.open_connect(p.port, "127.0.0.1", echo.port, timeout=5)
            except (ConnectionError, OSError):
                return None
            with s:
                if rep.rep != 0:
                    return None
                roundtrip(s)
                return True
        services.wait_until(served, 15, step=0.2, what="stpd to serve again")
        m = p.wait_log(r"worker 0: file descriptors available again; (\d+) connections were "
                       r"refused", since=mark)
        assert int(m.group(1)) >= refused
        for s in held[HELD // 2:]:
            roundtrip(s)
    finally:
        services.prlimit_nofile(pid, (soft, hard))
        for s in held:
            s.close()
    assert p.alive()


# ---------------------------------------------------------------------------
# SIGHUP while 1000 sessions relay: every session is open and half-way
# through its bytes when the reload happens, and each checks with SHA-256
# that what came back is what it sent.


SESSIONS = 1000
CHUNK = 4096
CHUNKS = 16  # 64 KiB each way per session: 64 MiB through stpd in all


async def echo_server():
    async def handle(r, w):
        try:
            while True:
                d = await r.read(65536)
                if not d:
                    break
                w.write(d)
                await w.drain()
            w.write_eof()
            await w.drain()
        except ConnectionError:
            pass
        finally:
            w.close()
    return await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)


async def one_session(proxy_port, target_port, halfway, resume):
    """CONNECT, send CHUNKS chunks (waiting at halfway for the reload), read
    everything back; (sha of what was sent, sha of what came back)."""
    r, w = await asyncio.open_connection("127.0.0.1", proxy_port)
    w.write(b"\x05\x01\x00")
    assert await r.readexactly(2) == b"\x05\x00"
    w.write(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + target_port.to_bytes(2, "big"))
    rep = await r.readexactly(10)
    assert rep[1] == 0, rep
    sent, got = hashlib.sha256(), hashlib.sha256()
    n_got = 0

    async def reader():
        nonlocal n_got
        while True:
            d = await r.read(65536)
            if not d:
                return
            got.update(d)
            n_got += len(d)

    rt = asyncio.ensure_future(reader())
    for i in range(CHUNKS):
        if i == CHUNKS // 2:
            halfway()
            await resume.wait()
        d = os.urandom(CHUNK)
        sent.update(d)
        w.write(d)
        await w.drain()
    w.write_eof()
    await asyncio.wait_for(rt, 120)
    w.close()
    return sent.hexdigest(), got.hexdigest(), n_got


async def reload_under_load(p, conf2):
    srv = await echo_server()
    tport = srv.sockets[0].getsockname()[1]
    resume = asyncio.Event()
    waiting = 0
    all_halfway = asyncio.Event()

    def halfway():
        nonlocal waiting
        waiting += 1
        if waiting == SESSIONS:
            all_halfway.set()

    tasks = [asyncio.ensure_future(one_session(p.port, tport, halfway, resume))
             for _ in range(SESSIONS)]
    await asyncio.wait_for(all_halfway.wait(), 120)
    # every session is open and half-way through its bytes: reload now
    mark = p.log_mark()
    p.write_conf(conf2)
    p.signal(signal.SIGHUP)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: p.wait_log(r"configuration reloaded",
                                                        timeout=30, since=mark))
    resume.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 300)
    srv.close()
    await srv.wait_closed()
    return results


def test_reload_under_load(stpd_factory):
    conf1 = stpdconf.conf(extra=stpdconf.timeouts(idle=300))
    conf2 = stpdconf.conf(extra=stpdconf.timeouts(idle=300),
                          request_rules="request block { to 127.0.0.9 }\nrequest pass { }\n")
    p = stpd_factory(conf=conf1)
    t0 = time.monotonic()
    results = asyncio.run(reload_under_load(p, conf2))
    elapsed = time.monotonic() - t0
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, "%d sessions failed, first: %r" % (len(errors), errors[0])
    bad = [r for r in results if r[0] != r[1] or r[2] != CHUNK * CHUNKS]
    assert not bad, "%d sessions lost or changed bytes" % len(bad)
    assert len(results) == SESSIONS
    # stpd's own account: every session ended normally with every byte
    services.wait_until(lambda: len(p.log_lines(r"^.*session id=\d+ .* up=%d down=%d .*"
                                                r'result="closed"' % (CHUNK * CHUNKS,
                                                                      CHUNK * CHUNKS)))
                        == SESSIONS, 30, what="session lines")
    print("reload under load: %d sessions, %d bytes each way each, %.1f s"
          % (SESSIONS, CHUNK * CHUNKS, elapsed))
    # the new configuration holds for new sessions
    s = S.dial(p.port)
    with s:
        S.negotiate(s)
        assert S.request(s, S.CMD_CONNECT, "127.0.0.9", 9).rep == 0x02
