"""Compartments (issue 15, seed 001 figure 4): one trusted stpd listening in
two application compartments, reaching an inside network of "legacy"
servers and an outside network, with nothing routing between them.

    app1 ns   curl -> 127.0.0.1:1080 (stpd's listener, made in app1)
    app2 ns   curl -> 127.0.0.2:1080 (stpd's listener, made in app2)
    inside ns 10.81.9.2:80, 10.81.9.2:8080, 10.81.9.3:80 (legacy HTTP)
              dnsmasq 10.81.9.53: www.test -> 10.81.9.2; a listener too
    outside   10.81.8.2:80 (web); dnsmasq 10.81.8.53: www.test -> 10.81.8.2
    stpd ns   stpd itself ("host"), running as nobody; its broker as nobody with CAP_SYS_ADMIN

No veth joins any of them: every byte between compartments passes through
stpd's sockets, and ip_forward is 0 everywhere. Needs root, curl, dnsmasq.
"""

import ctypes
import os
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
import services

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _stpd():
    if os.environ.get("STPD"):
        return os.environ["STPD"]
    p = os.path.join(REPO, "build", "src", "server", "stpd")
    if not os.path.exists(p):
        pytest.skip("no stpd binary (set STPD=)")
    return p


def http_server(ns, ip, port):
    """Answers every HTTP request on (ip, port) inside ns with a body naming
    itself (threads of the test)."""
    body = ("%s:%d\n" % (ip, port)).encode()

    def serve(c):
        c.recv(4096)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    return netns.NsTcpServer(ns, ip, port, serve, timeout=5)


