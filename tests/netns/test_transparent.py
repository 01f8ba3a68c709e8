"""TRANSPARENT (CMD X'04', seed 003) with the user-space engine: the client
sends plain datagrams or a plain TCP connection from S.ADDR:S.PORT to BND;
stpd relays them to DST and back.

    inside  10.77.2.2-5, fd77:2::2 (clients)  --+
                                                 gateway 10.77.2.1 / 10.77.3.1 (stpd)
    second  10.77.3.2 (another client host)   --+         |
                                                 outside 10.77.1.2, fd77:1::2 (targets)

With engine user the gateway does not forward: anything that reaches a
target went through stpd. With the kernel and remote engines it forwards,
and the engine's nftables table (forward policy drop) lets the pinholes
through and nothing else. Engine remote over TLS puts stpd on a control
host of its own (10.77.5.1 toward the clients, 10.77.6.2 toward the relay
at 10.77.6.1). Needs root.
"""

import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import netns
import services

pytestmark = pytest.mark.stpd_module("transparent")

UDP_PORT, TCP_PORT = 7001, 7002
TCP, UDP = 6, 17
QUIET = 0.5  # how long "nothing arrives" is watched for, seconds


# ---- the targets (outside) ----

class UdpEcho:
    """Echoes every datagram and records (source, payload)."""

    def __init__(self, ns, addr):
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.sock = ns.run(self._open, fam, addr)
        self.seen = []
        threading.Thread(target=self._loop, daemon=True).start()

    @staticmethod
    def _open(fam, addr):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((addr, UDP_PORT))
        return s

    def _loop(self):
        while True:
            try:
                d, src = self.sock.recvfrom(65535)
            except OSError:
                return
            self.seen.append((src[0], src[1], d))
            self.sock.sendto(d, src)

    def close(self):
        self.sock.close()


class TcpTarget:
    """Echoes; a line "FIN" makes it send its FIN (shutdown) and wait."""

    def __init__(self, ns, addr):
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.sock = ns.run(self._open, fam, addr)
        self.conns = []   # peers accepted
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def _open(fam, addr):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, TCP_PORT))
        s.listen(16)
        return s

    def _accept(self):
        while True:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            self.conns.append(peer)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c:
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    break
                if not d:
                    break
                if d == b"FIN\n":
                    c.shutdown(socket.SHUT_WR)
                    continue
                c.sendall(d)
        self.closed.set()

    def close(self):
        self.sock.close()


# ---- the client side, raw SOCKS ----

def _recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += d
    return b


def _addr(host, port):
    if host.replace(".", "").isdigit():
        return b"\x01" + socket.inet_aton(host) + struct.pack(">H", port)
    if ":" in host:
        return b"\x04" + socket.inet_pton(socket.AF_INET6, host) + struct.pack(">H", port)
    return b"\x03" + bytes([len(host)]) + host.encode() + struct.pack(">H", port)


def transparent(ns, proxy, ptcl, dst, src, src_raw=None):
    """Opens a control connection from ns and asks for an association.
    Returns (control socket, REP, (BND host, BND port))."""
    def body():
        c = socket.create_connection(proxy, timeout=10)
        c.sendall(b"\x05\x01\x00")
        assert _recv_exact(c, 2) == b"\x05\x00"
        trailer = bytes([ptcl]) + (src_raw if src_raw is not None else _addr(*src))
        c.sendall(b"\x05\x04\x00" + _addr(*dst) + trailer)
        head = _recv_exact(c, 4)
        assert head[0] == 5 and head[2] == 0
        if head[3] == 1:
            host = socket.inet_ntoa(_recv_exact(c, 4))
        elif head[3] == 4:
            host = socket.inet_ntop(socket.AF_INET6, _recv_exact(c, 16))
        else:
            raise AssertionError("ATYP %d" % head[3])
        port = struct.unpack(">H", _recv_exact(c, 2))[0]
        return c, head[1], (host, port)
    c, rep, bnd = ns.run(body)
    _opened.append(c)
    return c, rep, bnd


_opened = []  # control connections, closed at teardown before stpd stops


def udp_sock(ns, addr, port=0):
    def body():
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, port))
        s.settimeout(5)
        return s
    return ns.run(body)


def tcp_sock(ns, addr, port=0):
    def body():
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.settimeout(5)
        return s
    return ns.run(body)


def control_closed(c, timeout=5):
    c.settimeout(timeout)
    try:
        return c.recv(1) == b""
    except ConnectionResetError:
        return True


# ---- fixtures ----

# Every case runs with engine user and engine kernel; those marked
# tp_remote also with engine remote: stp-relayd in the gateway namespace,
# reached over a Unix socket by an stpd beside it (remote-unix), or over
# mutual TLS by an stpd in a namespace of its own (remote-tls: another
# host, seed 003's "different domains").
ENGINES = ["user", "kernel"]
REMOTE = ["remote-unix", "remote-tls"]
tp_remote = pytest.mark.tp_remote
CTL_IN, CTL_IN6, CTL_GW, GW_CTL = "10.77.5.1", "fd77:5::1", "10.77.6.2", "10.77.6.1"


def pytest_generate_tests(metafunc):
    if "engine" in metafunc.fixturenames:
        e = ENGINES + (REMOTE if metafunc.definition.get_closest_marker("tp_remote") else [])
        metafunc.parametrize("engine", e)


