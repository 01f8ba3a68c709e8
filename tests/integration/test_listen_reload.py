"""Listen statements across SIGHUP (issues 15 and 19, docs/operations.md
"Reload"): a reload that drops a listen address closes it on every worker
before "configuration reloaded" (new connects are refused) while the
sessions it accepted relay on to their end; a reload that renames one
keeps its sockets (nothing in their backlog is lost) and new sessions
carry the new name, for rules and log lines. stpd only, two workers (one
SO_REUSEPORT socket each per address)."""

import os
import re
import signal
import socket

import pytest

import servers
import services
import socksraw as S
import stpdconf


@pytest.fixture(autouse=True)
def _stpd_only():
    if servers.server_kind() != "stpd":
        pytest.skip("stpd operations (running against %s)" % servers.server_kind())


def kv(line):
    return {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
            for m in re.finditer(r'(\w+)=(?:"([^"]*)"|(\S+))', line)}


def listening_inodes(pid, port):
    """Inodes of pid's sockets listening on 127.0.0.1:port (/proc/PID/net/tcp
    lists the namespace's; the fds narrow it to pid's)."""
    ours = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            ours.add(link[8:-1])
    found = []
    with open("/proc/%d/net/tcp" % pid) as f:
        for ln in f.read().splitlines()[1:]:
            cols = ln.split()
            local, st, inode = cols[1], cols[3], cols[9]
            if st == "0A" and int(local.split(":")[1], 16) == port and inode in ours:
                found.append(inode)
    return sorted(found)


def reload(p, text):
    mark = p.log_mark()
    p.write_conf(text)
    p.signal(signal.SIGHUP)
    p.wait_log(r"configuration reloaded", since=mark, timeout=30)
    assert not p.log_lines(r"reload refused|not added on reload", mark), p.log()[-3000:]
    return mark


def relay(s, n):
    data = os.urandom(n)
    assert S.echo_roundtrip(s, data) == data
    return n


def end_session(s):
    """Half-closes, reads the echo server's EOF, closes: a clean end."""
    s.shutdown(socket.SHUT_WR)
    assert S.recv_all(s) == b""
    s.close()


def test_reload_removes_a_listen_address(stpd_factory, echo):
    other = services.free_port()
    two = "listen 127.0.0.1:$port\nlisten 127.0.0.1:%d { name second }\n" % other
    p = stpd_factory(conf=stpdconf.conf(listen=two), args=["--workers", "2"])
    assert len(listening_inodes(p.proc.pid, other)) == 2  # one per worker
    s, rep = S.open_connect(other, "127.0.0.1", echo.port)
    assert rep.rep == 0
    sent = relay(s, 65536)

    mark = reload(p, stpdconf.conf())
    assert p.log_lines(r"stopped listening on 127\.0\.0\.1:%d \(second\): removed by the "
                       r"reload" % other, mark)
    # Every worker has closed its socket by now: each connect is refused.
    assert listening_inodes(p.proc.pid, other) == []
    for _ in range(8):
        with pytest.raises(ConnectionRefusedError):
            S.dial(other).close()
    # The other address serves as before.
    s2, rep = S.open_connect(p.port, "127.0.0.1", echo.port)
    assert rep.rep == 0
    relay(s2, 1000)
    end_session(s2)
    # The session the removed listener accepted relays on, both ways.
    sent += relay(s, 262144)
    sent += relay(s, 4096)
    end_session(s)
    line, = p.wait_lines(r"session .*listener=second ", 1, since=mark)
    f = kv(line)
    assert (int(f["up"]), int(f["down"])) == (sent, sent), line
    assert f["result"] == "closed" and f["rep"] == "succeeded", line


def test_reload_renames_a_listen_address(stpd_factory, echo):
    def named(name):
        return stpdconf.conf(listen="listen 127.0.0.1:$port { name %s }\n" % name,
                             request_rules="request pass { listener %s }\nrequest block\n"
                             % name)

    p = stpd_factory(conf=named("old"), args=["--workers", "2"])
    before = listening_inodes(p.proc.pid, p.port)
    assert len(before) == 2
    s, rep = S.open_connect(p.port, "127.0.0.1", echo.port)
    assert rep.rep == 0
    sent = relay(s, 65536)

    mark = reload(p, named("new"))
    assert p.log_lines(r"listening on 127\.0\.0\.1:%d \(new\), renamed from old by the reload"
                       % p.port, mark)
    # The same sockets listen on: a rename drops nothing from the backlog.
    assert listening_inodes(p.proc.pid, p.port) == before
    # New sessions arrive on "new": the new rule (listener new) passes them.
    for _ in range(4):
        s2, rep = S.open_connect(p.port, "127.0.0.1", echo.port)
        assert rep.rep == 0
        relay(s2, 100)
        end_session(s2)
    news = p.wait_lines(r"session .*listener=new ", 4, since=mark)
    assert len(news) == 4 and all(kv(ln)["result"] == "closed" for ln in news), news
    # The session that arrived on "old" relays on and ends under its name.
    sent += relay(s, 131072)
    end_session(s)
    line, = p.wait_lines(r"session .*listener=old ", 1, since=mark)
    f = kv(line)
    assert (int(f["up"]), int(f["down"])) == (sent, sent) and f["result"] == "closed", line
