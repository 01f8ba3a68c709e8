"""Privilege separation (issue 19, docs/operations.md "Privilege
separation"): stpd started as root with `user nobody` serves from threads
that are nobody, hold no capability (effective, permitted, bounding), have
NO_NEW_PRIVS and the workers' seccomp filter; a worker that makes a system
call outside the allow-list ends stpd with one log line naming it (exit
status 159), or, with `seccomp off`, the call goes through; the
compartments' broker keeps CAP_SYS_ADMIN alone under its own filter and
still makes sockets in a compartment.

Each test runs stpd in a namespace it makes, listening on port 80 of the
namespace's loopback (a low port, bound before the drop), and an echo
server on port 7 there. Needs root; the poke helper (tests/netns/
seccomp_poke.so, LD_PRELOADed) is built with the tests.
"""

import ctypes
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import netns
from tp_topo import build_file

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SYS_TGKILL = 234  # x86_64
EXIT_SECCOMP = 159  # 128 + SIGSYS: src/sandbox/sandbox.h
CAP_SYS_ADMIN = 21

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _stpd():
    if os.environ.get("STPD"):
        return os.environ["STPD"]
    p = os.path.join(REPO, "build", "src", "server", "stpd")
    if not os.path.exists(p):
        pytest.skip("no stpd binary (set STPD=)")
    return p


def _status(pid, tid=None):
    path = "/proc/%d/task/%s/status" % (pid, tid) if tid else "/proc/%d/status" % pid
    with open(path) as f:
        return dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ":\t" in ln)


def _cap(st, key):
    return int(st[key].strip(), 16)


class Echo:
    """Echoes every connection on 127.0.0.1:7 inside ns (a thread of the test)."""

    def __init__(self, ns):
        self.sock = ns.run(self._open)
        self.stop = False
        threading.Thread(target=self._loop, daemon=True).start()

    @staticmethod
    def _open():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 7))
        s.listen(16)
        s.settimeout(0.2)
        return s

    def _loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    @staticmethod
    def _one(c):
        try:
            c.settimeout(10)
            while True:
                b = c.recv(4096)
                if not b:
                    break
                c.sendall(b)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.sock.close()


def socks_echo(ns, port=80, payload=b"privsep\n"):
    """A SOCKS5 CONNECT through stpd at 127.0.0.1:port in ns to the echo
    server; returns what came back."""
    def body():
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            s.sendall(b"\x05\x01\x00")
            assert s.recv(2) == b"\x05\x00"
            s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + (7).to_bytes(2, "big"))
            rep = s.recv(10)
            assert rep[:2] == b"\x05\x00", rep
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                b = s.recv(4096)
                if not b:
                    break
                got += b
            return got
        finally:
            s.close()
    return ns.run(body)


class World:
    def __init__(self, tmp):
        self.tmp = tmp
        self.ns = netns.Netns("ps")
        self.echo = Echo(self.ns)
        self.proc = None
        self.extra_ns = []

    def start(self, conf, env=None):
        # A directory nobody may read: stpd re-reads its file as nobody.
        self.conf_dir = tempfile.mkdtemp(prefix="stpps")
        os.chmod(self.conf_dir, 0o755)
        path = os.path.join(self.conf_dir, "stpd.conf")
        with open(path, "w") as f:
            f.write(conf)
        os.chmod(path, 0o644)
        self.log_path = os.path.join(self.tmp, "stpd.log")
        self.log = open(self.log_path, "w+")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = self.ns.popen([_stpd(), "-c", path], stdin=subprocess.DEVNULL,
                                  stdout=self.log, stderr=self.log, env=e)
        self.wait_log("ready")
        return self.proc.pid  # `ip netns exec` execs stpd in place

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, needle, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.text()
            if needle in t:
                return t
            if self.proc.poll() is not None and needle not in self.text():
                break
            time.sleep(0.05)
        raise AssertionError("no %r in stpd's log:\n%s" % (needle, self.text()[-3000:]))

    def worker_tids(self, pid):
        """Event-loop threads: named like the process, not the main thread."""
        return [int(t) for t in os.listdir("/proc/%d/task" % pid)
                if int(t) != pid and _status(pid, t)["Name"].strip() == "stpd"]

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        self.echo.close()
        self.ns.close()
        for n in self.extra_ns:
            n.close()
        if getattr(self, "conf_dir", None):
            shutil.rmtree(self.conf_dir, ignore_errors=True)


@pytest.fixture
def world(tmp_path):
    w = World(str(tmp_path))
    yield w
    w.close()


CONF = """
user nobody
workers 2
listen 127.0.0.1:80
client pass { from 127.0.0.0/8 }
request pass
%s
"""


