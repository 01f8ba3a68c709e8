"""TRANSPARENT's kernel engine driven through stp-relayd over N2 (issue 12):
client, second client, relay, target and control namespaces (tp_topo.py).
The relay configuration is made by a Python N2 client (n2client.py), as
stpd's remote engine would; what passes is checked with real sockets in
the client and target namespaces, what is left with `nft` and `conntrack`.
"""

import os
import socket
import struct
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import n2client  # noqa: E402
from n2client import TCP, UDP  # noqa: E402
from tp_topo import Relayd, TpTopology  # noqa: E402

TABLE = "stp_relayd"


@pytest.fixture
def topo():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    t = TpTopology()
    yield t
    t.close()


@pytest.fixture
def relayd(topo, tmp_path):
    started = []

    def start(*args, name="relayd"):
        r = Relayd(topo, str(tmp_path), args, name=name)
        started.append(r)
        return r

    yield start
    for r in started:
        rc = r.stop()
        text = r.text()
        assert "Sanitizer" not in text and "runtime error:" not in text, text
        assert rc in (0, -9), "stp-relayd exited %s:\n%s" % (rc, text)


@pytest.fixture
def n2(topo, relayd, tmp_path):
    """stp-relayd on a Unix socket and an N2 connection to it."""
    path = str(tmp_path / "n2.sock")
    d = relayd("-l", "unix:" + path)
    c = n2client.N2.unix(path)
    c.daemon, c.path = d, path
    yield c
    c.shutdown()


def udp_sock(ns, host, port=0):
    def mk():
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((host, port))
        s.settimeout(2)
        return s
    return ns.run(mk)


def recv_or_none(s, timeout=0.7):
    s.settimeout(timeout)
    try:
        return s.recvfrom(2048)
    except (socket.timeout, BlockingIOError):
        return None


def nft_table(ns):
    return ns.sh("nft", "list", "table", "inet", TABLE)


