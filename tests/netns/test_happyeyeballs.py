"""CONNECT to a name with several addresses: Happy Eyeballs v2 (RFC 8305)
in stpd, against blackholed (nft drop: no RST, no ICMP) and refused
addresses. stpd runs in the gateway namespace with a dnsmasq of its own
(127.0.0.1:5353 there) that knows the test names; the targets are echo
servers in the outside namespace; the client is in the inside namespace.

    inside 10.77.2.2 --> stpd 10.77.2.1:1080 (gateway) --> outside
                                                 10.77.1.2, 10.77.1.3, fd77:1::2

Needs root. Environment: STPD (default: build-mcast/, then build/).
"""

import os
import re
import socket
import struct
import subprocess
import threading
import time

import pytest

PORT = 7000
V6, V4, V4B = "fd77:1::2", "10.77.1.2", "10.77.1.3"
HOSTS = {"dual.test": [V6, V4], "two.test": [V4, V4B]}
DELAY = 0.25  # the default connect-attempt-delay, seconds


class Echo:
    """Echo servers on the outside addresses given (PORT on each)."""

    def __init__(self, ns, addrs):
        self.socks = [ns.run(self._open, a) for a in addrs]
        for s in self.socks:
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    @staticmethod
    def _open(addr):
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, PORT))
        s.listen(16)
        return s

    @staticmethod
    def _serve(c):
        with c:
            while True:
                d = c.recv(4096)
                if not d:
                    return
                c.sendall(d)

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def close(self):
        for s in self.socks:
            s.shutdown(socket.SHUT_RDWR)
            s.close()


def _recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("closed after %r" % b)
        b += d
    return b


def socks_connect(topo, name, port=PORT):
    """CONNECT to name:port from the inside namespace. Returns (rep,
    seconds from request to reply, echoed bytes or None)."""
    def body():
        s = socket.create_connection((topo.GW_IN, 1080), timeout=30)
        with s:
            s.sendall(b"\x05\x01\x00")
            assert _recv_exact(s, 2) == b"\x05\x00"
            req = b"\x05\x01\x00\x03" + bytes([len(name)]) + name.encode() + \
                struct.pack("!H", port)
            t0 = time.monotonic()
            s.sendall(req)
            head = _recv_exact(s, 4)
            took = time.monotonic() - t0
            assert head[0] == 5
            if head[1] != 0:
                return head[1], took, None
            _recv_exact(s, {1: 4, 4: 16}[head[3]] + 2)
            s.sendall(b"he-ping-0f7a")
            return 0, took, _recv_exact(s, 12)
    return topo.inside.run(body)


@pytest.fixture
def world(topo, stpd, tmp_path):
    """start(delay_ms=None, connect=30) -> Stpd with the resolver; drop(*addrs)
    blackholes PORT on those addresses (from the gateway)."""
    hosts = os.path.join(str(tmp_path), "hosts")
    with open(hosts, "w") as f:
        for name, addrs in HOSTS.items():
            for a in addrs:
                f.write("%s %s\n" % (a, name))
    log = open(os.path.join(str(tmp_path), "dnsmasq.log"), "wb")
    dns = topo.gateway.popen(
        ["dnsmasq", "--no-daemon", "--port=5353", "--listen-address=127.0.0.1",
         "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll", "--addn-hosts=" + hosts,
         "--local=/#/", "--pid-file=", "--user=root", "--group=root", "--cache-size=0"],
        stdout=log, stderr=subprocess.STDOUT)
    w = type("World", (), {})()

    def start(delay_ms=None, connect=30):
        t = "timeouts { connect %d%s }\n" % (
            connect, "; connect-attempt-delay %d" % delay_ms if delay_ms else "")
        w.stpd = stpd("listen %s:1080\nresolver 127.0.0.1:5353\nlog { level debug }\n%s"
                      "client pass { from 10.77.2.0/24 }\nrequest pass\n" % (topo.GW_IN, t))
        return w.stpd

    def drop(*addrs):
        rules = ["table inet he {", " chain out {", "  type filter hook output priority 0;"]
        for a in addrs:
            rules.append("  %s daddr %s tcp dport %d drop" % ("ip6" if ":" in a else "ip", a, PORT))
        path = os.path.join(str(tmp_path), "drop.nft")
        with open(path, "w") as f:
            f.write("\n".join(rules + [" }", "}"]) + "\n")
        topo.gateway.sh("nft", "-f", path)

    def syn_sent():
        """Connections of stpd still trying: each is an open socket."""
        return topo.gateway.sh("ss", "-Htn", "state", "syn-sent").strip()

    def attempts():
        return re.findall(r"connect attempt (\d+) of (\d+) to (\S+)", w.stpd.text())

    w.start, w.drop, w.syn_sent, w.attempts = start, drop, syn_sent, attempts
    yield w
    dns.terminate()
    dns.wait(10)
    log.close()