class World:
    def __init__(self, tmp):
        self.tmp = tmp
        self.spaces, self.procs, self.servers = [], [], []
        self.stpd = None
        try:
            self.gw = self._ns("gw")
            self.app1 = self._ns("app1")
            self.app2 = self._ns("app2")
            self.inside = self._ns("in")
            self.outside = self._ns("out")
        except (RuntimeError, FileNotFoundError) as e:
            self.close()
            pytest.skip("cannot create network namespaces: %s" % e)
        for ns in self.spaces:
            ns.sysctl("net.ipv4.ip_forward", 0)
        for ip in ("10.81.9.2", "10.81.9.3", "10.81.9.53"):
            self.inside.ip("addr", "add", ip + "/32", "dev", "lo")
        for ip in ("10.81.8.2", "10.81.8.53"):
            self.outside.ip("addr", "add", ip + "/32", "dev", "lo")
        for ns, ip, port in ((self.inside, "10.81.9.2", 80), (self.inside, "10.81.9.2", 8080),
                             (self.inside, "10.81.9.3", 80), (self.outside, "10.81.8.2", 80)):
            self.servers.append(http_server(ns, ip, port))
        self._dnsmasq(self.inside, "10.81.9.53", "10.81.9.2")
        self._dnsmasq(self.outside, "10.81.8.53", "10.81.8.2")

    def _ns(self, role):
        ns = netns.Netns("cmp" + role)
        self.spaces.append(ns)
        return ns

    def _dnsmasq(self, ns, ip, answer):
        p = ns.popen(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                      "--bind-interfaces", "--listen-address=" + ip, "--port=53",
                      "--user=root", "--pid-file=", "--address=/www.test/" + answer],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        want = "%08X:0035" % int.from_bytes(socket.inet_aton(ip), "little")
        deadline = time.time() + 10
        while time.time() < deadline:
            if want in ns.read("/proc/net/udp"):
                return
            time.sleep(0.05)
        pytest.fail("dnsmasq did not start in %s" % ns.name)

    def conf(self, extra_rules=""):
        return """
user nobody
workers 2
compartments {
    compartment app1 netns %s
    compartment app2 netns %s
    compartment inside netns /run/netns/%s resolver 10.81.9.53
    compartment outside netns %s resolver 10.81.8.53
}
listen 127.0.0.1:1080 { name app1-l; compartment app1 }
listen 127.0.0.2:1080 { name app2-l; compartment app2 }
listen 10.81.9.2:1080 { name inside-l; compartment inside }
client pass { from 127.0.0.0/8 10.81.9.0/24 }
%s
request pass { from-compartment app1; to-compartment inside; to 10.81.9.2 .test; port 80 }
request pass { from-compartment app2; to-compartment inside; to 10.81.9.3; port 80 }
request pass { from-compartment inside; to-compartment outside; to .test 10.81.8.0/24; port 80 }
request block
""" % (self.app1.name, self.app2.name, self.inside.name, self.outside.name, extra_rules)

    def start(self, conf):
        # stpd re-reads the file on SIGHUP as nobody: a directory it may
        # enter (pytest's own are 0700).
        self.conf_dir = tempfile.mkdtemp(prefix="stpcmp")
        os.chmod(self.conf_dir, 0o755)
        self.conf_path = os.path.join(self.conf_dir, "stpd.conf")
        self.log_path = os.path.join(self.tmp, "stpd.log")
        with open(self.conf_path, "w") as f:
            f.write(conf)
        os.chmod(self.conf_path, 0o644)
        self.log = open(self.log_path, "w+")
        self.stpd = self.gw.popen([_stpd(), "-c", self.conf_path], stdin=subprocess.DEVNULL,
                                  stdout=self.log, stderr=self.log)
        self.wait_log("ready")

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, needle, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.stpd.poll() is not None:
                pytest.fail("stpd exited: %s" % self.text())
            if needle in self.text():
                return self.text()
            time.sleep(0.05)
        raise AssertionError("%r not in stpd log:\n%s" % (needle, self.text()))

    def curl(self, ns, proxy, url):
        """(exit code, body) of an unmodified curl through stpd."""
        r = subprocess.run(["ip", "netns", "exec", ns.name, "curl", "-s", "-m", "10",
                            "--proxy", "socks5h://%s:1080" % proxy, url],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        return r.returncode, r.stdout.decode()

    def close(self):
        for s in self.servers:
            s.close()
        for p in self.procs:
            services.stop_process(p, 10)
        for ns in self.spaces:
            ns.close()
        if getattr(self, "conf_dir", None):
            shutil.rmtree(self.conf_dir, ignore_errors=True)


@pytest.fixture
def world(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for prog in ("curl", "dnsmasq"):
        if not shutil.which(prog):
            pytest.skip("%s not installed" % prog)
    w = World(str(tmp_path))
    yield w
    rc = None
    try:
        if w.stpd is not None and w.stpd.poll() is None:
            w.stpd.send_signal(signal.SIGTERM)
            rc = w.stpd.wait(20)
    finally:
        # Even when it did not stop in time, the namespaces and dnsmasq go
        # (a failed reload test once left both behind).
        if w.stpd is not None and w.stpd.poll() is None:
            w.stpd.kill()
            w.stpd.wait()
        w.close()
    if rc is not None:
        text = w.text()
        assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text, text
        assert rc == 0, text


def _capeff(pid, task=None):
    path = "/proc/%d/task/%s/status" % (pid, task) if task else "/proc/%d/status" % pid
    with open(path) as f:
        return int(re.search(r"^CapEff:\s*([0-9a-f]+)$", f.read(), re.M).group(1), 16)


def test_figure4_rules_per_compartment(world):
    world.start(world.conf())
    # app1 reaches exactly 10.81.9.2:80 in the inside compartment.
    assert world.curl(world.app1, "127.0.0.1", "http://10.81.9.2/") == (0, "10.81.9.2:80\n")
    assert world.curl(world.app1, "127.0.0.1", "http://10.81.9.2:8080/")[0] != 0
    assert world.curl(world.app1, "127.0.0.1", "http://10.81.9.3/")[0] != 0
    assert world.curl(world.app1, "127.0.0.1", "http://10.81.8.2/")[0] != 0
    # app2 reaches exactly 10.81.9.3:80.
    assert world.curl(world.app2, "127.0.0.2", "http://10.81.9.3/") == (0, "10.81.9.3:80\n")
    assert world.curl(world.app2, "127.0.0.2", "http://10.81.9.2/")[0] != 0
    # Each client gets the answer of the compartment its connection goes to:
    # www.test is 10.81.9.2 inside and 10.81.8.2 outside.
    assert world.curl(world.app1, "127.0.0.1", "http://www.test/") == (0, "10.81.9.2:80\n")
    assert world.curl(world.inside, "10.81.9.2", "http://www.test/") == (0, "10.81.8.2:80\n")
    # A session's line is written when stpd closes it, which may follow curl's exit.
    text = world.wait_log("listener=inside-l user=- cmd=connect target=www.test:80")
    # Logs name both compartments.
    assert re.search(r"session .*listener=app1-l .*target=10\.81\.9\.2:80 .*"
                     r"compartment=app1->inside", text), text
    assert re.search(r"deny .*listener=app1-l .*target=10\.81\.9\.2:8080 .*"
                     r"compartment=app1->app1", text), text
    assert re.search(r"session .*listener=inside-l .*target=www\.test:80 .*"
                     r"compartment=inside->outside", text), text


def _steal_channels(pid):
    """The broker channels of stpd (pid), taken out with pidfd_getfd: what a
    compromised worker holds. In stpd's fd order, which is the order they
    were made in: the workers' by id, the main thread's last."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    chans = []
    try:
        for fd in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
            try:
                if not os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                    continue
            except OSError:
                continue
            got = libc.syscall(438, pidfd, int(fd), 0)  # pidfd_getfd
            if got < 0:
                continue
            s = socket.socket(fileno=got)
            if s.family == socket.AF_UNIX and s.type == socket.SOCK_SEQPACKET:
                chans.append(s)
            else:
                s.close()
    finally:
        os.close(pidfd)
    return chans


def _broker_call(ch, req):
    """One request on a broker channel: its reply and the fds it carried."""
    ch.send(req)
    msg, anc, _, _ = ch.recvmsg(16, socket.CMSG_SPACE(4))
    return msg, [int.from_bytes(data[:4], "little") for lvl, typ, data in anc
                 if lvl == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS]


def _ask_socket(ch, inn, out):
    """A TCP socket for compartment INN toward OUT: the reply and how many
    fds came with it (closed here)."""
    msg, fds = _broker_call(ch, bytes([1, 1, 4, 1, 6, len(inn)]) + inn + bytes([len(out)]) + out)
    for fd in fds:
        os.close(fd)
    return msg, len(fds)


def test_workers_hold_no_capabilities_and_broker_refuses(world):
    world.start(world.conf())
    pid = world.stpd.pid  # `ip netns exec` execs stpd in place
    m = re.search(r"broker started \(pid (\d+)\)", world.text())
    assert m, world.text()
    broker = int(m.group(1))
    for tid in os.listdir("/proc/%d/task" % pid):
        assert _capeff(pid, tid) == 0, tid
    # CAP_SYS_ADMIN (setns), CAP_DAC_READ_SEARCH and CAP_NET_BIND_SERVICE (reloads
    # after the drop to nobody: docs/operations.md "Privilege separation")
    assert _capeff(broker) == 1 << 21 | 1 << 2 | 1 << 10
    chans = _steal_channels(pid)
    assert chans, "no broker channel found in stpd"
    ch = chans[0]
    ch.settimeout(5)

    def ask(inn, out):
        return _ask_socket(ch, inn, out)

    # No rule lets app2 out into outside, nor app1 into stpd's own namespace.
    assert ask(b"app2", b"outside") == (bytes([1, 1, 0, 0]), 0)
    assert ask(b"app1", b"host") == (bytes([1, 1, 0, 0]), 0)
    assert ask(b"app1", b"nosuch") == (bytes([1, 1, 0, 0]), 0)
    # Garbage is answered BAD; an allowed pair does get a socket.
    ch.send(b"\x01\x01\x04\x01\x06\x00")
    assert ch.recv(16) == bytes([1, 3, 0, 0])
    assert ask(b"app1", b"inside") == (bytes([1, 0, 0, 0]), 1)
    for c in chans:
        c.close()
    world.wait_log("broker: refused a socket in compartment outside for a session from app2")
    # stpd still serves.
    assert world.curl(world.app1, "127.0.0.1", "http://10.81.9.2/") == (0, "10.81.9.2:80\n")


def test_reload_changes_crossings_and_keeps_sessions(world):
    world.start(world.conf())
    assert world.curl(world.app2, "127.0.0.2", "http://10.81.8.2/")[0] != 0

    def open_session():
        s = socket.create_connection(("127.0.0.1", 1080), timeout=5)
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("10.81.9.2") + (80).to_bytes(2, "big"))
        assert s.recv(10)[:2] == b"\x05\x00"
        return s

    held = world.app1.run(open_session)
    with open(world.conf_path, "w") as f:
        f.write(world.conf("request pass { from-compartment app2; to-compartment outside; "
                           "to 10.81.8.2; port 80 }"))
    os.kill(world.stpd.pid, signal.SIGHUP)
    world.wait_log("broker: policy reloaded")
    assert world.curl(world.app2, "127.0.0.2", "http://10.81.8.2/") == (0, "10.81.8.2:80\n")
    held.settimeout(5)
    held.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = held.recv(4096)
        if not chunk:
            break
        data += chunk
    held.close()
    assert data.endswith(b"10.81.9.2:80\n")


class UdpEcho:
    def __init__(self, ns, ip, port):
        self.sock = ns.run(self._open, ip, port)
        threading.Thread(target=self._loop, daemon=True).start()

    @staticmethod
    def _open(ip, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((ip, port))
        return s

    def _loop(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
                self.sock.sendto(b"echo:" + data, peer)
            except OSError:
                return

    def close(self):
        self.sock.close()


def test_udp_associate_crosses_as_its_rule_says(world):
    # Datagrams: to and from 10.81.9.2:7 only. The request itself has no
    # destination yet, so only the last rule (without `to`) matches it.
    rules = ("request pass { from-compartment app1; to-compartment inside; "
             "command udpassociate udpreply; to 10.81.9.2; port 7 }\n"
             "request block { command udpassociate udpreply; to 0.0.0.0/0 }\n"
             "request pass { from-compartment app1; to-compartment inside; "
             "command udpassociate }")
    world.servers.append(UdpEcho(world.inside, "10.81.9.2", 7))
    world.start(world.conf(rules))

    def associate():
        c = socket.create_connection(("127.0.0.1", 1080), timeout=5)
        c.sendall(b"\x05\x01\x00")
        assert c.recv(2) == b"\x05\x00"
        c.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
        rep = c.recv(10)
        assert rep[:2] == b"\x05\x00", rep
        bnd = (socket.inet_ntoa(rep[4:8]), int.from_bytes(rep[8:10], "big"))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(5)
        hdr = b"\x00\x00\x00\x01" + socket.inet_aton("10.81.9.2") + (7).to_bytes(2, "big")
        u.sendto(hdr + b"hello", bnd)
        data = u.recv(2048)
        # Not allowed: port 9 of the same host; nothing comes back.
        u.sendto(b"\x00\x00\x00\x01" + socket.inet_aton("10.81.9.2") + (9).to_bytes(2, "big")
                 + b"x", bnd)
        return c, u, bnd, data

    c, u, bnd, data = world.app1.run(associate)
    try:
        assert bnd[0] == "127.0.0.1"  # the client side is in app1
        assert data == hdr_expect() + b"echo:hello", data
        text = world.wait_log("target=10.81.9.2:9 ")
    finally:
        u.close()
        c.close()
    assert re.search(r"deny .*cmd=udpassociate target=10\.81\.9\.2:9 .*"
                     r"compartment=app1->app1", text), text
    text = world.wait_log("result=\"control connection closed\"")
    assert re.search(r"session .*listener=app1-l .*cmd=udpassociate .*"
                     r"compartment=app1->inside", text), text


def hdr_expect():
    return b"\x00\x00\x00\x01" + socket.inet_aton("10.81.9.2") + (7).to_bytes(2, "big")


def test_one_stpd_per_compartment(world, tmp_path):
    """Model 1: a plain stpd started inside one namespace (what
    contrib/stpd@.service does with NetworkNamespacePath=) serves that
    namespace only."""
    conf = tmp_path / "inside.conf"
    conf.write_text("listen 10.81.9.2:1081\nclient pass { from 10.81.9.0/24 }\nrequest pass\n")
    log = open(str(tmp_path / "inside.log"), "w+")
    p = world.inside.popen([_stpd(), "-c", str(conf)], stdout=log, stderr=log,
                           stdin=subprocess.DEVNULL)
    world.procs.append(p)
    deadline = time.time() + 10
    while "ready" not in open(str(tmp_path / "inside.log")).read():
        assert p.poll() is None and time.time() < deadline, open(str(tmp_path / "inside.log")).read()
        time.sleep(0.05)
    r = subprocess.run(["ip", "netns", "exec", world.inside.name, "curl", "-s", "-m", "5",
                        "--proxy", "socks5h://10.81.9.2:1081", "http://10.81.9.3/"],
                       stdout=subprocess.PIPE, timeout=30)
    assert (r.returncode, r.stdout) == (0, b"10.81.9.3:80\n")
    # It cannot bridge: the outside network is not in its namespace.
    r = subprocess.run(["ip", "netns", "exec", world.inside.name, "curl", "-s", "-m", "5",
                        "--proxy", "socks5h://10.81.9.2:1081", "http://10.81.8.2/"],
                       stdout=subprocess.PIPE, timeout=30)
    assert r.returncode != 0 and r.stdout == b""
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0
