"""Network namespaces and veths a test creates and always removes.

Every interface and address lives inside a namespace made here and goes
away with it: nothing touches the machine's own interfaces or routes.
Topology (Topology below):

    outside  o0 10.77.1.2/24 fd77:1::2/64
               |
    gateway  gwo 10.77.1.1/24 fd77:1::1/64   (stpd; ip_forward off)
             gwi 10.77.2.1/24 fd77:2::1/64
               |
    inside   i0 10.77.2.2-5/24 fd77:2::2/64  (clients)
"""

import ctypes
import itertools
import os
import socket
import subprocess
import threading

import pytest

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_counter = itertools.count()


def _run(*argv):
    r = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.decode().strip()))
    return r.stdout.decode()


class Netns:
    def __init__(self, role):
        self.name = "stpmc-%s-%d-%d" % (role, os.getpid(), next(_counter))
        _run("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args):
        return _run("ip", "-n", self.name, *args)

    def sh(self, *argv):
        """Runs a command inside the namespace and returns its stdout."""
        return _run("ip", "netns", "exec", self.name, *argv)

    def sysctl(self, key, value):
        self.sh("sysctl", "-qw", "%s=%s" % (key, value))

    def read(self, path):
        """A /proc/net file as this namespace sees it."""
        return self.sh("cat", path)

    def popen(self, argv, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name] + list(argv), **kw)

    def run(self, fn, *args):
        """fn(*args) on a thread inside the namespace; sockets it makes stay
        there and may be used from any thread afterwards."""
        box = {}

        def body():
            try:
                fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
                box["v"] = fn(*args)
            except BaseException as e:  # handed to the caller
                box["e"] = e

        t = threading.Thread(target=body, daemon=True)
        t.start()
        t.join(60)
        if t.is_alive():
            raise TimeoutError("call inside %s did not finish" % self.name)
        if "e" in box:
            raise box["e"]
        return box["v"]

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10)


def echo(c):
    """NsTcpServer's default: every byte back until the client's EOF."""
    while True:
        b = c.recv(65536)
        if not b:
            return
        c.sendall(b)


class NsTcpServer:
    """A TCP server on (ip, port) inside ns, run by threads of the test:
    serve(conn) gets each connection on a thread of its own (an OSError
    there ends that connection) and the connection is closed after it.
    serve defaults to echo. close() stops accepting."""

    def __init__(self, ns, ip, port, serve=echo, timeout=30):
        self.serve, self.timeout = serve, timeout
        self.sock = ns.run(self._open, ip, port)
        self.stop = False
        threading.Thread(target=self._loop, daemon=True).start()

    @staticmethod
    def _open(ip, port):
        s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(16)
        # accept() wakes up to see stop: closing the socket would not wake it
        s.settimeout(0.2)
        return s

    def _loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        try:
            c.settimeout(self.timeout)
            self.serve(c)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.sock.close()


def _veth(ns_a, name_a, ns_b, name_b):
    ns_a.ip("link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", ns_b.name)
    ns_a.ip("link", "set", name_a, "up")
    ns_b.ip("link", "set", name_b, "up")


def _addr(ns, dev, *cidrs):
    for c in cidrs:
        extra = ["nodad"] if ":" in c else []
        ns.ip("addr", "add", c, "dev", dev, *extra)


class Topology:
    """outside <-> gateway <-> inside, built in __init__, removed by close()."""

    OUT_IP, OUT_IP2, OUT_IP6 = "10.77.1.2", "10.77.1.3", "fd77:1::2"
    GW_OUT, GW_OUT6 = "10.77.1.1", "fd77:1::1"
    GW_IN, GW_IN6 = "10.77.2.1", "fd77:2::1"
    INSIDE = ["10.77.2.2", "10.77.2.3", "10.77.2.4", "10.77.2.5"]
    IN_IP6 = "fd77:2::2"

    def __init__(self):
        self.spaces = []
        self.clients = []  # objects with close(), closed before the server stops
        try:
            self.outside = self._ns("out")
            self.gateway = self._ns("gw")
            self.inside = self._ns("in")
        except (RuntimeError, FileNotFoundError) as e:
            self.close()
            pytest.skip("cannot create network namespaces: %s" % e)
        try:
            _veth(self.gateway, "gwo", self.outside, "o0")
            _veth(self.gateway, "gwi", self.inside, "i0")
            _addr(self.outside, "o0", self.OUT_IP + "/24", self.OUT_IP2 + "/24",
                  self.OUT_IP6 + "/64")
            _addr(self.gateway, "gwo", self.GW_OUT + "/24", self.GW_OUT6 + "/64")
            _addr(self.gateway, "gwi", self.GW_IN + "/24", self.GW_IN6 + "/64")
            _addr(self.inside, "i0", *[a + "/24" for a in self.INSIDE], self.IN_IP6 + "/64")
            # The gateway routes nothing: inside and outside meet only in stpd.
            self.gateway.sysctl("net.ipv4.ip_forward", 0)
            self.gateway.sysctl("net.ipv6.conf.all.forwarding", 0)
        except BaseException:
            self.close()
            raise

    def _ns(self, role):
        ns = Netns(role)
        self.spaces.append(ns)
        return ns

    def ifindex(self, ns, dev):
        import socket
        return ns.run(socket.if_nametoindex, dev)

    def close(self):
        for ns in self.spaces:
            ns.close()
        self.spaces = []