def _no_syn_sent(w):
    deadline = time.time() + 5
    while w.syn_sent() and time.time() < deadline:
        time.sleep(0.05)
    assert w.syn_sent() == "", "an attempt was left running:\n" + w.syn_sent()


@pytest.mark.parametrize("delay_ms", [None, 1000])
def test_ipv6_blackholed_ipv4_wins(topo, world, delay_ms):
    """AAAA first (RFC 8305 section 4), dropped: IPv4 starts after the
    attempt delay and wins long before the 30 s connect timeout; the IPv6
    attempt is closed."""
    topo.clients.append(Echo(topo.outside, [V6, V4]))
    world.start(delay_ms)
    world.drop(V6)
    rep, took, echoed = socks_connect(topo, "dual.test")
    assert (rep, echoed) == (0, b"he-ping-0f7a")
    delay = (delay_ms or DELAY * 1000) / 1000
    assert delay <= took < delay + 4.5, took
    assert world.attempts() == [("1", "2", "[%s]:%d" % (V6, PORT)),
                                ("2", "2", "%s:%d" % (V4, PORT))]
    _no_syn_sent(world)


def test_two_ipv4_first_blackholed(topo, world):
    """Two A records, the first as answered dropped: the second wins."""
    topo.clients.append(Echo(topo.outside, [V4, V4B]))
    world.start()
    rep, _, _ = socks_connect(topo, "two.test")
    assert rep == 0
    first = world.attempts()[0][2]
    assert first in ("%s:%d" % (V4, PORT), "%s:%d" % (V4B, PORT))
    world.drop(first.rsplit(":", 1)[0])
    rep, took, echoed = socks_connect(topo, "two.test")
    assert (rep, echoed) == (0, b"he-ping-0f7a")
    assert DELAY <= took < 5, took
    second = world.attempts()[1:]
    assert [a[2] for a in second] == [first, ({"%s:%d" % (V4, PORT), "%s:%d" % (V4B, PORT)} -
                                              {first}).pop()]
    _no_syn_sent(world)


def test_all_blackholed_times_out(topo, world):
    """Every address dropped: the overall connect timeout (2 s here) still
    bounds the attempts, and the reply is X'06' (TTL expired)."""
    topo.clients.append(Echo(topo.outside, [V6, V4]))
    world.start(connect=2)
    world.drop(V6, V4)
    rep, took, _ = socks_connect(topo, "dual.test")
    assert rep == 0x06
    assert 1.9 <= took < 8, took
    assert len(world.attempts()) == 2
    world.stpd.wait_log("connect to dual.test:%d timed out" % PORT)
    _no_syn_sent(world)


def test_refused_first_moves_on_at_once(topo, world):
    """Nothing listens on the IPv6 address: its RST starts the IPv4 attempt
    at once, not after the (2 s here) attempt delay."""
    topo.clients.append(Echo(topo.outside, [V4]))
    world.start(delay_ms=2000)
    rep, took, echoed = socks_connect(topo, "dual.test")
    assert (rep, echoed) == (0, b"he-ping-0f7a")
    assert took < 1.5, took
    assert [a[2] for a in world.attempts()] == ["[%s]:%d" % (V6, PORT), "%s:%d" % (V4, PORT)]
    world.stpd.wait_log("connect attempt failed: Connection refused")


def test_all_refused_x05(topo, world):
    """Every address refuses: X'05' at once."""
    world.start(delay_ms=2000)
    rep, took, _ = socks_connect(topo, "dual.test")
    assert rep == 0x05
    assert took < 1.5, took
    world.stpd.wait_log("connect to dual.test:%d failed: Connection refused" % PORT)
