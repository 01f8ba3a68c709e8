"""Binds for application servers (docs/protocol.md section 5.9): LISTEN
X'10' with several TCP and UDP binds on one control connection, arrivals
announced on it and taken with ACCEPT X'11' on new data connections (any
worker), refusals, the accept timeout, limits, rules, and the end of the
control connection closing every peer (no fd left behind)."""

import os
import socket
import struct
import threading
import time

import pytest

import bindraw as B
import socksraw as S
import stpdconf

pytestmark = pytest.mark.stpd_module("bind")

WORKERS = "workers 4\n"  # data connections land on other workers than their control


def start(stpd_factory, rules="request pass { }\n", extra=""):
    return stpd_factory(conf=stpdconf.conf(request_rules=rules, extra=WORKERS + extra))


def fd_count(p):
    """stpd's open fds but pipes: a worker caches the splice pipes of
    relays that ended (pipepool), so they come and go with load, not
    with the sessions under test."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % p.proc.pid):
        try:
            if not os.readlink("/proc/%d/fd/%s" % (p.proc.pid, fd)).startswith("pipe:"):
                n += 1
        except OSError:
            pass  # closed meanwhile
    return n


def take(p, ctl, peer_sock, auth=None):
    """Reads the ARRIVAL for peer_sock and takes it: -> data socket."""
    kind, b, ident, peer = B.read_msg(ctl)
    assert kind == "arrival"
    assert peer == peer_sock.getsockname()[:2]
    d, rep = B.accept(p.port, ident, peer, auth=auth)
    assert rep == 0
    return d, b


def test_two_tcp_binds_many_peers(stpd_factory):
    p = start(stpd_factory)
    ctl, rep, binds = B.listen(p.port, [(B.TCP, 0, 0), (B.TCP, 0, 8)])
    assert rep == 0 and len(binds) == 2
    assert all(k == B.TCP and h == "127.0.0.1" for k, (h, _), _ in binds)
    assert binds[0][1][1] != binds[1][1][1]
    for i in range(6):
        which = i % 2
        peer = B.connect_peer(binds[which][1])
        d, b = take(p, ctl, peer)
        assert b == which
        peer.sendall(b"from peer %d" % i)
        assert S.recv_exact(d, len(b"from peer %d" % i)) == b"from peer %d" % i
        d.sendall(b"to peer %d" % i)
        assert S.recv_exact(peer, len(b"to peer %d" % i)) == b"to peer %d" % i
        d.close()
        assert S.closed_by_peer(peer, 10)
        peer.close()
    ctl.close()
    # each peer's flow, then each bind's with its three peers' bytes
    p.wait_log(r"flow id=\d+\.\d+ .*cmd=accept target=127\.0\.0\.1:\d+ up=9 down=11 ",
               timeout=10)
    p.wait_log(r"flow id=\d+\.1 .*cmd=listen target=0\.0\.0\.0:0 up=27 down=33 ", timeout=10)
    p.wait_log(r"flow id=\d+\.2 .*cmd=listen target=0\.0\.0\.0:0 up=27 down=33 ", timeout=10)


def test_refuse_and_timeout(stpd_factory):
    p = start(stpd_factory, extra="binds { accept-timeout 1; }\n")
    ctl, rep, binds = B.listen(p.port, [(B.TCP, 0, 0)])
    assert rep == 0
    peer = B.connect_peer(binds[0][1])
    kind, _, ident, _ = B.read_msg(ctl)
    B.refuse(ctl, ident)
    assert S.closed_by_peer(peer, 10)
    p.wait_log(r"flow .*result=\"refused by the client\"")
    # taking a refused arrival: X'0A'
    d, rep = B.accept(p.port, ident, peer.getsockname()[:2])
    assert rep == B.REP_NO_ARRIVAL
    peer2 = B.connect_peer(binds[0][1])
    kind, _, ident2, _ = B.read_msg(ctl)
    msg = B.read_msg(ctl)  # nobody takes it: CLOSED X'06' after 1 s
    assert msg == ("closed", ident2, 0x06)
    assert S.closed_by_peer(peer2, 10)


def test_accept_checks_peer_and_client(stpd_factory):
    p = stpd_factory(conf=stpdconf.conf(extra=WORKERS, auth=stpdconf.userpass_auth()),
                     users={"alice": "pw-a", "bob": "pw-b"})
    ctl, rep, binds = B.listen(p.port, [(B.TCP, 0, 0)], auth=("alice", "pw-a"))
    assert rep == 0
    peer = B.connect_peer(binds[0][1])
    _, _, ident, addr = B.read_msg(ctl)
    _, rep = B.accept(p.port, ident, addr, auth=("bob", "pw-b"))
    assert rep == B.REP_NO_ARRIVAL  # another user
    _, rep = B.accept(p.port, ident, (addr[0], addr[1] ^ 1), auth=("alice", "pw-a"))
    assert rep == B.REP_NO_ARRIVAL  # another peer
    d, rep = B.accept(p.port, ident, addr, auth=("alice", "pw-a"))
    assert rep == 0
    peer.sendall(b"x")
    assert S.recv_exact(d, 1) == b"x"


def test_limits(stpd_factory):
    p = start(stpd_factory, extra="binds { max-binds 2; max-pending 1; }\n")
    ctl, rep, _ = B.listen(p.port, [(B.TCP, 0, 0)] * 3)
    assert rep == B.REP_LIMIT
    assert S.closed_by_peer(ctl, 10)
    ctl, rep, binds = B.listen(p.port, [(B.TCP, 0, 0)])
    assert rep == 0
    p1 = B.connect_peer(binds[0][1])
    _, _, id1, a1 = B.read_msg(ctl)
    p2 = B.connect_peer(binds[0][1])  # waits in the kernel's backlog
    ctl.settimeout(1.0)
    with pytest.raises(socket.timeout):
        ctl.recv(1)
    ctl.settimeout(10)
    B.refuse(ctl, id1)  # room again: the second one is announced
    _, _, id2, a2 = B.read_msg(ctl)
    assert a2 == p2.getsockname()[:2]


def test_max_peers(stpd_factory):
    p = start(stpd_factory, extra="binds { max-peers 1; }\n")
    ctl, rep, binds = B.listen(p.port, [(B.TCP, 0, 0)])
    assert rep == 0
    p1 = B.connect_peer(binds[0][1])
    d1, _ = take(p, ctl, p1)  # relaying: the one peer allowed
    p2 = B.connect_peer(binds[0][1])
    ctl.settimeout(1.0)
    with pytest.raises(socket.timeout):
        ctl.recv(1)  # not announced while p1 relays
    ctl.settimeout(10)
    d1.close()
    assert S.closed_by_peer(p1, 10)  # half-closed toward the peer
    p1.close()  # both directions ended: the relay ends
    d2, _ = take(p, ctl, p2)  # p1 ended: p2 is announced and taken
    p2.sendall(b"ok")
    assert S.recv_exact(d2, 2) == b"ok"


def test_rules(stpd_factory):
    rules = ("request block { command listen; to 0.0.0.0/32; port 1 }\n"
             "request block { command listenreply; from 127.0.0.1/32; to 127.0.0.2/32 }\n"
             "request pass { }\n")
    p = start(stpd_factory, rules=rules)
    ctl, rep, _ = B.listen(p.port, [(B.TCP, 0, 0)], peers=("0.0.0.0", 1))
    assert rep == 0x02
    p.wait_log(r"deny .*cmd=listen")
    ctl, rep, binds = B.listen(p.port, [(B.TCP, 0, 0)])
    assert rep == 0
    bad = socket.socket()
    bad.bind(("127.0.0.2", 0))
    bad.connect(binds[0][1])
    assert S.closed_by_peer(bad, 10)  # never announced
    p.wait_log(r"deny .*cmd=listenreply")
    good = B.connect_peer(binds[0][1])
    _, _, ident, addr = B.read_msg(ctl)
    assert addr == good.getsockname()[:2]


def test_udp_peer_rules(stpd_factory):
    rules = ("request block { command udpbindreply; to 127.0.0.2/32 }\n"
             "request pass { }\n")
    p = start(stpd_factory, rules=rules)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(1.0)
    ctl, rep, binds = B.listen(p.port, [(B.UDP, 0, client.getsockname()[1])])
    assert rep == 0
    _, bnd, relay = binds[0]
    bad = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bad.bind(("127.0.0.2", 0))
    bad.sendto(b"refused", bnd)
    with pytest.raises(socket.timeout):
        client.recvfrom(65535)
    p.wait_log(r"deny .*cmd=udpbindreply target=127\.0\.0\.2:")
    good = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    good.bind(("127.0.0.1", 0))
    good.sendto(b"welcome", bnd)
    client.settimeout(10)
    pkt, _ = client.recvfrom(65535)
    assert S.udp_parse(pkt)[4] == b"welcome"
    # nor may the client send to a refused peer
    client.sendto(S.udp_packet("127.0.0.2", bad.getsockname()[1], b"no"), relay)
    bad.settimeout(1.0)
    with pytest.raises(socket.timeout):
        bad.recvfrom(65535)


def test_control_close_closes_peers(stpd_factory):
    p = start(stpd_factory)
    before = fd_count(p)
    ctl, rep, binds = B.listen(p.port, [(B.TCP, 0, 0), (B.UDP, 0, 0)])
    assert rep == 0
    peers, datas = [], []
    for _ in range(3):
        peer = B.connect_peer(binds[0][1])
        d, _ = take(p, ctl, peer)
        peers.append(peer)
        datas.append(d)
    pending = B.connect_peer(binds[0][1])
    B.read_msg(ctl)
    ctl.close()
    for peer in peers + [pending]:
        assert S.closed_by_peer(peer, 10)
    for d in datas:
        assert S.closed_by_peer(d, 10)
        d.close()
    deadline = time.time() + 10
    while fd_count(p) != before and time.time() < deadline:
        time.sleep(0.05)
    assert fd_count(p) == before


def test_udp_bind(stpd_factory):
    p = start(stpd_factory)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(10)
    ctl, rep, binds = B.listen(p.port, [(B.UDP, 0, client.getsockname()[1]), (B.TCP, 0, 0)])
    assert rep == 0
    kind, bnd, relay = binds[0]
    assert kind == B.UDP and relay is not None
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(10)
    peer.sendto(b"question", bnd)
    pkt, src = client.recvfrom(65535)
    assert src == relay
    frag, _, host, port, data = S.udp_parse(pkt)
    assert (host, port) == peer.getsockname() and data == b"question"
    client.sendto(S.udp_packet(*peer.getsockname(), b"answer"), relay)
    data, src = peer.recvfrom(65535)
    assert data == b"answer" and src == bnd  # leaves from the bound port
    ctl.close()
    p.wait_log(r"flow id=\d+\.1 .*cmd=listen .* up=6 down=8 ", timeout=10)


def test_rfc1928_bind_unchanged(stpd_factory):
    p = start(stpd_factory)
    s = S.dial(p.port)
    assert S.negotiate(s) == S.M_NONE
    r = S.request(s, 0x02, "0.0.0.0", 0)
    assert r.rep == 0
    peer = socket.create_connection((r.host, r.port), timeout=10)
    r2 = S.read_reply(s)
    assert r2.rep == 0 and r2.port == peer.getsockname()[1]
    peer.sendall(b"hi")
    assert S.recv_exact(s, 2) == b"hi"


def test_truncated_and_bad_input(stpd_factory):
    """Every prefix of a LISTEN and of an ACCEPT, cut and left: the server
    answers X'01' after timeouts { handshake } and closes; a control
    message the client may not send closes the control connection."""
    p = start(stpd_factory, extra=stpdconf.timeouts(handshake=1))
    listen = B.listen_msg([(B.TCP, 0, 0), (B.UDP, 0, 0)])
    accept = S.request_msg(B.CMD_ACCEPT, "127.0.0.1", 1) + bytes(8)
    for msg in (listen, accept):
        socks = []
        for cut in range(4, len(msg)):  # past VER CMD RSV ATYP: the request is parsed
            s = S.dial(p.port)
            assert S.negotiate(s) == S.M_NONE
            s.sendall(msg[:cut])
            socks.append((cut, s))
        for cut, s in socks:
            data = S.recv_all(s)
            assert data == b"" or data[:2] == b"\x05\x01", (cut, data)
            s.close()
    ctl, rep, binds = B.listen(p.port, [(B.TCP, 0, 0)])
    assert rep == 0
    ctl.sendall(bytes([B.MSG_ARRIVAL]) + bytes(9) + b"\x01" + bytes(6))
    assert S.closed_by_peer(ctl, 10)
    p.wait_log(r"result=\"bad control message\"")


def test_peer_leaves_before_accept(stpd_factory):
    """A parked peer that closes (FIN) or resets (RST) before its ACCEPT is
    noticed at once: CLOSED with REP X'05' on the control connection, and
    an ACCEPT naming it gets X'0A'."""
    p = start(stpd_factory, extra="binds { accept-timeout 60; }\n")
    ctl, rep, binds = B.listen(p.port, [(B.TCP, 0, 0)])
    assert rep == 0
    for how in ("fin", "rst"):
        peer = B.connect_peer(binds[0][1])
        addr = peer.getsockname()[:2]
        kind, _, ident, _ = B.read_msg(ctl)
        assert kind == "arrival"
        if how == "rst":
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        t0 = time.time()
        assert B.read_msg(ctl) == ("closed", ident, B.REP_PEER_GONE)
        assert time.time() - t0 < 30  # not the 60 s accept timeout
        _, rep = B.accept(p.port, ident, addr)
        assert rep == B.REP_NO_ARRIVAL
    p.wait_log(r"flow .*cmd=accept .*result=\"peer closed before accept\"")
    p.wait_log(r"flow .*cmd=accept .*result=\"peer reset before accept\"")
    # a peer that speaks first is not dropped: its bytes reach the data connection
    peer = B.connect_peer(binds[0][1])
    peer.sendall(b"early")
    d, _ = take(p, ctl, peer)
    assert S.recv_exact(d, 5) == b"early"


def test_data_connections_count_toward_client_limit(stpd_factory):
    """A data connection handed over by ACCEPT keeps its place in
    limits { sessions-per-client } until its peer's relay ends."""
    p = start(stpd_factory, extra="limits { sessions-per-client 3; }\n")
    ctl, rep, binds = B.listen(p.port, [(B.TCP, 0, 0)])  # 1
    assert rep == 0
    peers, datas = [], []
    for _ in range(2):  # 2, 3
        peer = B.connect_peer(binds[0][1])
        d, _ = take(p, ctl, peer)
        peers.append(peer)
        datas.append(d)

    def refused():
        s = S.dial(p.port)
        s.sendall(b"\x05\x01\x00")
        got = S.recv_exact(s, 2)
        s.close()
        return got == b"\x05\xff"

    assert refused()  # a fourth: over the limit
    p.wait_log(r"session limit for this client reached")
    datas[0].close()
    peers[0].close()  # that relay ends: its place comes back
    deadline = time.time() + 20
    while refused():
        assert time.time() < deadline, "the ended data connection kept its place"
        time.sleep(0.1)
    peers[1].sendall(b"still")
    assert S.recv_exact(datas[1], 5) == b"still"