def _remote_tls_host(topo):
    """The control host: stpd runs there, linked to the inside (clients
    reach it) and to the gateway (it reaches stp-relayd)."""
    ctl = netns.Netns("ct")
    topo.spaces.append(ctl)
    netns._veth(topo.inside, "ic", ctl, "ci")
    netns._addr(topo.inside, "ic", "10.77.5.2/24", "fd77:5::2/64")
    netns._addr(ctl, "ci", CTL_IN + "/24", CTL_IN6 + "/64")
    netns._veth(topo.gateway, "gc", ctl, "cg")
    netns._addr(topo.gateway, "gc", GW_CTL + "/24")
    netns._addr(ctl, "cg", CTL_GW + "/24")
    # the relay reaches the clients' control-link address through the inside
    # host: `stp transparent` declares that address as S
    topo.gateway.ip("route", "add", "10.77.5.0/24", "via", topo.INSIDE[0])
    deadline = time.time() + 10  # IPv6 DAD on the new link
    while "tentative" in ctl.sh("ip", "-6", "addr", "show", "dev", "ci"):
        assert time.time() < deadline
        time.sleep(0.05)
    return ctl


@pytest.fixture
def world(topo, stpd, tmp_path, engine):
    """Targets outside, a second client host, stpd with a resolver that
    knows target.test; start(extra_conf, tp=transparent keys) -> Stpd."""
    from test_tp_engines import make_pki
    from tp_topo import Relayd
    w = type("World", (), {})()
    w.engine = engine
    w.kernel = engine != "user"  # the data path is nftables (stpd's or stp-relayd's)
    w.table = {"user": None, "kernel": "stpd_tp"}.get(engine, "stp_relayd")
    w.relayd = None
    second = netns.Netns("c2")
    topo.spaces.append(second)
    netns._veth(topo.gateway, "gwj", second, "j0")
    netns._addr(topo.gateway, "gwj", "10.77.3.1/24")
    netns._addr(second, "j0", "10.77.3.2/24")
    second.ip("route", "add", "default", "via", "10.77.3.1")
    topo.inside.ip("route", "add", "10.77.3.0/24", "via", topo.GW_IN)
    w.stpd_ns, w.proxy, w.proxy6, w.proxy2 = (topo.gateway, (topo.GW_IN, 1080),
                                              (topo.GW_IN6, 1080), ("10.77.3.1", 1080))
    w.tp_conf = "engine user\n"
    if w.kernel:
        # the gateway forwards, but only the pinholes: the engine's table
        # has a forward chain with policy drop
        topo.gateway.sysctl("net.ipv4.ip_forward", 1)
        topo.gateway.sysctl("net.ipv6.conf.all.forwarding", 1)
        w.tp_conf = "engine kernel\n"
    if engine == "remote-unix":
        # stpd's workers connect as the account stpd drops to (stpd, else
        # nobody): the socket is theirs, in a directory they may search.
        import pwd
        import tempfile
        sock_dir = tempfile.mkdtemp(prefix="stprelay")
        os.chmod(sock_dir, 0o755)
        w.sock_dir = sock_dir
        owner = "nobody"
        try:
            owner = pwd.getpwnam("stpd").pw_name
        except KeyError:
            pass
        path = os.path.join(sock_dir, "relay.sock")
        w.relayd = Relayd(type("T", (), {"relay": topo.gateway}), str(tmp_path),
                          ["-l", "unix:" + path, "--socket-owner", owner])
        w.tp_conf = "engine remote\nrelay unix:%s\n" % path
    elif engine == "remote-tls":
        w.stpd_ns = _remote_tls_host(topo)
        w.proxy, w.proxy6, w.proxy2 = (CTL_IN, 1080), (CTL_IN6, 1080), None
        p = make_pki(str(tmp_path), GW_CTL)
        w.relayd = Relayd(type("T", (), {"relay": topo.gateway}), str(tmp_path),
                          ["-l", "%s:7443" % GW_CTL, "--cert", p("relay.pem"), "--key",
                           p("relay.key"), "--ca", p("ca.pem")])
        w.tp_conf = ("engine remote\nrelay %s:7443\nrelay-tls-ca %s\nrelay-tls-cert %s\n"
                     "relay-tls-key %s\n" % (GW_CTL, p("ca.pem"), p("control.pem"),
                                             p("control.key")))
    hosts = os.path.join(str(tmp_path), "hosts")
    with open(hosts, "w") as f:
        f.write("%s target.test\n%s target6.test\n" % (topo.OUT_IP, topo.OUT_IP6))
    log = open(os.path.join(str(tmp_path), "dnsmasq.log"), "wb")
    dns = w.stpd_ns.popen(
        ["dnsmasq", "--no-daemon", "--port=5353", "--listen-address=127.0.0.1",
         "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll", "--addn-hosts=" + hosts,
         "--local=/#/", "--pid-file=", "--user=root", "--group=root", "--cache-size=0"],
        stdout=log, stderr=subprocess.STDOUT)
    w.second = second
    w.udp = UdpEcho(topo.outside, topo.OUT_IP)
    w.udp6 = UdpEcho(topo.outside, topo.OUT_IP6)
    w.tcp = TcpTarget(topo.outside, topo.OUT_IP)
    w.tcp6 = TcpTarget(topo.outside, topo.OUT_IP6)

    def start(extra="request pass\n", tp=""):
        if engine == "remote-tls":
            listen = "listen %s:1080\nlisten [%s]:1080\n" % (CTL_IN, CTL_IN6)
        else:
            listen = "listen %s:1080\nlisten [%s]:1080\nlisten 10.77.3.1:1080\n" % (
                topo.GW_IN, topo.GW_IN6)
        # Every engine runs dropped to stpd's default account; engine
        # kernel's workers keep CAP_NET_ADMIN (test_engine_privileges).
        w.stpd = stpd("%sresolver 127.0.0.1:5353\nlog { level debug }\n"
                      "client pass { from 10.77.2.0/24 10.77.3.0/24 fd77:2::/64 "
                      "10.77.5.0/24 fd77:5::/64 }\ntransparent {\n%s%s}\n%s"
                      % (listen, w.tp_conf, tp, extra), ns=w.stpd_ns, addr=w.proxy)
        return w.stpd
    w.start = start
    yield w
    while _opened:
        _opened.pop().close()
    for t in (w.udp, w.udp6, w.tcp, w.tcp6):
        t.close()
    dns.terminate()
    dns.wait(10)
    log.close()
    if w.relayd:
        rc = w.relayd.stop()
        text = w.relayd.text()
        assert rc == 0 and "Sanitizer" not in text and "runtime error:" not in text, text
    if getattr(w, "sock_dir", None):
        import shutil
        shutil.rmtree(w.sock_dir, ignore_errors=True)