def test_workers_are_nobody_without_capabilities_under_seccomp(world):
    pid = world.start(CONF % "")
    text = world.wait_log("seccomp: workers' filter installed")
    assert "running as nobody" in text
    # Port 80 was bound before the drop and serves after it.
    assert socks_echo(world.ns) == b"privsep\n"
    tasks = os.listdir("/proc/%d/task" % pid)
    assert len(world.worker_tids(pid)) >= 2, tasks
    for tid in tasks:
        st = _status(pid, tid)
        name = st["Name"].strip()
        assert st["Uid"].split() == ["65534"] * 4, (tid, name, st["Uid"])
        assert st["Gid"].split() == ["65534"] * 4, (tid, name, st["Gid"])
        for key in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
            assert _cap(st, key) == 0, (tid, name, key, st[key])
        assert st["NoNewPrivs"].strip() == "1", (tid, name)
        assert st["Seccomp"].strip() == "2", (tid, name)
    # A reload keeps the filter working: the main thread re-reads the file.
    world.proc.send_signal(signal.SIGHUP)
    world.wait_log("configuration reloaded")
    assert socks_echo(world.ns, payload=b"after reload\n") == b"after reload\n"


def _poke(pid, tid):
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(SYS_TGKILL, pid, tid, signal.SIGUSR2) == 0, ctypes.get_errno()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="tgkill number is x86_64's")
def test_forbidden_system_call_in_a_worker_stops_stpd_with_a_line(world):
    poke = build_file("tests", "netns", "seccomp_poke.so")
    assert poke, "no tests/netns/seccomp_poke.so (build the tests)"
    # ASan wants to come first among the libraries; the helper is harmless.
    env = {"LD_PRELOAD": poke, "ASAN_OPTIONS": "verify_asan_link_order=0:detect_leaks=0"}
    pid = world.start(CONF % "", env)
    assert socks_echo(world.ns) == b"privsep\n"
    tid = world.worker_tids(pid)[0]
    _poke(pid, tid)
    rc = world.proc.wait(15)
    assert rc == EXIT_SECCOMP, (rc, world.text()[-2000:])
    line = "stpd: seccomp: forbidden system call unshare (272) in thread %d" % tid
    assert line in world.text()
    assert "poke: unshare returned" not in world.text()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="tgkill number is x86_64's")
def test_seccomp_off_lets_the_call_through(world):
    poke = build_file("tests", "netns", "seccomp_poke.so")
    assert poke, "no tests/netns/seccomp_poke.so (build the tests)"
    env = {"LD_PRELOAD": poke, "ASAN_OPTIONS": "verify_asan_link_order=0"}
    pid = world.start(CONF % "seccomp off", env)
    world.wait_log("seccomp: no filter (seccomp off)")
    for tid in os.listdir("/proc/%d/task" % pid):
        assert _status(pid, tid)["Seccomp"].strip() == "0"
    tid = world.worker_tids(pid)[0]
    _poke(pid, tid)
    world.wait_log("poke: unshare returned 0 in thread %d" % tid)
    assert world.proc.poll() is None
    assert socks_echo(world.ns) == b"privsep\n"


def test_broker_keeps_sys_admin_alone_under_its_filter(world):
    other = netns.Netns("psc")
    world.extra_ns.append(other)
    echo = Echo(other)
    try:
        conf = CONF % ("compartments { compartment c1 netns %s }\n"
                       "listen 127.0.0.1:1080 { name c1-l; compartment c1 }\n" % other.name)
        pid = world.start(conf)
        text = world.wait_log("broker: seccomp filter installed")
        broker = int(re.search(r"broker started \(pid (\d+)\)", text).group(1))
        st = _status(broker)
        # uid nobody like stpd (`user nobody`), CAP_SYS_ADMIN alone.
        assert st["Uid"].split() == ["65534"] * 4
        assert st["Gid"].split() == ["65534"] * 4
        assert "broker: running as nobody with CAP_SYS_ADMIN only" in text
        for key in ("CapEff", "CapPrm"):
            assert _cap(st, key) == 1 << CAP_SYS_ADMIN, (key, st[key])
        # stpd emptied the bounding set before forking it (user nobody).
        assert _cap(st, "CapBnd") == 0
        assert st["NoNewPrivs"].strip() == "1"
        assert st["Seccomp"].strip() == "2"
        # A session arriving in c1 goes out in c1: a socket the broker made
        # there (setns under its filter) carries the bytes.
        assert socks_echo(other, port=1080, payload=b"via broker\n") == b"via broker\n"
        assert _status(pid)["Seccomp"].strip() == "2"
        # The broker re-reads the file under its filter on reload.
        world.proc.send_signal(signal.SIGHUP)
        world.wait_log("broker: policy reloaded")
        assert socks_echo(other, port=1080, payload=b"again\n") == b"again\n"
        assert _status(broker)["Seccomp"].strip() == "2"
    finally:
        echo.close()