def conntrack(ns, *args):
    r = subprocess.run(["ip", "netns", "exec", ns.name, "conntrack", "-L"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def assert_gone(topo, port, sport, alone=True):
    """No rule, element or counter of the relay and no conntrack entry
    (alone: no relay at all is left)."""
    t = nft_table(topo.relay)
    assert str(port) not in t and " . %d . " % sport not in t, t
    if alone:
        assert "goto r" not in t and "counter up_" not in t, t
    # A probe sent after the teardown may leave an entry of its own: not
    # translated (reply from BND, not from the target) and without the
    # relay's mark. The relay's entry itself must be gone.
    for proto in ("udp", "tcp"):
        ct = conntrack(topo.relay, "-p", proto, "--orig-port-src", str(sport))
        for line in ct.splitlines():
            assert "mark=0 " in line, ct
            assert "src=%s " % topo.T not in line and "src=%s " % topo.T6 not in line, ct


def test_udp_pinhole_source_pinning_and_teardown(topo, n2):
    """One UDP relay: the pinned source gets through both ways; its other
    port, its other address and the second client host are dropped; after
    CLOSE nothing passes and nothing is left in nft or conntrack."""
    tgt = udp_sock(topo.target, topo.T, 5353)
    cli = udp_sock(topo.client, topo.C1, 40001)
    bnd = n2.opened(1, UDP, (topo.C1, 40001), (topo.T, 5353), (topo.R1, 0))
    assert bnd[0] == topo.R1 and bnd[1] != 0
    cli.sendto(b"ping", bnd)
    data, peer = tgt.recvfrom(2048)
    assert data == b"ping" and peer[0] == topo.RT  # SNAT: replies come back to the relay
    tgt.sendto(b"pong", peer)
    data, frm = cli.recvfrom(2048)
    assert data == b"pong" and frm == bnd  # the client sees BND, never DST
    # pinning: another port, another address, another host
    other_port = udp_sock(topo.client, topo.C1, 40002)
    other_addr = udp_sock(topo.client, topo.C1B, 40001)
    other_host = udp_sock(topo.client2, topo.C2, 40001)
    for s in (other_port, other_addr, other_host):
        s.sendto(b"intruder", bnd)
    assert recv_or_none(tgt) is None
    # non-PTCL: TCP from the pinned address and port to BND's port is
    # dropped, not answered (a timeout, no RST)
    with pytest.raises(socket.timeout):
        tcp_connect(topo.client, (topo.C1, 40001), bnd, timeout=1)
    c = n2.counters(1)
    assert c["pkts_up"] == 1 and c["pkts_down"] == 1, c
    assert c["bytes_up"] == 28 + 4 and c["bytes_down"] == 28 + 4, c  # IP layer bytes
    # the flow's conntrack entry, translated both ways, while the relay lives
    ct = conntrack(topo.relay, "-p", "udp", "--orig-port-src", "40001")
    assert "dst=%s sport=40001 dport=%d" % (topo.R1, bnd[1]) in ct, ct
    assert "src=%s dst=%s sport=5353" % (topo.T, topo.RT) in ct, ct
    final = n2.close(1)
    assert final["pkts_up"] == 1 and final["pkts_down"] == 1, final
    cli.sendto(b"after", bnd)
    assert recv_or_none(tgt) is None
    assert_gone(topo, bnd[1], 40001)
    n2.daemon.wait_log("relay 1: udp 10.78.1.2:40001 -> 10.78.1.1:%d -> 10.78.2.2:5353 ended "
                       "(close): up 1 pkts 32 bytes, down 1 pkts 32 bytes" % bnd[1])


def test_udp_ipv6(topo, n2):
    tgt = udp_sock(topo.target, topo.T6, 5353)
    cli = udp_sock(topo.client, topo.C1_6, 40001)
    bnd = n2.opened(2, UDP, (topo.C1_6, 40001), (topo.T6, 5353), (topo.R1_6, 0))
    assert bnd[0] == topo.R1_6
    cli.sendto(b"ping6", bnd)
    data, peer = tgt.recvfrom(2048)
    assert data == b"ping6" and peer[0] == topo.RT6
    tgt.sendto(b"pong6", peer)
    assert cli.recvfrom(2048)[0] == b"pong6"
    udp_sock(topo.client2, topo.C2_6, 40001).sendto(b"intruder", bnd)
    assert recv_or_none(tgt) is None
    n2.close(2)
    cli.sendto(b"after", bnd)
    assert recv_or_none(tgt) is None
    assert_gone(topo, bnd[1], 40001)


def tcp_listen(ns, host, port):
    def mk():
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(4)
        s.settimeout(5)
        return s
    return ns.run(mk)


def tcp_connect(ns, src, dst, timeout=5):
    def mk():
        fam = socket.AF_INET6 if ":" in src[0] else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(src)
        s.settimeout(timeout)
        s.connect(dst)
        return s
    return ns.run(mk)


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_tcp_fin_ends_the_relay(topo, n2, v6):
    """TCP through the pinhole; the target's FIN ends the relay on the
    relay's side (ENDED "fin") and removes everything."""
    c_ip, t_ip, b_ip = (topo.C1_6, topo.T6, topo.R1_6) if v6 else (topo.C1, topo.T, topo.R1)
    lst = tcp_listen(topo.target, t_ip, 8080)
    bnd = n2.opened(3, TCP, (c_ip, 41001), (t_ip, 8080), (b_ip, 0), fin=True)
    # another source port is refused before the relay's port
    with pytest.raises(OSError):
        tcp_connect(topo.client, (c_ip, 41002), bnd, timeout=1)
    cli = tcp_connect(topo.client, (c_ip, 41001), bnd)
    srv, peer = lst.accept()
    assert peer[0] == (topo.RT6 if v6 else topo.RT)
    payload = os.urandom(200000)
    cli.sendall(payload)
    got = b""
    srv.settimeout(5)
    while len(got) < len(payload):
        got += srv.recv(65536)
    assert got == payload
    srv.sendall(b"bye")
    srv.shutdown(socket.SHUT_WR)  # the target's FIN
    m = n2.expect(n2client.ENDED, 3)
    assert m.why == "fin" and m.counters["bytes_up"] > len(payload), m
    assert cli.recv(16) == b"bye"
    assert_gone(topo, bnd[1], 41001)
    srv.close()
    cli.close()


def test_tcp_without_fin_watch_stays(topo, n2):
    lst = tcp_listen(topo.target, topo.T, 8081)
    bnd = n2.opened(4, TCP, (topo.C1, 41003), (topo.T, 8081), (topo.R1, 0), fin=False)
    cli = tcp_connect(topo.client, (topo.C1, 41003), bnd)
    srv, _ = lst.accept()
    srv.shutdown(socket.SHUT_WR)
    assert cli.recv(16) == b""
    cli.sendall(b"still open")  # half-closed, the other way still passes
    srv.settimeout(5)
    assert srv.recv(64) == b"still open"
    c = n2.close(4)
    assert c["pkts_up"] >= 3 and c["pkts_down"] >= 2, c
    with pytest.raises(OSError):
        cli.sendall(b"x" * 1000)
        cli.settimeout(1)
        cli.recv(16)  # nothing comes back: the pinhole is gone
        raise OSError("no answer")
    assert_gone(topo, bnd[1], 41003)


def test_two_relays_kept_apart(topo, n2):
    """Two sources, two relays, two targets: each source reaches only its
    own target through its own BND."""
    t1 = udp_sock(topo.target, topo.T, 6001)
    t2 = udp_sock(topo.target, topo.T, 6002)
    s1 = udp_sock(topo.client, topo.C1, 42001)
    s2 = udp_sock(topo.client2, topo.C2, 42001)
    b1 = n2.opened(5, UDP, (topo.C1, 42001), (topo.T, 6001), (topo.R1, 0))
    b2 = n2.opened(6, UDP, (topo.C2, 42001), (topo.T, 6002), (topo.R2, 0))
    s1.sendto(b"one", b1)
    s2.sendto(b"two", b2)
    assert t1.recvfrom(100)[0] == b"one"
    assert t2.recvfrom(100)[0] == b"two"
    # crossing: client 1 to relay 2's BND and back
    s1.sendto(b"cross", (topo.R2, b2[1]))
    s2.sendto(b"cross", (topo.R1, b1[1]))
    assert recv_or_none(t1) is None and recv_or_none(t2) is None
    n2.close(5)
    s2.sendto(b"two again", b2)
    assert t2.recvfrom(100)[0] == b"two again"
    n2.close(6)


def test_control_connection_lost_closes_its_relays(topo, n2):
    """The MUST of seed 003 section 4: the N2 connection goes, so do the
    relays it opened; another connection's relay stays."""
    other = n2client.N2.unix(n2.path)
    tgt = udp_sock(topo.target, topo.T, 6003)
    cli = udp_sock(topo.client, topo.C1, 42003)
    bnd = n2.opened(7, UDP, (topo.C1, 42003), (topo.T, 6003), (topo.R1, 0))
    keep = other.opened(7, UDP, (topo.C1, 42004), (topo.T, 6003), (topo.R1, 0))
    cli.sendto(b"a", bnd)
    assert tgt.recvfrom(100)[0] == b"a"
    n2.shutdown()
    n2.daemon.wait_log("1 relays closed with it")
    cli.sendto(b"b", bnd)
    assert recv_or_none(tgt) is None
    assert_gone(topo, bnd[1], 42003, alone=False)
    udp_sock(topo.client, topo.C1, 42004).sendto(b"kept", keep)
    assert tgt.recvfrom(100)[0] == b"kept"
    other.close(7)
    other.shutdown()


def test_refusals(topo, n2):
    """OPENED carries the REP: X'09' for a PTCL other than TCP/UDP, X'08'
    for an IPv4 source with an IPv6 target; the connection goes on."""
    n2.open(8, 132, (topo.C1, 1), (topo.T, 1), (topo.R1, 0))
    assert n2.expect(n2client.OPENED, 8).rep == 0x09
    n2.open(9, UDP, (topo.C1, 1), (topo.T6, 1), (topo.R1, 0))
    assert n2.expect(n2client.OPENED, 9).rep == 0x08
    assert n2.close(9) == {"pkts_up": 0, "bytes_up": 0, "pkts_down": 0, "bytes_down": 0}


def test_protocol_error_closes(topo, n2):
    n2.send(0x42, 1)
    with pytest.raises(EOFError):
        n2.recv()
    n2.daemon.wait_log("unknown message type")


def test_idle_ends_the_relay(topo, n2):
    tgt = udp_sock(topo.target, topo.T, 6004)
    cli = udp_sock(topo.client, topo.C1, 42005)
    bnd = n2.opened(10, UDP, (topo.C1, 42005), (topo.T, 6004), (topo.R1, 0), idle_ms=600)
    cli.sendto(b"x", bnd)
    assert tgt.recvfrom(10)[0] == b"x"
    m = n2.expect(n2client.ENDED, 10, timeout=10)
    assert m.why == "idle" and m.counters["pkts_up"] == 1, m
    assert_gone(topo, bnd[1], 42005)


def test_sigkill_then_restart_leaves_no_pinhole(topo, n2, relayd, tmp_path):
    tgt = udp_sock(topo.target, topo.T, 6005)
    cli = udp_sock(topo.client, topo.C1, 42006)
    bnd = n2.opened(11, UDP, (topo.C1, 42006), (topo.T, 6005), (topo.R1, 0))
    cli.sendto(b"before", bnd)
    assert tgt.recvfrom(100)[0] == b"before"
    n2.daemon.kill()
    # the limit: until a restart the pinhole stays (docs/architecture.md)
    assert "goto r" in nft_table(topo.relay)
    relayd("-l", "unix:" + str(tmp_path / "n2b.sock"), name="relayd2")
    cli.sendto(b"after restart", bnd)
    assert recv_or_none(tgt) is None
    assert_gone(topo, bnd[1], 42006)


def test_forwarding_off_is_a_clear_error(topo, tmp_path):
    topo.relay.sysctl("net.ipv4.ip_forward", 0)
    topo.relay.sysctl("net.ipv6.conf.all.forwarding", 0)
    binary = os.environ.get("STP_RELAYD") or __import__("tp_topo").build_file(
        "src", "relayd", "stp-relayd")
    r = subprocess.run(["ip", "netns", "exec", topo.relay.name, binary, "-l",
                        "unix:" + str(tmp_path / "x.sock")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    assert r.returncode != 0
    assert b"does not forward" in r.stdout, r.stdout


def test_runs_as_a_user_with_cap_net_admin_only(topo, relayd, tmp_path):
    """-u: after start-up stp-relayd keeps CAP_NET_ADMIN and nothing else,
    and relays, counts and tears down with just that."""
    path = str(tmp_path / "u.sock")
    d = relayd("-l", "unix:" + path, "-u", "nobody")
    d.wait_log("running as nobody with CAP_NET_ADMIN only")
    status = open("/proc/%d/status" % d.proc.pid).read()
    assert "CapEff:\t0000000000001000" in status, status
    assert "Uid:\t65534" in status, status
    c = n2client.N2.unix(path)
    tgt = udp_sock(topo.target, topo.T, 6006)
    cli = udp_sock(topo.client, topo.C1, 42007)
    bnd = c.opened(1, UDP, (topo.C1, 42007), (topo.T, 6006), (topo.R1, 0))
    cli.sendto(b"x", bnd)
    assert tgt.recvfrom(10)[0] == b"x"
    assert c.close(1)["pkts_up"] == 1
    cli.sendto(b"y", bnd)
    assert recv_or_none(tgt) is None
    assert_gone(topo, bnd[1], 42007)
    c.shutdown()


def test_tcp_both_fins_end_as_closed(topo, n2):
    """Without end-on-fin, the relay ends once both sides sent FIN."""
    lst = tcp_listen(topo.target, topo.T, 8082)
    bnd = n2.opened(12, TCP, (topo.C1, 41004), (topo.T, 8082), (topo.R1, 0), fin=False)
    cli = tcp_connect(topo.client, (topo.C1, 41004), bnd)
    srv, _ = lst.accept()
    cli.sendall(b"req")
    srv.settimeout(5)
    assert srv.recv(10) == b"req"
    cli.shutdown(socket.SHUT_WR)
    assert srv.recv(10) == b""
    srv.sendall(b"answer after the client's FIN")
    assert cli.recv(100) == b"answer after the client's FIN"
    srv.shutdown(socket.SHUT_WR)
    m = n2.expect(n2client.ENDED, 12)
    assert m.why == "closed", m
    assert_gone(topo, bnd[1], 41004)
    srv.close()
    cli.close()


def test_tcp_reset_ends(topo, n2):
    lst = tcp_listen(topo.target, topo.T, 8083)
    bnd = n2.opened(13, TCP, (topo.C1, 41005), (topo.T, 8083), (topo.R1, 0), fin=False)
    cli = tcp_connect(topo.client, (topo.C1, 41005), bnd)
    srv, _ = lst.accept()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    srv.close()  # RST
    m = n2.expect(n2client.ENDED, 13)
    assert m.why == "reset", m
    assert_gone(topo, bnd[1], 41005)
    cli.close()


def test_silent_control_connection_is_dropped(topo, n2):
    """A connection that never sends HELLO is closed after 10 s."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(n2.path)
    s.settimeout(20)
    start = time.time()
    data = b""
    while True:
        d = s.recv(100)
        if not d:
            break
        data += d
    assert data == b"\x01\x00\x00\x00\x00\x00\x01\x01"  # the relay's HELLO, then EOF
    assert 9 < time.time() - start < 20
    n2.daemon.wait_log("no TLS handshake and HELLO in time")
    s.close()


def test_not_an_open_router(topo, relayd, tmp_path):
    """The relay forwards (ip_forward 1), but with the engine's table in
    place only pinholed flows cross it: routed traffic from a client to the
    target is dropped, and passes again once the table is gone."""
    tgt = udp_sock(topo.target, topo.T, 6007)
    cli = udp_sock(topo.client, topo.C1, 42008)
    cli.sendto(b"routed", (topo.T, 6007))
    assert tgt.recvfrom(100)[0] == b"routed"  # before: a plain router
    relayd("-l", "unix:" + str(tmp_path / "r.sock"))
    cli.sendto(b"routed again", (topo.T, 6007))
    assert recv_or_none(tgt) is None
    tcp_listen(topo.target, topo.T, 8084)
    with pytest.raises(OSError):
        tcp_connect(topo.client, (topo.C1, 41006), (topo.T, 8084), timeout=1)
    topo.relay.sh("nft", "delete", "table", "inet", TABLE)
    cli.sendto(b"after the table", (topo.T, 6007))
    assert tgt.recvfrom(100)[0] == b"after the table"