def ip_bytes(w, payload, pkts, v6=False):
    """What the association's counters say for UDP: payload bytes with the
    user engine, IP-layer bytes (IP and UDP headers included) with
    nftables (docs/protocol.md 5.8)."""
    return payload + (pkts * (48 if v6 else 28) if w.kernel else 0)


def assert_no_pinhole(topo, w, sport):
    """With nftables: no rule, set element or counter left in the engine's
    table, and the association's translated conntrack entry gone (a probe
    sent afterwards may leave an untranslated entry of its own, without the
    relay's mark)."""
    if not w.table:
        return
    t = topo.gateway.sh("nft", "list", "table", "inet", w.table)
    assert "goto r" not in t and "counter up_" not in t and " . %d . " % sport not in t, t
    for proto in ("udp", "tcp"):
        r = subprocess.run(["ip", "netns", "exec", topo.gateway.name, "conntrack", "-L", "-p",
                            proto, "--orig-port-src", str(sport)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        for line in r.stdout.decode().splitlines():
            assert "mark=0 " in line, line
            assert "src=%s " % topo.OUT_IP not in line and "src=%s " % topo.OUT_IP6 not in line, \
                line


def quiet_after(seen, action):
    """Runs action and checks nothing new reaches the target for QUIET s."""
    before = len(seen)
    action()
    time.sleep(QUIET)
    assert len(seen) == before, seen[before:]


# ---- UDP ----

@tp_remote
def test_udp_v4_pinned_and_torn_down(topo, world):
    """Datagrams from S.ADDR:S.PORT reach DST and its answers come back
    from BND; another port and another address are dropped; after the
    control connection closes nothing passes."""
    st = world.start()
    cli = udp_sock(topo.inside, "10.77.2.2")
    sport = cli.getsockname()[1]
    c, rep, bnd = transparent(topo.inside, world.proxy, UDP, (topo.OUT_IP, UDP_PORT),
                              ("10.77.2.2", sport))
    assert rep == 0 and bnd[0] == topo.GW_IN and bnd[1] != 0
    cli.sendto(b"tp-hello", bnd)
    d, frm = cli.recvfrom(100)
    assert d == b"tp-hello" and frm == bnd
    assert world.udp.seen[-1][2] == b"tp-hello" and world.udp.seen[-1][0] == topo.GW_OUT

    other_port = udp_sock(topo.inside, "10.77.2.2")
    other_addr = udp_sock(topo.inside, "10.77.2.3")
    quiet_after(world.udp.seen, lambda: (other_port.sendto(b"wrong-port", bnd),
                                         other_addr.sendto(b"wrong-addr", bnd)))
    # the right source still passes afterwards
    cli.sendto(b"again", bnd)
    assert cli.recvfrom(100)[0] == b"again"

    c.close()
    st.wait_log("ended: control connection closed", 10)
    quiet_after(world.udp.seen, lambda: cli.sendto(b"after-close", bnd))
    assert_no_pinhole(topo, world, sport)
    t = st.wait_log("flow id=")
    # both ways, from the engine's counters, and why it ended
    n = ip_bytes(world, 13, 2)
    assert ("ended: control connection closed up=%d bytes/2 pkts down=%d bytes/2 pkts"
            % (n, n) in t), t
    assert 'cmd=transparent target=10.77.1.2:7001 up=%d down=%d' % (n, n) in t
    assert 'rep="succeeded" result="control connection closed"' in t
    assert "cmd=transparent target=10.77.1.2:7001 bound=%s:%d" % bnd in t  # the session line


@tp_remote
def test_udp_v6(topo, world):
    st = world.start()
    cli = udp_sock(topo.inside, topo.IN_IP6)
    c, rep, bnd = transparent(topo.inside, world.proxy6, UDP, (topo.OUT_IP6, UDP_PORT),
                              (topo.IN_IP6, cli.getsockname()[1]))
    assert rep == 0 and bnd[0] == topo.GW_IN6
    cli.sendto(b"v6-ping", bnd)
    assert cli.recvfrom(100)[0] == b"v6-ping"
    assert world.udp6.seen[-1][2] == b"v6-ping"
    c.close()
    n = ip_bytes(world, 7, 1, v6=True)
    st.wait_log("ended: control connection closed up=%d bytes/1 pkts down=%d" % (n, n), 10)
    quiet_after(world.udp6.seen, lambda: cli.sendto(b"after-close", bnd))
    assert_no_pinhole(topo, world, cli.getsockname()[1])


@tp_remote
def test_dst_name_resolved_once(topo, world):
    st = world.start()
    cli = udp_sock(topo.inside, "10.77.2.2")
    c, rep, bnd = transparent(topo.inside, world.proxy, UDP, ("target.test", UDP_PORT),
                              ("10.77.2.2", cli.getsockname()[1]))
    assert rep == 0
    cli.sendto(b"by-name", bnd)
    assert cli.recvfrom(100)[0] == b"by-name"
    assert world.udp.seen[-1][2] == b"by-name"
    st.wait_log("target.test resolved to %s:%d" % (topo.OUT_IP, UDP_PORT))
    c.close()


def test_dst_name_unknown(topo, world):
    world.start()
    cli = udp_sock(topo.inside, "10.77.2.2")
    c, rep, _ = transparent(topo.inside, world.proxy, UDP, ("nothere.test", UDP_PORT),
                            ("10.77.2.2", cli.getsockname()[1]))
    assert rep == 4  # host unreachable
    assert control_closed(c)


def test_unspecified_source_is_the_control_peer(topo, world):
    """S.ADDR 0.0.0.0 means the control connection's address."""
    world.start()
    cli = udp_sock(topo.inside, "10.77.2.2")

    def ctl():
        return socket.create_connection(world.proxy, timeout=10,
                                        source_address=("10.77.2.2", 0))
    c = topo.inside.run(ctl)
    c.sendall(b"\x05\x01\x00")
    assert _recv_exact(c, 2) == b"\x05\x00"
    c.sendall(b"\x05\x04\x00" + _addr(topo.OUT_IP, UDP_PORT) + bytes([UDP]) +
              _addr("0.0.0.0", cli.getsockname()[1]))
    head = _recv_exact(c, 10)
    assert head[1] == 0
    bnd = (socket.inet_ntoa(head[4:8]), struct.unpack(">H", head[8:10])[0])
    cli.sendto(b"zeros", bnd)
    assert cli.recvfrom(100)[0] == b"zeros"
    c.close()


def test_two_sources_kept_apart(topo, world):
    """Associations of two client hosts to one target: each client gets
    only its own answers."""
    st = world.start()
    a = udp_sock(topo.inside, "10.77.2.2")
    b = udp_sock(world.second, "10.77.3.2")
    ca, rep_a, bnd_a = transparent(topo.inside, world.proxy, UDP, (topo.OUT_IP, UDP_PORT),
                                   ("10.77.2.2", a.getsockname()[1]))
    cb, rep_b, bnd_b = transparent(world.second, world.proxy2, UDP,
                                   (topo.OUT_IP, UDP_PORT), ("10.77.3.2", b.getsockname()[1]))
    assert rep_a == 0 and rep_b == 0 and bnd_a != bnd_b
    assert bnd_b[0] == "10.77.3.1"
    for i in range(5):
        a.sendto(b"A%d" % i, bnd_a)
        b.sendto(b"B%d" % i, bnd_b)
    got_a = sorted(a.recvfrom(100)[0] for _ in range(5))
    got_b = sorted(b.recvfrom(100)[0] for _ in range(5))
    assert got_a == [b"A%d" % i for i in range(5)]
    assert got_b == [b"B%d" % i for i in range(5)]
    # B sending to A's BND is dropped (wrong address)
    quiet_after(world.udp.seen, lambda: b.sendto(b"B-to-A", bnd_a))
    ca.close()
    cb.close()
    st.wait_log("up=%d bytes/5 pkts" % ip_bytes(world, 10, 5), 10)


def test_non_ptcl_to_bnd_dropped(topo, world):
    """A TCP connection to a UDP association's BND, and a datagram to a TCP
    association's BND, reach nothing."""
    world.start()
    cli = udp_sock(topo.inside, "10.77.2.2")
    c, rep, bnd = transparent(topo.inside, world.proxy, UDP, (topo.OUT_IP, UDP_PORT),
                              ("10.77.2.2", cli.getsockname()[1]))
    assert rep == 0
    t = tcp_sock(topo.inside, "10.77.2.2", cli.getsockname()[1])
    t.settimeout(1.5)  # nftables drops the SYN: a timeout, not a reset
    with pytest.raises(OSError):
        topo.inside.run(lambda: t.connect(bnd))
    assert world.tcp.conns == []

    ts = tcp_sock(topo.inside, "10.77.2.2")
    c2, rep, tbnd = transparent(topo.inside, world.proxy, TCP, (topo.OUT_IP, TCP_PORT),
                                ("10.77.2.2", ts.getsockname()[1]))
    assert rep == 0
    u = udp_sock(topo.inside, "10.77.2.2", ts.getsockname()[1])
    quiet_after(world.udp.seen, lambda: u.sendto(b"udp-to-tcp-bnd", tbnd))
    c.close()
    c2.close()


# ---- replies ----

def test_ptcl_not_supported(topo, world):
    world.start()
    c, rep, _ = transparent(topo.inside, world.proxy, 132, (topo.OUT_IP, UDP_PORT),
                            ("10.77.2.2", 4000))
    assert rep == 9
    assert control_closed(c)


def test_source_by_name_refused(topo, world):
    world.start()
    c, rep, _ = transparent(topo.inside, world.proxy, UDP, (topo.OUT_IP, UDP_PORT),
                            None, src_raw=b"\x03\x03cli\x0f\xa0")
    assert rep == 8


def test_source_unreachable(topo, world):
    """A source the proxy has no route to: X'03'."""
    world.start()
    c, rep, _ = transparent(topo.inside, world.proxy, UDP, (topo.OUT_IP, UDP_PORT),
                            ("203.0.113.9", 4000))
    assert rep == 3


@tp_remote
def test_rule_refusal(topo, world):
    st = world.start("request block { command transparent; to %s; port %d }\n"
                     "request pass { command transparent; ptcl tcp }\n"
                     % (topo.OUT_IP6, UDP_PORT))
    c, rep, _ = transparent(topo.inside, world.proxy6, UDP, (topo.OUT_IP6, UDP_PORT),
                            (topo.IN_IP6, 4000))
    assert rep == 2
    c, rep, _ = transparent(topo.inside, world.proxy, UDP, (topo.OUT_IP, UDP_PORT),
                            ("10.77.2.2", 4000))
    assert rep == 2  # the rule grants TCP only
    st.wait_log("PTCL udp not granted")
    ts = tcp_sock(topo.inside, "10.77.2.2")
    c, rep, _ = transparent(topo.inside, world.proxy, TCP, (topo.OUT_IP, TCP_PORT),
                            ("10.77.2.2", ts.getsockname()[1]))
    assert rep == 0
    c.close()


# ---- TCP ----

def ended_counts(t, why):
    """(up bytes, down bytes) of the association line that ended for why."""
    import re
    m = re.search(r"ended: %s up=(\d+) bytes/\d+ pkts down=(\d+) bytes" % re.escape(why), t)
    assert m, t
    return int(m.group(1)), int(m.group(2))


def tcp_bytes_ok(w, got, payload):
    """User engine: payload bytes exactly; nftables: IP-layer bytes of every
    segment (SYN, ACKs, FIN included), so more than the payload."""
    return got == payload if not w.kernel else got > payload + 40


@tp_remote
def test_tcp_relay_and_fin(topo, world):
    """A TCP connection from exactly S.ADDR:S.PORT is relayed; one from
    another port is reset; the target's FIN ends the association and
    stpd closes the control connection."""
    st = world.start()
    ts = tcp_sock(topo.inside, "10.77.2.2")
    c, rep, bnd = transparent(topo.inside, world.proxy, TCP, (topo.OUT_IP, TCP_PORT),
                              ("10.77.2.2", ts.getsockname()[1]))
    assert rep == 0 and bnd[0] == topo.GW_IN
    wrong = tcp_sock(topo.inside, "10.77.2.2")

    def wrong_connect():
        wrong.settimeout(1.5)  # user: reset at once; nftables: dropped
        wrong.connect(bnd)
        wrong.settimeout(5)
        return wrong.recv(10)  # reset at once
    with pytest.raises(OSError):
        topo.inside.run(wrong_connect)
    assert world.tcp.conns == []
    topo.inside.run(lambda: ts.connect(bnd))
    ts.sendall(b"hello-tcp")
    assert _recv_exact(ts, 9) == b"hello-tcp"
    assert world.tcp.conns[0][0] == topo.GW_OUT
    ts.sendall(b"FIN\n")
    assert ts.recv(10) == b""   # the target's FIN, passed on
    assert control_closed(c)    # ... ends the association
    t = st.wait_log("ended: fin")
    up, down = ended_counts(t, "fin")
    assert tcp_bytes_ok(world, up, 13) and tcp_bytes_ok(world, down, 9), t
    assert_no_pinhole(topo, world, ts.getsockname()[1])


@tp_remote
def test_tcp_control_close_tears_down(topo, world):
    """Closing the control connection ends an established relay. The user
    engine closes both TCP connections; with nftables the pinhole and the
    conntrack entry go and nothing passes any more, but neither endpoint is
    told at once (docs/protocol.md 5.8)."""
    st = world.start()
    ts = tcp_sock(topo.inside, "fd77:2::2")
    sport = ts.getsockname()[1]
    c, rep, bnd = transparent(topo.inside, world.proxy6, TCP, (topo.OUT_IP6, TCP_PORT),
                              (topo.IN_IP6, ts.getsockname()[1]))
    assert rep == 0
    topo.inside.run(lambda: ts.connect(bnd))
    ts.sendall(b"six")
    assert _recv_exact(ts, 3) == b"six"
    c.close()
    st.wait_log("ended: control connection closed", 10)
    if not world.kernel:
        assert world.tcp6.closed.wait(5)
        try:
            assert ts.recv(10) == b""
        except ConnectionResetError:
            pass
        return
    assert_no_pinhole(topo, world, sport)
    assert not world.tcp6.closed.is_set()
    ts.settimeout(QUIET * 2)
    try:
        ts.sendall(b"after")
        got = ts.recv(10)  # no echo: the segment never reaches the target
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        got = b""
    assert got == b""


def test_tcp_end_on_fin_off(topo, world):
    """end-on-fin no: the target's FIN is passed on, the association stays
    until the client closes too."""
    st = world.start(tp="end-on-fin no\n")
    ts = tcp_sock(topo.inside, "10.77.2.2")
    c, rep, bnd = transparent(topo.inside, world.proxy, TCP, (topo.OUT_IP, TCP_PORT),
                              ("10.77.2.2", ts.getsockname()[1]))
    topo.inside.run(lambda: ts.connect(bnd))
    ts.sendall(b"FIN\n")
    assert ts.recv(10) == b""
    c.settimeout(QUIET)
    with pytest.raises(socket.timeout):
        c.recv(1)  # still open
    ts.shutdown(socket.SHUT_WR)
    st.wait_log("ended: closed", 10)
    assert control_closed(c)


# ---- real programs through `stp transparent` ----

def stp_bin():
    if os.environ.get("STP_BIN"):
        return os.environ["STP_BIN"]
    from conftest import stpd_binary
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(stpd_binary()))))
    p = os.path.join(build, "src", "cli", "stp")
    if not os.path.exists(p):
        pytest.skip("no stp binary (set STP_BIN=)")
    return p


