"""Compartments across SIGHUP (issue 15): a reload adds and removes
compartments with their listeners and resolvers, changes a compartment's
resolver, ends exactly the sessions the new file no longer allows (the
others keep relaying, every byte checked), the broker follows the file and
not a worker, and a bad file keeps the old configuration whole.

Reuses test_compartments' world (seed 001 figure 4), plus:
    app3 ns   a compartment that only a reload adds (listener 127.0.0.3:1080)
    inside    an echo server 10.81.9.2:7; dnsmasq 10.81.9.54: www.test -> 10.81.9.3
              (the resolver of "inside2", the inside namespace under a second
              name with its own resolver)
"""

import os
import signal
import socket
import threading
import time

import pytest

import netns
from test_compartments import (World, _ask_socket, _broker_call, _steal_channels,  # noqa: F401
                               world)


class Pump:
    """One SOCKS5 CONNECT session to the echo server, from inside ns through
    proxy: sends random chunks and checks each comes back whole, until told
    to stop or the session ends."""

    def __init__(self, ns, proxy, port=1080):
        self.sock = ns.run(self._open, proxy, port)
        self.sent = self.checked = 0
        self.bad = None
        self.ended = False
        self.halt = threading.Event()
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    @staticmethod
    def _open(proxy, port):
        s = socket.create_connection((proxy, port), timeout=10)
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("10.81.9.2") + (7).to_bytes(2, "big"))
        rep = s.recv(10)
        assert rep[:2] == b"\x05\x00", rep
        return s

    def _loop(self):
        try:
            while not self.halt.is_set():
                chunk = os.urandom(16384)
                self.sock.sendall(chunk)
                self.sent += len(chunk)
                got = b""
                while len(got) < len(chunk):
                    b = self.sock.recv(len(chunk) - len(got))
                    if not b:
                        self.ended = True
                        return
                    got += b
                if got != chunk:
                    self.bad = "echoed bytes differ after %d bytes" % self.checked
                    return
                self.checked += len(chunk)
                time.sleep(0.005)
        except OSError:
            self.ended = True

    def wait_bytes(self, n, timeout=20):
        deadline = time.time() + timeout
        while self.checked < n and time.time() < deadline and not self.ended:
            time.sleep(0.02)
        assert self.checked >= n, (self.checked, self.ended, self.bad)

    def finish(self):
        self.halt.set()
        self.t.join(30)
        self.sock.close()


def _conf(w, app2=True, app3=False, inside_resolver="10.81.9.53", app2_rule=True, extra=()):
    """The figure-4 file, with app2 and its crossing optional and app3 +
    inside2 optional; extra: more listen statements."""
    cmps = ["compartment app1 netns %s" % w.app1.name]
    if app2:
        cmps.append("compartment app2 netns %s" % w.app2.name)
    cmps.append("compartment inside netns %s resolver %s" % (w.inside.name, inside_resolver))
    cmps.append("compartment outside netns %s resolver 10.81.8.53" % w.outside.name)
    if app3:
        cmps.append("compartment app3 netns %s" % w.app3.name)
        cmps.append("compartment inside2 netns %s resolver 10.81.9.54" % w.inside.name)
    listens = ["listen 127.0.0.1:1080 { name app1-l; compartment app1 }"]
    if app2:
        listens.append("listen 127.0.0.2:1080 { name app2-l; compartment app2 }")
    listens.append("listen 10.81.9.2:1080 { name inside-l; compartment inside }")
    if app3:
        listens.append("listen 127.0.0.3:1080 { name app3-l; compartment app3 }")
    listens.extend(extra)
    rules = ["request pass { from-compartment app1; to-compartment inside; "
             "to 10.81.9.2 10.81.9.3 .test; port 80 7 }"]
    if app2 and app2_rule:
        rules.append("request pass { from-compartment app2; to-compartment inside; "
                     "to 10.81.9.2 10.81.9.3 .test; port 80 7 }")
    if app3:
        rules.append("request pass { from-compartment app3; to-compartment inside2; "
                     "to 10.81.9.3 .test; port 80 }")
    return """
user nobody
workers 2
compartments {
    %s
}
%s
client pass { from 127.0.0.0/8 10.81.9.0/24 }
%s
request block
""" % ("\n    ".join(cmps), "\n".join(listens), "\n".join(rules))


