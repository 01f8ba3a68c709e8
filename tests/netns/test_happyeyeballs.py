"""A name with several addresses: Happy Eyeballs v2 (RFC 8305) in stpd's
CONNECT and in libstp's connection to the proxy (the stp command), against
blackholed (nft drop: no RST, no ICMP) and refused addresses. stpd runs in the gateway namespace with a dnsmasq of its own
(127.0.0.1:5353 there) that knows the test names; the targets are echo
servers in the outside namespace; the client is in the inside namespace.

    inside 10.77.2.2 --> stpd 10.77.2.1:1080 (gateway) --> outside
                                                 10.77.1.2, 10.77.1.3, fd77:1::2

For libstp, stp runs in the inside namespace with a hosts file of its own
(/etc/netns/NAME/hosts, which `ip netns exec` mounts over /etc/hosts) that
gives the proxy's name two addresses of the gateway.

Needs root. Environment: STPD (default: build-mcast/, then build/); STP_BIN
(default: src/cli/stp next to stpd's build).
"""

import os
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

import netns

PORT = 7000
V6, V4, V4B = "fd77:1::2", "10.77.1.2", "10.77.1.3"
# mixed.test: the gateway has no route to 2001:db8::/32 (ENETUNREACH at
# once) and nothing listens on V4 in that test (refused).
HOSTS = {"dual.test": [V6, V4], "two.test": [V4, V4B],
         "mixed.test": ["2001:db8::1", V4, "2001:db8::2"]}
DELAY = 0.25  # the default connect-attempt-delay, seconds


def echo(topo, addrs):
    """Echo servers on the outside addresses given (PORT on each)."""
    topo.clients += [netns.NsTcpServer(topo.outside, a, PORT) for a in addrs]


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

    def start(delay_ms=None, connect=30, listen=()):
        t = "timeouts { connect %d%s }\n" % (
            connect, "; connect-attempt-delay %d" % delay_ms if delay_ms else "")
        more = "".join("listen %s:1080\n" % ("[%s]" % a if ":" in a else a) for a in listen)
        w.stpd = stpd("listen %s:1080\n%sresolver 127.0.0.1:5353\nlog { level debug }\n%s"
                      "client pass { from 10.77.2.0/24 fd77:2::/64 }\nrequest pass\n"
                      % (topo.GW_IN, more, t))
        return w.stpd

    def drop(*addrs, ns=topo.gateway, port=PORT):
        """Blackholes port on addrs, in ns's output path."""
        rules = ["table inet he {", " chain out {", "  type filter hook output priority 0;"]
        for a in addrs:
            rules.append("  %s daddr %s tcp dport %d drop" % ("ip6" if ":" in a else "ip", a, port))
        path = os.path.join(str(tmp_path), "drop.nft")
        with open(path, "w") as f:
            f.write("\n".join(rules + [" }", "}"]) + "\n")
        ns.sh("nft", "-f", path)

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


def stp_bin():
    if os.environ.get("STP_BIN"):
        return os.environ["STP_BIN"]
    from conftest import stpd_binary
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(stpd_binary()))))
    p = os.path.join(build, "src", "cli", "stp")
    if not os.path.exists(p):
        pytest.skip("no stp binary (set STP_BIN=)")
    return p


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
    echo(topo, [V6, V4])
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
    echo(topo, [V4, V4B])
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
    echo(topo, [V6, V4])
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
    echo(topo, [V4])
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



def test_refusal_beats_no_route(topo, world):
    """Tried in the order [2001:db8::1] (no route), 10.77.1.2 (refused),
    [2001:db8::2] (no route): the reply is the target's refusal X'05', not
    X'03' from the last error, which only says this host has no route."""
    world.start()
    rep, took, _ = socks_connect(topo, "mixed.test")
    assert rep == 0x05
    assert took < 1.5, took
    assert [a[2] for a in world.attempts()] == ["[2001:db8::1]:%d" % PORT, "%s:%d" % (V4, PORT),
                                                "[2001:db8::2]:%d" % PORT]
    world.stpd.wait_log("connect to mixed.test:%d failed: Connection refused" % PORT)

# ---- libstp: the proxy given by a name with two addresses ----

GW_IN_B = "10.77.2.9"  # a second inside address of the gateway
PROXY_HOSTS = {"dual": ["fd77:2::1", "10.77.2.1"], "two": ["10.77.2.1", GW_IN_B]}


@pytest.fixture
def proxy_name(topo, world):
    """Writes the inside namespace's hosts file: proxy.test -> the pair;
    starts stpd on all of them. Returns the addresses in the order
    getaddrinfo hands them to stp."""
    etc = "/etc/netns/" + topo.inside.name
    os.makedirs(etc, exist_ok=True)
    topo.gateway.ip("addr", "add", GW_IN_B + "/24", "dev", "gwi")

    def make(pair):
        with open(etc + "/hosts", "w") as f:
            for a in PROXY_HOSTS[pair]:
                f.write("%s proxy.test\n" % a)
        world.start(listen=[a for a in PROXY_HOSTS[pair] if a != topo.GW_IN])
        got = topo.inside.sh("getent", "ahostsv4" if pair == "two" else "ahosts", "proxy.test")
        order = []
        for line in got.splitlines():
            a = line.split()[0]
            if a not in order:
                order.append(a)
        assert sorted(order) == sorted(PROXY_HOSTS[pair]), got
        return order
    yield make
    shutil.rmtree(etc, ignore_errors=True)


def stp_connect(topo, *args, timeout="30"):
    argv = ["ip", "netns", "exec", topo.inside.name, stp_bin(), "-v", "--timeout", timeout,
            "--proxy", "socks5://proxy.test:1080", "connect", V4, str(PORT)] + list(args)
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in ("STP_PROXY", "ALL_PROXY", "NO_PROXY", "LD_PRELOAD")}
    t0 = time.monotonic()
    r = subprocess.run(argv, input=b"he-stp-91c2\n", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, env=env)
    return r, time.monotonic() - t0


def _tried(stderr):
    return re.findall(r"connect to proxy (\S+): (.*)", stderr.decode())


def _sa(a):
    return "[%s]:1080" % a if ":" in a else "%s:1080" % a


@pytest.mark.parametrize("pair", ["dual", "two"])
def test_stp_proxy_first_address_blackholed(topo, world, proxy_name, pair):
    """stp --proxy socks5://proxy.test:1080: the first address drops the
    SYN; the second, started after 250 ms, carries the session."""
    echo(topo, [V4])
    first, second = proxy_name(pair)
    world.drop(first, ns=topo.inside, port=1080)
    r, took = stp_connect(topo)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"he-stp-91c2\n"
    assert DELAY <= took < 5, took
    assert _tried(r.stderr) == [(_sa(first), "abandoned, another address connected"),
                                (_sa(second), "connected")], r.stderr


def test_stp_proxy_all_blackholed_times_out(topo, world, proxy_name):
    """Both addresses drop: --timeout still bounds the attempts (exit 6)."""
    first, second = proxy_name("dual")
    world.drop(first, second, ns=topo.inside, port=1080)
    r, took = stp_connect(topo, timeout="2")
    assert r.returncode == 6, r.stderr
    assert 1.9 <= took < 8, took
    assert sorted(_tried(r.stderr)) == sorted([(_sa(first), "timed out"),
                                               (_sa(second), "timed out")]), r.stderr