class Proc:
    """A program in a namespace, its stderr in a file; waits for a line."""

    def __init__(self, ns, argv, path):
        self.path = path
        self.out = open(path, "wb")
        self.p = ns.popen(argv, stdin=subprocess.DEVNULL, stdout=self.out,
                          stderr=subprocess.STDOUT)

    def text(self):
        with open(self.path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for(self, needle, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.text():
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("%r not in output:\n%s" % (needle, self.text()))

    def close(self):
        services.stop_process(self.p, 10)
        self.out.close()


@tp_remote
def test_dig_through_stp_transparent(topo, world, tmp_path):
    """dig asks a dnsmasq on the target host, through `stp transparent
    --udp`: its queries cross the proxy as plain datagrams."""
    st = world.start()
    dns = Proc(topo.outside, ["dnsmasq", "--no-daemon", "--port=53",
                              "--listen-address=" + topo.OUT_IP, "--bind-interfaces",
                              "--no-resolv", "--no-hosts", "--no-poll",
                              "--address=/hello.test/192.0.2.55", "--pid-file=",
                              "--user=root", "--group=root", "--log-queries"],
               str(tmp_path / "dnsmasq-target.log"))
    fwd = Proc(topo.inside, [stp_bin(), "transparent", "--udp", "--local", "127.0.0.1:5300",
                             "socks5://%s:1080" % world.proxy[0], "%s:53" % topo.OUT_IP],
               str(tmp_path / "stp.log"))
    topo.clients += [fwd, dns]
    fwd.wait_for("stp: transparent udp 127.0.0.1:5300 -> %s:53 via %s:" % (topo.OUT_IP,
                                                                           topo.GW_IN))
    out = topo.inside.sh("dig", "@127.0.0.1", "-p", "5300", "hello.test", "A", "+short",
                         "+tries=3", "+time=3")
    assert out.strip() == "192.0.2.55"
    # dnsmasq saw the query from the proxy, not from the client
    dns.wait_for("query[A] hello.test from %s" % topo.GW_OUT)
    fwd.close()
    t = st.wait_log("ended: control connection closed", 10)
    assert "transparent" in t and " udp " in t


@tp_remote
def test_curl_through_stp_transparent(topo, world, tmp_path):
    """curl fetches a page from an HTTP server on the target host, through
    `stp transparent --tcp`."""
    st = world.start()
    www = tmp_path / "www"
    www.mkdir()
    (www / "page.txt").write_text("transparent page\n" * 1000)
    http = Proc(topo.outside, ["/usr/bin/python3", "-m", "http.server", "8000", "--bind",
                               topo.OUT_IP, "--directory", str(www)],
                str(tmp_path / "http.log"))
    fwd = Proc(topo.inside, [stp_bin(), "transparent", "--tcp", "--local", "127.0.0.1:8080",
                             "socks5://%s:1080" % world.proxy[0], "%s:8000" % topo.OUT_IP],
               str(tmp_path / "stp.log"))
    topo.clients += [fwd, http]
    fwd.wait_for("listening")

    def http_up():
        s = socket.socket()
        s.settimeout(1)
        try:
            s.connect((topo.OUT_IP, 8000))
            return True
        except OSError:
            return False
        finally:
            s.close()
    deadline = time.time() + 15
    while not topo.outside.run(http_up):
        assert time.time() < deadline, http.text()
        time.sleep(0.1)
    out = topo.inside.sh("curl", "-sS", "--max-time", "10", "http://127.0.0.1:8080/page.txt")
    assert out == "transparent page\n" * 1000
    t = st.wait_log("ended: ", 10)
    assert " tcp " in t
    # the server saw the proxy's address
    http.wait_for('%s - - ' % topo.GW_OUT)


def test_request_in_pieces_and_incomplete(topo, world):
    """The request arrives one byte per write (the trailer after the
    RFC 1928 part): answered as a whole. A trailer that never completes is
    closed without a reply after timeouts { handshake }."""
    st = world.start("timeouts { handshake 1 }\nrequest pass\n")
    cli = udp_sock(topo.inside, "10.77.2.2")
    req = (b"\x05\x04\x00" + _addr(topo.OUT_IP, UDP_PORT) + bytes([UDP]) +
           _addr("10.77.2.2", cli.getsockname()[1]))

    def bytewise():
        c = socket.create_connection(world.proxy, timeout=10)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sendall(b"\x05\x01\x00")
        assert _recv_exact(c, 2) == b"\x05\x00"
        for i in range(len(req)):
            c.sendall(req[i:i + 1])
            time.sleep(0.01)
        return c, _recv_exact(c, 10)
    c, head = topo.inside.run(bytewise)
    _opened.append(c)
    assert head[1] == 0
    bnd = (socket.inet_ntoa(head[4:8]), struct.unpack(">H", head[8:10])[0])
    cli.sendto(b"pieces", bnd)
    assert cli.recvfrom(100)[0] == b"pieces"

    def incomplete():
        c = socket.create_connection(world.proxy, timeout=10)
        c.sendall(b"\x05\x01\x00")
        assert _recv_exact(c, 2) == b"\x05\x00"
        c.sendall(req[:-3])  # S.ADDR cut short
        t0 = time.monotonic()
        assert c.recv(10) == b""  # closed, no reply
        return c, time.monotonic() - t0
    c2, took = topo.inside.run(incomplete)
    _opened.append(c2)
    assert 0.5 < took < 5
    st.wait_log("request incomplete after timeouts { handshake }")


def stpify_bin():
    if os.environ.get("STPIFY"):  # an ASan stpd's tests take the plain build's stpify
        return os.environ["STPIFY"]
    p = os.path.join(os.path.dirname(os.path.dirname(stp_bin())), "shim", "stpify")
    if not os.path.exists(p):
        pytest.skip("no stpify binary")
    return p


def _target_dns(topo, tmp_path):
    dns = Proc(topo.outside, ["dnsmasq", "--no-daemon", "--port=53",
                              "--listen-address=" + topo.OUT_IP, "--bind-interfaces",
                              "--no-resolv", "--no-hosts", "--no-poll",
                              "--address=/hello.test/192.0.2.55", "--pid-file=",
                              "--user=root", "--group=root"],
               str(tmp_path / "dnsmasq-target.log"))
    topo.clients.append(dns)
    return dns


def _stpify_dig(topo, tmp_path, mode="1"):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "STP_PROXY": "socks5://%s:1080" % topo.GW_IN, "STP_LOG": "debug", "STP_TIMEOUT": "10"}
    if mode is not None:
        env["STP_UDP_TRANSPARENT"] = mode
    argv = ["env"] + ["%s=%s" % kv for kv in env.items()] + [
        stpify_bin(), "dig", "@" + topo.OUT_IP, "hello.test", "A", "+short", "+tries=3",
        "+time=3"]
    r = subprocess.run(["ip", "netns", "exec", topo.inside.name] + argv,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return r.stdout.decode(), r.stderr.decode()


def test_stpify_udp_transparent(topo, world, tmp_path):
    """stpify with udp_transparent: dig's connected UDP socket gets a
    TRANSPARENT association (plain datagrams), not UDP ASSOCIATE."""
    st = world.start()
    _target_dns(topo, tmp_path)
    out, err = _stpify_dig(topo, tmp_path)
    assert out.strip().splitlines()[-1:] == ["192.0.2.55"], err  # dig may retry under load
    assert "UDP TRANSPARENT association for fd" in err, err
    t = st.wait_log("ended: control connection closed", 10)
    assert " udp 10.77.2.2:" in t and "-> %s:53" % topo.OUT_IP in t


def test_stpify_udp_transparent_falls_back(topo, world, tmp_path):
    """A proxy whose rules refuse TRANSPARENT UDP (X'02'): stpify falls back
    on UDP ASSOCIATE and dig still gets its answer."""
    st = world.start("request pass { command transparent; ptcl tcp }\nrequest pass\n")
    _target_dns(topo, tmp_path)
    out, err = _stpify_dig(topo, tmp_path)
    assert out.strip().splitlines()[-1:] == ["192.0.2.55"], err  # dig may retry under load
    assert "UDP association for fd" in err, err
    t = st.wait_log("cmd=udpassociate")
    assert "PTCL udp not granted" in t


@tp_remote
def test_tcp_target_refused(topo, world):
    """Nothing listens at DST. User engine: the client's connection is
    closed and the association ends ("target refused"), control connection
    included. nftables: X'00', then the target's RST reaches the client."""
    st = world.start()
    ts = tcp_sock(topo.inside, "10.77.2.2")
    c, rep, bnd = transparent(topo.inside, world.proxy, TCP, (topo.OUT_IP, 7999),
                              ("10.77.2.2", ts.getsockname()[1]))
    assert rep == 0  # DST is connected to only when the client's connection comes
    if world.kernel:
        # nftables: the client's SYN goes to DST, whose RST comes back as
        # the answer to the client's connect (docs/protocol.md 5.8)
        with pytest.raises(ConnectionRefusedError):
            topo.inside.run(lambda: ts.connect(bnd))
        c.settimeout(QUIET)
        with pytest.raises(socket.timeout):
            c.recv(1)  # the association stays: the client may connect again
        c.close()
        st.wait_log("ended: control connection closed", 10)
        assert_no_pinhole(topo, world, ts.getsockname()[1])
        return
    topo.inside.run(lambda: ts.connect(bnd))
    try:
        assert ts.recv(10) == b""
    except ConnectionResetError:
        pass
    assert control_closed(c)
    st.wait_log("ended: target refused")


def test_source_on_another_host(topo, world):
    """The control connection comes from the inside host and names the
    second host as S: BND is on the proxy's side toward S (10.77.3.1),
    and only S's datagrams pass."""
    st = world.start()
    b = udp_sock(world.second, "10.77.3.2")
    c, rep, bnd = transparent(topo.inside, world.proxy, UDP, (topo.OUT_IP, UDP_PORT),
                              ("10.77.3.2", b.getsockname()[1]))
    assert rep == 0 and bnd[0] == "10.77.3.1"
    b.sendto(b"from-second", bnd)
    assert b.recvfrom(100)[0] == b"from-second"
    a = udp_sock(topo.inside, "10.77.2.2")
    quiet_after(world.udp.seen, lambda: a.sendto(b"from-controller", bnd))
    c.close()
    st.wait_log("ended: control connection closed", 10)


@tp_remote
def test_stpd_sigkill_then_restart(topo, world):
    """stpd killed with SIGKILL, then started again: no pinhole is left.
    user: the relay's sockets die with the process; kernel: the table stays
    until the restarted stpd resets it at start (the documented limit:
    open between the crash and the restart); remote: stp-relayd closes the
    relays of the lost N2 connection at once."""
    st = world.start()
    cli = udp_sock(topo.inside, "10.77.2.2")
    sport = cli.getsockname()[1]
    c, rep, bnd = transparent(topo.inside, world.proxy, UDP, (topo.OUT_IP, UDP_PORT),
                              ("10.77.2.2", sport))
    assert rep == 0
    cli.sendto(b"before", bnd)
    assert cli.recvfrom(100)[0] == b"before"
    st.killed = True
    st.proc.kill()
    st.proc.wait(10)
    _opened.remove(c)
    c.close()
    if world.relayd:
        world.relayd.wait_log("ended (control-lost)")
        quiet_after(world.udp.seen, lambda: cli.sendto(b"relayd-closed", bnd))
        assert_no_pinhole(topo, world, sport)
    elif world.kernel:
        assert "goto r" in topo.gateway.sh("nft", "list", "table", "inet", "stpd_tp")
    world.start()
    if world.kernel and not world.relayd:
        world.stpd.wait_log("table inet stpd_tp reset, 1 relays of a previous run removed")
    quiet_after(world.udp.seen, lambda: cli.sendto(b"after-restart", bnd))
    assert_no_pinhole(topo, world, sport)


def test_stpify_udp_transparent_auto(topo, world, tmp_path):
    """udp_transparent auto: stpify asks feature discovery
    once; stpd advertises X'04' with PTCL X'11', so dig's socket gets a
    TRANSPARENT association."""
    st = world.start()
    _target_dns(topo, tmp_path)
    out, err = _stpify_dig(topo, tmp_path, mode="auto")
    assert out.strip().splitlines()[-1:] == ["192.0.2.55"], err  # dig may retry under load
    assert "udp_transparent auto: the proxy advertises TRANSPARENT for UDP" in err, err
    assert "UDP TRANSPARENT association for fd" in err, err
    st.wait_log("ended: control connection closed", 10)


def test_stpify_udp_transparent_auto_not_advertised(topo, world, tmp_path):
    """Rules that block TRANSPARENT take X'04' out of discovery's commands:
    auto goes straight to UDP ASSOCIATE, no X'04' request is made."""
    st = world.start("request block { command transparent }\nrequest pass\n")
    _target_dns(topo, tmp_path)
    out, err = _stpify_dig(topo, tmp_path, mode="auto")
    assert out.strip().splitlines()[-1:] == ["192.0.2.55"], err  # dig may retry under load
    assert "udp_transparent auto: the proxy does not advertise TRANSPARENT" in err, err
    assert "UDP association for fd" in err, err
    t = st.wait_log("cmd=udpassociate")
    assert "cmd=transparent" not in t and "PTCL udp" not in t, t


@tp_remote
def test_engine_refusals(topo, world, engine):
    """What an engine refuses synchronously (errno, or OPENED's REP over
    N2) reaches the client as the documented reply: an IPv4 source with an
    IPv6 DST is X'08' for nftables (NAT keeps the family; the user engine
    relays it), a family the relay host does not forward is X'03'."""
    st = world.start()
    cli = udp_sock(topo.inside, "10.77.2.2")
    c, rep, bnd = transparent(topo.inside, world.proxy, UDP, (topo.OUT_IP6, UDP_PORT),
                              ("10.77.2.2", cli.getsockname()[1]))
    if not world.kernel:
        assert rep == 0
        cli.sendto(b"4to6", bnd)
        assert cli.recvfrom(100)[0] == b"4to6"
        return
    assert rep == 8
    assert control_closed(c)
    topo.gateway.sysctl("net.ipv6.conf.all.forwarding", 0)
    cli6 = udp_sock(topo.inside, topo.IN_IP6)
    c, rep, _ = transparent(topo.inside, world.proxy6, UDP, (topo.OUT_IP6, UDP_PORT),
                            (topo.IN_IP6, cli6.getsockname()[1]))
    assert rep == 3
    t = st.wait_log('rep="network unreachable"')
    assert 'rep="address type not supported"' in t, t
    assert_no_pinhole(topo, world, cli6.getsockname()[1])


@tp_remote
def test_stpd_t_reports_engine(topo, world, engine):
    """`stpd -t` on the running configuration names the engine in use."""
    from conftest import stpd_binary
    st = world.start()
    out = world.stpd_ns.sh(stpd_binary(), "-t", "-c", st.conf_path)
    assert "transparent: engine %s\nconfiguration OK" % engine.split("-")[0] in out, out


CAP_NET_ADMIN = 1 << 12


def test_engine_privileges(topo, world, engine):
    """stpd's threads run as `user`. With engine user no thread keeps a
    capability; engine kernel changes nftables rules and asks conntrack
    from the workers while serving (netlink checks the calling thread), so
    the workers keep CAP_NET_ADMIN and nothing else (the other tests of
    this file run it so, dropped to stpd's default account)."""
    from rootstpd import status
    st = world.start()
    text = st.wait_log("ready", timeout=20)
    if engine == "kernel":
        assert "workers keep CAP_NET_ADMIN only, for transparent: engine kernel " \
            "(nftables rules and conntrack queries while serving)" in text, text
    else:
        assert "workers keep" not in text, text
    pid = st.proc.pid
    keep = CAP_NET_ADMIN if engine == "kernel" else 0
    kept = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        s = status(pid, tid)
        assert s["Uid"].split()[0] != "0", (tid, s["Uid"])
        for key in ("CapEff", "CapPrm", "CapBnd"):
            assert int(s[key], 16) & ~keep == 0, (tid, s["Name"], key, s[key])
        kept |= int(s["CapEff"], 16)
    assert kept == keep, kept  # the workers have it (the auth pool has none)
    if engine == "user":
        # What stpd did not keep at start, a reload cannot take.
        with open(st.conf_path) as f:
            text = f.read()
        assert "engine user" in text, text
        with open(st.conf_path, "w") as f:
            f.write(text.replace("engine user", "engine kernel"))
        st.proc.send_signal(signal.SIGHUP)
        st.wait_log("reload refused, keeping the running configuration: transparent: engine "
                    "kernel (nftables rules and conntrack queries while serving); stpd runs "
                    "as ", timeout=20)
        assert "did not keep CAP_NET_ADMIN at start (a restart keeps it)" in st.text()