@pytest.fixture
def rworld(world):  # noqa: F811 (the imported fixture)
    w = world
    w.app3 = w._ns("app3")
    w.app3.sysctl("net.ipv4.ip_forward", 0)
    w.inside.ip("addr", "add", "10.81.9.54/32", "dev", "lo")
    w._dnsmasq(w.inside, "10.81.9.54", "10.81.9.3")
    echo = netns.NsTcpServer(w.inside, "10.81.9.2", 7)
    w.servers.append(echo)
    return w


def _reload(w, text, expect="configuration reloaded from"):
    """Writes text, sends SIGHUP, waits for the line stpd logs once the
    broker answered RELOAD (so a stolen channel is quiet again)."""
    before = w.text().count(expect)
    with open(w.conf_path, "w") as f:
        f.write(text)
    os.kill(w.stpd.pid, signal.SIGHUP)
    deadline = time.time() + 15
    while w.text().count(expect) <= before:
        assert w.stpd.poll() is None, w.text()
        assert time.time() < deadline, "%r not logged again:\n%s" % (expect, w.text())
        time.sleep(0.05)


def _refused(ns, ip, port=1080):
    def connect():
        try:
            socket.create_connection((ip, port), timeout=5).close()
            return False
        except ConnectionRefusedError:
            return True
    return ns.run(connect)


def _curl_until(w, ns, proxy, url, ok, timeout=15):
    """curl until ok(result): each worker takes a reload on its own thread,
    a moment after stpd logs it."""
    deadline = time.time() + timeout
    while True:
        r = w.curl(ns, proxy, url)
        if ok(r) or time.time() > deadline:
            return r
        time.sleep(0.1)


def _wait_refused(ns, ip, timeout=15):
    """Every worker closes its own socket on its thread: wait for all."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(_refused(ns, ip) for _ in range(4)):
            return True
        time.sleep(0.05)
    return False


def _counts(pid):
    """stpd's descriptors other than pipes, and its threads. Pipes are left
    out: each worker keeps up to 64 splice pipes for later sessions
    (pipepool), so a session on a worker that had none leaves one pair."""
    fds = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if not os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("pipe:"):
                fds += 1
        except OSError:
            pass
    return fds, len(os.listdir("/proc/%d/task" % pid))


def test_reload_adds_compartment_with_listener_and_resolver(rworld):
    w = rworld
    w.start(_conf(w))
    assert _refused(w.app3, "127.0.0.3")
    kept = Pump(w.app1, "127.0.0.1")
    kept.wait_bytes(65536)
    _reload(w, _conf(w, app3=True))
    w.wait_log("listening on 127.0.0.3:1080 (app3-l), added by the reload")
    # The new listener accepts at once, and names resolve with the new
    # compartment's resolver (www.test is 10.81.9.3 for inside2's).
    assert w.curl(w.app3, "127.0.0.3", "http://www.test/") == (0, "10.81.9.3:80\n")
    assert w.curl(w.app3, "127.0.0.3", "http://10.81.9.2/")[0] != 0
    # Others still resolve with inside's own resolver.
    assert w.curl(w.app1, "127.0.0.1", "http://www.test/") == (0, "10.81.9.2:80\n")
    n = kept.checked
    kept.wait_bytes(n + 65536)
    kept.finish()
    assert kept.bad is None and not kept.ended, (kept.bad, kept.ended)
    assert "compartment=app3->inside2" in w.text()


def test_reload_removes_compartment_listeners_sessions_fds(rworld):
    w = rworld
    w.start(_conf(w, app2=False))
    pid = w.stpd.pid
    kept = Pump(w.app1, "127.0.0.1")
    kept.wait_bytes(65536)
    # Warm up what app1 uses anyway (its resolver), then the baseline.
    assert w.curl(w.app1, "127.0.0.1", "http://www.test/") == (0, "10.81.9.2:80\n")
    # Its session's sockets are closed once its line is written, which may
    # follow curl's exit.
    w.wait_log("listener=app1-l user=- cmd=connect target=www.test:80")
    base = _counts(pid)
    _reload(w, _conf(w, app2=True))
    w.wait_log("listening on 127.0.0.2:1080 (app2-l), added by the reload")
    assert w.curl(w.app2, "127.0.0.2", "http://www.test/") == (0, "10.81.9.2:80\n")
    gone = Pump(w.app2, "127.0.0.2")
    gone.wait_bytes(65536)
    assert _counts(pid) != base
    # app2 leaves: its listener closes, its session ends with the reason
    # logged; app1's goes on without losing a byte.
    _reload(w, _conf(w, app2=False))
    w.wait_log("stopped listening on 127.0.0.2:1080 (app2-l): removed by the reload")
    gone.t.join(20)
    assert gone.ended and gone.bad is None
    gone.sock.close()
    text = w.wait_log("result=\"reload removed compartment app2\"")
    assert "ended 1 sessions the new configuration no longer allows" in text
    assert _wait_refused(w.app2, "127.0.0.2")
    n = kept.checked
    kept.wait_bytes(n + 65536)
    deadline = time.time() + 15
    while _counts(pid) != base and time.time() < deadline:
        time.sleep(0.1)
    assert _counts(pid) == base
    kept.finish()
    assert kept.bad is None and not kept.ended, (kept.bad, kept.ended)
    assert w.curl(w.app1, "127.0.0.1", "http://10.81.9.3/") == (0, "10.81.9.3:80\n")


def test_reload_ends_sessions_whose_crossing_is_removed(rworld):
    w = rworld
    w.start(_conf(w))
    kept = Pump(w.app1, "127.0.0.1")
    cut = Pump(w.app2, "127.0.0.2")
    kept.wait_bytes(65536)
    cut.wait_bytes(65536)
    # app2 stays a compartment (its listener too) but may not cross any more.
    _reload(w, _conf(w, app2_rule=False))
    cut.t.join(20)
    assert cut.ended and cut.bad is None
    cut.sock.close()
    w.wait_log("result=\"reload: no rule lets app2 reach inside\"")
    assert _curl_until(w, w.app2, "127.0.0.2", "http://10.81.9.3/", lambda r: r[0] != 0)[0] != 0
    for _ in range(4):  # both workers
        assert w.curl(w.app2, "127.0.0.2", "http://10.81.9.3/")[0] != 0
    assert not _refused(w.app2, "127.0.0.2")
    n = kept.checked
    kept.wait_bytes(n + 65536)
    kept.finish()
    assert kept.bad is None and not kept.ended


def test_reload_changes_resolver(rworld):
    w = rworld
    w.start(_conf(w))
    assert w.curl(w.app1, "127.0.0.1", "http://www.test/") == (0, "10.81.9.2:80\n")
    _reload(w, _conf(w, inside_resolver="10.81.9.54"))
    want = (0, "10.81.9.3:80\n")
    assert _curl_until(w, w.app1, "127.0.0.1", "http://www.test/", want.__eq__) == want
    for _ in range(4):  # both workers
        assert w.curl(w.app1, "127.0.0.1", "http://www.test/") == want
    _reload(w, _conf(w))
    want = (0, "10.81.9.2:80\n")
    assert _curl_until(w, w.app1, "127.0.0.1", "http://www.test/", want.__eq__) == want
    for _ in range(4):
        assert w.curl(w.app1, "127.0.0.1", "http://www.test/") == want


def test_broker_follows_the_file_not_the_worker(rworld):
    w = rworld
    w.start(_conf(w))
    chans = _steal_channels(w.stpd.pid)
    assert len(chans) == 3, chans  # two workers' and the main thread's
    # The main thread's channel: quiet once the reload is logged. A worker's
    # carries that worker's own requests after a reload (the added
    # compartment's listener, listener_reload.c), whose replies the test
    # would take (and the worker the test's).
    ch = chans[-1]
    ch.settimeout(5)

    def ask(inn, out):
        return _ask_socket(ch, inn, out)

    ok, refused = (bytes([1, 0, 0, 0]), 1), (bytes([1, 1, 0, 0]), 0)
    assert ask(b"app2", b"inside") == ok
    assert ask(b"app3", b"inside2") == refused
    assert ask(b"app3", b"app3") == refused
    _reload(w, _conf(w, app2=False, app3=True))
    # Removed: nothing for app2, whatever a worker says; added: sockets.
    assert ask(b"app2", b"inside") == refused
    assert ask(b"app2", b"app2") == refused
    assert ask(b"app3", b"inside2") == ok
    assert ask(b"app3", b"app3") == ok
    assert ask(b"app3", b"inside") == refused
    for c in chans:
        c.close()


def test_bad_reload_keeps_everything(rworld):
    w = rworld
    w.start(_conf(w))
    kept = Pump(w.app2, "127.0.0.2")
    kept.wait_bytes(65536)
    bad = _conf(w, app2=False, app3=True).replace(
        "netns %s\n" % w.app3.name, "netns %s-nosuch\n" % w.app3.name)
    _reload(w, bad, expect="reload refused, keeping the running configuration")
    assert "compartment 'app3': netns /run/netns/%s-nosuch: No such file or directory" \
        % w.app3.name in w.text()
    _reload(w, _conf(w, app3=True) + "request pass { to-compartment\n",
            expect="reload refused, keeping the running configuration")
    # The old file is whole: app2 still listens and crosses, app3 is absent,
    # and the broker was never asked to change.
    assert "broker: policy reloaded" not in w.text()
    assert _refused(w.app3, "127.0.0.3")
    assert w.curl(w.app2, "127.0.0.2", "http://10.81.9.3/") == (0, "10.81.9.3:80\n")
    n = kept.checked
    kept.wait_bytes(n + 65536)
    kept.finish()
    assert kept.bad is None and not kept.ended


def _ask_listen(ch, port, place):
    """LISTEN 127.0.0.1:port in compartment place: the reply and how many
    fds came with it (closed here)."""
    msg, fds = _broker_call(ch, bytes([1, 4, 4, port >> 8, port & 255, 127, 0, 0, 1, len(place)])
                            + place)
    for fd in fds:
        os.close(fd)
    return msg, len(fds)


def test_reload_adds_a_low_port_in_a_compartment(rworld):
    """stpd runs as nobody; a reload adds port 81 inside app1: the broker
    binds it in app1's namespace for each worker, a client there gets
    through it; a worker's channel gets no port the file does not list in
    that compartment; a reload without it closes it."""
    w = rworld
    w.start(_conf(w))
    assert _refused(w.app1, "127.0.0.1", 81)
    low = "listen 127.0.0.1:81 { name app1-low; compartment app1 }"
    _reload(w, _conf(w, extra=[low]))
    text = w.text()
    # One socket per worker (two), each bound by the broker in app1.
    assert text.count("broker: bound 127.0.0.1:81 in compartment app1 for a reload") == 2, text
    assert "listening on 127.0.0.1:81 (app1-low), added by the reload" in text
    assert "not added on reload" not in text
    for _ in range(4):
        p = Pump(w.app1, "127.0.0.1", port=81)
        p.wait_bytes(32768)
        p.finish()
        assert p.bad is None and not p.ended, (p.bad, p.ended)
    lines = [ln for ln in w.text().splitlines() if "listener=app1-low " in ln]
    assert lines and all("compartment=app1->inside" in ln for ln in lines), lines

    chans = _steal_channels(w.stpd.pid)
    assert len(chans) == 3, chans  # two workers' and the main thread's
    ch = chans[0]  # worker 0's, quiet now: none of its sessions is open
    ch.settimeout(5)
    refused, ok = (bytes([1, 1, 0, 0]), 0), (bytes([1, 0, 0, 0]), 1)
    assert _ask_listen(ch, 82, b"app1") == refused   # not a listen address at all
    assert _ask_listen(ch, 81, b"app2") == refused   # listed, but in app1
    assert _ask_listen(ch, 81, b"") == refused       # nor in stpd's own namespace
    assert _ask_listen(ch, 1080, b"nosuch") == refused
    assert _ask_listen(ch, 81, b"app1") == ok        # what the file lists
    for c in chans:
        c.close()
    text = w.wait_log("broker: refused to bind 127.0.0.1:82 in compartment app1 (not a "
                      "listen address of the configuration)")
    assert "broker: refused to bind 127.0.0.1:81 in compartment app2 (" in text
    assert "broker: refused to bind 127.0.0.1:81 (not a listen address" in text

    _reload(w, _conf(w))
    w.wait_log("stopped listening on 127.0.0.1:81 (app1-low): removed by the reload")
    for _ in range(4):
        assert _refused(w.app1, "127.0.0.1", 81)
    kept = Pump(w.app1, "127.0.0.1")
    kept.wait_bytes(16384)
    kept.finish()
    assert kept.bad is None and not kept.ended
