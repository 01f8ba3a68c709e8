"""Multicast through SOCKS (docs/mcast.md), end to end.

Each test builds outside <-> gateway <-> inside namespaces (netns.py),
starts stpd in the gateway (ip_forward off) and drives it with the
reference client mcast_client.py from the inside. Multicast senders and
receivers on the outside are plain sockets.
"""

import os
import random
import socket
import struct
import time

import pytest

import mcast_client as mc

pytestmark = [pytest.mark.stpd_module("mcast")]

GROUP4, PORT = "239.1.2.3", 5000
GROUP6 = "ff1e::1:5"


def conf(topo, rules="", mcast="", listen6=False):
    """stpd.conf: listen on the inside, mcast block with the gateway's
    interfaces, request rules before a pass-all."""
    listen = "listen %s:1080\n" % topo.GW_IN
    if listen6:
        listen += "listen [%s]:1080\n" % topo.GW_IN6
    return (listen +
            "client pass { from 10.77.2.0/24 fd77:2::/64 }\n" +
            rules +
            "request pass { }\n"
            "mcast {\n"
            "  external-interface gwo\n"
            "  internal-interface gwi\n"
            "  pool 239.255.0.0/16 ff15::/16\n" + mcast +
            "}\n")


def control(topo, src=None, v6=False):
    server = (topo.GW_IN6, 1080) if v6 else (topo.GW_IN, 1080)
    c = topo.inside.run(mc.Control.connect, server, None, None, 5.0,
                        src or (topo.IN_IP6 if v6 else topo.INSIDE[0]))
    topo.clients.append(c)  # closed before stpd stops, even when a test fails
    return c


def join(topo, ctl, group, port=PORT, **kw):
    return topo.inside.run(lambda: ctl.join(group, port, **kw))


def outside_sender(topo, src_ip=None, v6=False):
    def make():
        if v6:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF,
                         socket.if_nametoindex("o0"))
            s.bind((topo.OUT_IP6, 0))
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                         socket.inet_aton(src_ip or topo.OUT_IP))
            s.bind((src_ip or topo.OUT_IP, 0))
        return s
    return topo.outside.run(make)


def outside_receiver(topo, group, port=PORT):
    return topo.outside.run(lambda: mc.open_group_socket(group, port,
                                                         socket.if_nametoindex("o0")))


def inside_ifindex(topo):
    return topo.ifindex(topo.inside, "i0")


def payloads(n, seed):
    rnd = random.Random(seed)
    return [bytes(rnd.getrandbits(8) for _ in range(rnd.randint(16, 1400))) + b"#%d" % i
            for i in range(n)]


def send_all(sock, group, items, port=PORT):
    for p in items:
        sock.sendto(p, (group, port))
        time.sleep(0.002)


def drain_raw(sock, timeout=1.0):
    sock.settimeout(timeout)
    out = []
    try:
        while True:
            out.append(sock.recv(65536))
    except socket.timeout:
        return out


def recv_n(m, sock, n, timeout=3.0):
    got = []
    for _ in range(n):
        r = m.recv(sock, timeout)
        if r is None:
            break
        got.append(r[2])
    return got


def igmp_lists(topo, group):
    """Whether the gateway namespace is a member of group (on any interface)."""
    if ":" in group:
        hexg = socket.inet_pton(socket.AF_INET6, group).hex()
        return hexg in topo.gateway.read("/proc/net/igmp6")
    hexg = "%08X" % struct.unpack("<I", socket.inet_aton(group))[0]
    return hexg in topo.gateway.read("/proc/net/igmp")


def wait_until(pred, timeout=3.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# ---------------------------------------------------------------------------

@pytest.mark.parametrize("suite", ["aes-256-gcm", "chacha20-poly1305"])
def test_outside_to_inside_v4(topo, stpd, suite):
    # 10.77.2.4 may only send: its JOIN gets X'B1'.
    rules = "request pass { command mcast-join; from 10.77.2.4/32; mcast send }\n"
    stpd(conf(topo, rules, "  encryption %s\n" % suite))
    a, b, c = (control(topo, ip) for ip in topo.INSIDE[:3])
    ma, mb, mc_ = (join(topo, x, GROUP4) for x in (a, b, c))
    assert ma.rep == mc.REP_OK and mb.rep == mc.REP_OK
    assert mc_.rep == mc.REP_NO_RECV
    want_suite = mc.SUITE_AESGCM if suite == "aes-256-gcm" else mc.SUITE_CHACHA
    assert ma.suite == want_suite
    assert ma.intranet == mb.intranet and ma.intranet[0].startswith("239.255.")
    assert ma.key.recv_key == mb.key.recv_key and ma.key.recv_key is not None
    assert ma.key.send_key != mb.key.send_key            # one sending key each
    assert mc_.key.recv_key is None and mc_.key.send_key is not None

    idx = inside_ifindex(topo)
    rx_a, rx_b = topo.inside.run(ma.receiver, idx), topo.inside.run(mb.receiver, idx)
    rx_c = topo.inside.run(mc_.receiver, idx)
    # A host on the inside that joined nothing through stpd, listening anyway.
    spy = topo.inside.run(mc.open_group_socket, ma.intranet[0], ma.intranet[1], idx)

    items = payloads(50, 1)
    send_all(outside_sender(topo), GROUP4, items)
    assert recv_n(ma, rx_a, 50) == items                  # byte-exact, in order
    assert recv_n(mb, rx_b, 50) == items
    # The send-only member got the frames but nothing it can open.
    raw_c = drain_raw(rx_c, 0.5)
    assert len(raw_c) == 50
    assert all(mc_.open_frame(f) is None for f in raw_c)
    assert all(mc_.open_frame(f, recv_key=mc_.key.send_key) is None for f in raw_c)
    # The non-member saw every frame and none of the payloads.
    raw = drain_raw(spy, 0.5)
    assert len(raw) == 50
    for f, p in zip(raw, items):
        assert p[:32] not in f and p[-32:] not in f
    for x in (a, b, c):
        x.close()


def test_outside_to_inside_v6(topo, stpd):
    stpd(conf(topo, listen6=True))
    a = control(topo, v6=True)
    b = control(topo, topo.INSIDE[1])   # an IPv4 control connection, IPv6 group
    ma, mb = join(topo, a, GROUP6), join(topo, b, GROUP6)
    assert ma.rep == mc.REP_OK and mb.rep == mc.REP_OK
    assert ma.intranet[0].startswith("ff15:")
    idx = inside_ifindex(topo)
    rx_a, rx_b = topo.inside.run(ma.receiver, idx), topo.inside.run(mb.receiver, idx)
    assert wait_until(lambda: igmp_lists(topo, GROUP6))
    items = payloads(30, 2)
    send_all(outside_sender(topo, v6=True), GROUP6, items)
    assert recv_n(ma, rx_a, 30) == items
    assert recv_n(mb, rx_b, 30) == items
    got = ma.recv  # the source address travels in the frame
    send_all(outside_sender(topo, v6=True), GROUP6, [b"where from"])
    origin, src, payload = got(rx_a, 3)
    assert (origin, src[0], payload) == (0, topo.OUT_IP6, b"where from")
    # IPv6 from the inside to the outside too.
    orx = outside_receiver(topo, GROUP6)
    topo.inside.run(ma.send, b"v6 out")
    orx.settimeout(3)
    data, frm = orx.recvfrom(100)
    assert data == b"v6 out" and frm[0] == topo.GW_OUT6
    a.close()
    b.close()


def test_inside_to_outside(topo, stpd):
    rules = "request pass { command mcast-join; from 10.77.2.3/32; mcast receive }\n"
    s = stpd(conf(topo, rules))
    a, r = control(topo, topo.INSIDE[0]), control(topo, topo.INSIDE[1])
    ma, mr = join(topo, a, GROUP4), join(topo, r, GROUP4)
    assert ma.rep == mc.REP_OK
    assert mr.rep == mc.REP_NO_SEND and mr.key.send_key is None
    orx = outside_receiver(topo, GROUP4)

    items = payloads(10, 3)
    frames = [ma.frame(p) for p in items]
    for f in frames:
        ma.send_raw(f)
    # receive-only member: it has no sending key, whatever it sends is dropped
    for i in range(5):
        mr.send_raw(mr.frame(b"inject %d" % i, key=os.urandom(32)))
    # forged: A's member id from A's address under a wrong key
    for i in range(3):
        ma.send_raw(ma.frame(b"forged %d" % i, seq=1000 + i, key=os.urandom(32)))
    # forged: A's member id from another inside address
    other = topo.inside.run(lambda: _udp_from(topo.INSIDE[3]))
    for i in range(3):
        other.sendto(ma.frame(b"spoof %d" % i, seq=2000 + i), ma.relay)
    # replayed: two of A's genuine frames again
    ma.send_raw(frames[0])
    ma.send_raw(frames[4])

    assert drain_raw(orx, 2) == items
    a.close()
    r.close()
    log = s.wait_log("ended (last member left)")
    assert "in=0 out=10 dropped auth=3 replay=2 not-sender=5 unknown=3" in log, log


@pytest.mark.parametrize("v6", [False, True])
def test_member_sends_to_intranet_group(topo, stpd, v6):
    """Seed 000 5.2: "The client must use this address and port to send and
    receive data." A member may send its frames to ADDR:PORT of the reply
    (the intranet group) as well as to the relay's unicast port: both are
    heard, under one SEQ counter and one replay window; inside receivers
    get each packet once, as the relay's sealed copy."""
    group = GROUP6 if v6 else GROUP4
    s = stpd(conf(topo, listen6=v6))
    a = control(topo, v6=v6)
    b = control(topo, topo.INSIDE[1])   # a receiver (IPv4 control connection)
    ma, mb = join(topo, a, group), join(topo, b, group)
    assert ma.rep == mc.REP_OK and mb.rep == mc.REP_OK
    idx = inside_ifindex(topo)
    rx_a, rx_b = topo.inside.run(ma.receiver, idx), topo.inside.run(mb.receiver, idx)
    orx = outside_receiver(topo, group)

    items = payloads(20, 21)
    frames = [ma.frame(p) for p in items]
    for i, f in enumerate(frames):   # even ones to the group, odd ones unicast
        if i % 2 == 0:
            topo.inside.run(ma.send_raw_to_group, f, idx)
        else:
            ma.send_raw(f)
    # replays across the paths: a group frame again unicast, and back
    ma.send_raw(frames[0])
    topo.inside.run(ma.send_raw_to_group, frames[1], idx)
    # A's id and address, wrong key, to the group
    topo.inside.run(ma.send_raw_to_group, ma.frame(b"forged", seq=500, key=os.urandom(32)), idx)

    data = drain_raw(orx, 2)
    assert data == items                                  # byte-exact, in order, once each
    got = [mb.recv(rx_b, 3) for _ in items]
    assert [g[2] for g in got if g] == items
    assert all(g[0] == ma.member_id for g in got)         # ORIGIN: the sending member
    assert mb.recv(rx_b, 0.5) is None                     # nothing twice, nothing forged
    assert ma.recv(rx_a, 0.3) is None                     # the sender skips its own
    a.close()
    b.close()
    log = s.wait_log("ended (last member left)")
    assert "in=0 out=20 dropped auth=1 replay=2 not-sender=0 unknown=0 malformed=0" in log, log


@pytest.mark.parametrize("v6", [False, True])
def test_intranet_group_drops_non_members_and_own_copies(topo, stpd, v6):
    """What else appears on the intranet group is dropped before any crypto:
    the relay's own copies to inside receivers (never read back: they are
    not looped to the relay, and are relay frames, not member frames),
    garbage and replayed relay frames from an inside host that is no
    member, member frames from the wrong address. Each drop is counted; a
    flood gives one log line, not one per packet."""
    group = GROUP6 if v6 else GROUP4
    stranger_ip = "fd77:2::3" if v6 else topo.INSIDE[3]
    if v6:
        topo.inside.ip("addr", "add", stranger_ip + "/64", "dev", "i0", "nodad")
    s = stpd(conf(topo, listen6=v6))
    a = control(topo, v6=v6)
    ma = join(topo, a, group)
    assert ma.rep == mc.REP_OK
    idx = inside_ifindex(topo)
    rx = topo.inside.run(ma.receiver, idx)
    spy = topo.inside.run(mc.open_group_socket, ma.intranet[0], ma.intranet[1], idx)
    assert wait_until(lambda: igmp_lists(topo, group))
    items = payloads(20, 22)
    send_all(outside_sender(topo, v6=v6), group, items)
    assert recv_n(ma, rx, 20) == items
    copies = drain_raw(spy, 0.5)
    assert len(copies) == 20

    def stranger():
        fam = socket.AF_INET6 if v6 else socket.AF_INET
        u = socket.socket(fam, socket.SOCK_DGRAM)
        if v6:
            u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
        else:
            u.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                         bytes(8) + struct.pack("@i", idx))
        u.bind((stranger_ip, 0))
        rnd = random.Random(23)
        for _ in range(60):                           # well within a socket buffer
            u.sendto(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 200))), ma.intranet)
        for c in copies[:5]:                          # the relay's frames, replayed
            u.sendto(c, ma.intranet)
        for i in range(3):                            # A's frames from another address
            u.sendto(ma.frame(b"spoof %d" % i, seq=900 + i), ma.intranet)
        u.close()
    topo.inside.run(stranger)
    orx = outside_receiver(topo, group)
    topo.inside.run(ma.send_to_group, b"still heard", idx)
    orx.settimeout(3)
    assert orx.recvfrom(100)[0] == b"still heard"
    a.close()
    log = s.wait_log("ended (last member left)")
    assert "in=20 out=1 dropped auth=0 replay=0 not-sender=0 unknown=3 malformed=65" in log, log
    lines = [ln for ln in s.text().splitlines() if "dropped a packet from" in ln]
    assert len(lines) == 1 and stranger_ip in lines[0], lines


def test_packets_sent_just_before_leave_go_out(topo, stpd):
    """The sole member sends a burst and leaves at once: every packet still
    reaches the outside group (stpd relays what is waiting before it lets
    the member go), then the relay ends."""
    s = stpd(conf(topo))
    a = control(topo, topo.INSIDE[0])
    ma = join(topo, a, GROUP4)
    assert ma.rep == mc.REP_OK
    orx = outside_receiver(topo, GROUP4)
    items = payloads(60, 11)
    for p in items:
        ma.send_raw(ma.frame(p))
    assert topo.inside.run(a.leave, GROUP4, PORT).rep == mc.REP_OK
    assert drain_raw(orx, 2) == items
    log = s.wait_log("ended (last member left)")
    assert "out=60 " in log, log


def _udp_from(ip):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((ip, 0))
    return u


@pytest.mark.parametrize("v6", [False, True])
def test_leave_and_close_leave_the_group(topo, stpd, v6):
    group = GROUP6 if v6 else GROUP4
    other = "ff1e::1:6" if v6 else "239.1.2.4"
    stpd(conf(topo))
    a, b = control(topo, topo.INSIDE[0]), control(topo, topo.INSIDE[1])
    assert join(topo, a, group).rep == mc.REP_OK
    assert join(topo, b, group).rep == mc.REP_OK
    assert wait_until(lambda: igmp_lists(topo, group))
    # A leaves: B still holds the group.
    r = topo.inside.run(a.leave, group, PORT)
    assert r.rep == mc.REP_OK and (r.host, r.port) == (group, PORT)
    time.sleep(0.3)
    assert igmp_lists(topo, group)
    # A's control connection still works: another group on it.
    assert join(topo, a, other).rep == mc.REP_OK
    assert wait_until(lambda: igmp_lists(topo, other))
    # B closes its control connection: the last member of group is gone.
    b.close()
    assert wait_until(lambda: not igmp_lists(topo, group)), "group still joined"
    assert igmp_lists(topo, other)
    # LEAVE of the second group: gone too, the connection stays open.
    assert topo.inside.run(a.leave, other, PORT).rep == mc.REP_OK
    assert wait_until(lambda: not igmp_lists(topo, other))
    # ... and a JOIN on it again starts a fresh relay.
    assert join(topo, a, group).rep == mc.REP_OK
    assert wait_until(lambda: igmp_lists(topo, group))
    a.close()
    assert wait_until(lambda: not igmp_lists(topo, group))


def test_rejections(topo, stpd):
    rules = "request block { command mcast-join; to 239.9.9.9/32 }\n"
    stpd(conf(topo, rules))

    def refused(group, expect, closes=True):
        c = control(topo)
        r = join(topo, c, group)
        assert isinstance(r, mc.Reply) and r.rep == expect, r
        if closes:
            assert topo.inside.run(lambda: c.sock.recv(1)) == b""
        c.close()
        return r

    refused("10.1.2.3", mc.REP_NOT_GROUP)                 # not a multicast address
    refused("2001:db8::1", mc.REP_NOT_GROUP)
    r = refused("239.9.9.9", mc.REP_NEITHER)               # rules: neither send nor receive
    assert r.key is None                                    # LEN 0
    # A domain name as group: X'08'.
    c = control(topo)
    c.sock.sendall(bytes([5, mc.CMD_JOIN, 0, 3, 7]) + b"example" + struct.pack(">H", PORT))
    assert topo.inside.run(c.read_reply, mc.CMD_JOIN).rep == 0x08
    c.close()
    # LEAVE of a group never joined; on a connection holding a group it
    # does not end the connection.
    c = control(topo)
    assert join(topo, c, GROUP4).rep == mc.REP_OK
    assert topo.inside.run(c.leave, "239.1.2.99", PORT).rep == 0x01
    assert topo.inside.run(c.leave, GROUP4, PORT).rep == mc.REP_OK
    c.close()


def test_source_specific_join(topo, stpd):
    stpd(conf(topo))
    c = control(topo)
    m = join(topo, c, "232.1.1.1", mode=mc.INCLUDE, sources=[topo.OUT_IP])
    assert m.rep == mc.REP_OK
    rx = topo.inside.run(m.receiver, inside_ifindex(topo))
    send_all(outside_sender(topo, topo.OUT_IP2), "232.1.1.1", [b"not included"])
    send_all(outside_sender(topo, topo.OUT_IP), "232.1.1.1", [b"included"])
    got = m.recv(rx, 2)
    assert got is not None and got[1][0] == topo.OUT_IP and got[2] == b"included"
    assert m.recv(rx, 0.5) is None
    mcf = topo.gateway.read("/proc/net/mcfilter")
    src_hex = "0x" + socket.inet_aton(topo.OUT_IP).hex()
    grp_hex = "0x" + socket.inet_aton("232.1.1.1").hex()
    assert any(grp_hex in ln and src_hex in ln for ln in mcf.splitlines()), mcf
    # EXCLUDE: everything but OUT_IP2.
    m2 = join(topo, c, "232.1.1.2", mode=mc.EXCLUDE, sources=[topo.OUT_IP2])
    rx2 = topo.inside.run(m2.receiver, inside_ifindex(topo))
    send_all(outside_sender(topo, topo.OUT_IP2), "232.1.1.2", [b"excluded"])
    send_all(outside_sender(topo, topo.OUT_IP), "232.1.1.2", [b"allowed"])
    got = m2.recv(rx2, 2)
    assert got is not None and got[2] == b"allowed"
    assert m2.recv(rx2, 0.5) is None
    c.close()


def test_bandwidth_limit_closes_members(topo, stpd):
    s = stpd(conf(topo, mcast="  rate 2000\n  burst 4000\n"))
    a, b = control(topo, topo.INSIDE[0]), control(topo, topo.INSIDE[1])
    assert join(topo, a, GROUP4).rep == mc.REP_OK
    assert join(topo, b, GROUP4).rep == mc.REP_OK
    assert wait_until(lambda: igmp_lists(topo, GROUP4))
    send_all(outside_sender(topo), GROUP4, [bytes(1000)] * 10)
    for c in (a, b):
        note = topo.inside.run(c.read_notice, 5.0)
        assert note == (0xB3, GROUP4, PORT), note
        assert topo.inside.run(c.read_notice, 2.0) is None   # then closed
    s.wait_log("over 2000 bytes/s, stopping the group")
    assert wait_until(lambda: not igmp_lists(topo, GROUP4))


def test_max_time_in_group(topo, stpd):
    s = stpd(conf(topo, mcast="  max-time 1\n"))
    a = control(topo)
    assert join(topo, a, GROUP4).rep == mc.REP_OK
    t0 = time.time()
    assert topo.inside.run(a.read_notice, 5.0) == (0xB4, GROUP4, PORT)
    assert 0.8 < time.time() - t0 < 3.0
    s.wait_log("membership time limit")
    assert wait_until(lambda: not igmp_lists(topo, GROUP4))


def test_max_members(topo, stpd):
    stpd(conf(topo, mcast="  max-members 1\n"))
    a, b = control(topo, topo.INSIDE[0]), control(topo, topo.INSIDE[1])
    assert join(topo, a, GROUP4).rep == mc.REP_OK
    r = join(topo, b, GROUP4)
    assert isinstance(r, mc.Reply) and r.rep == 0x02
    a.close()
    b.close()


def test_encryption_off(topo, stpd):
    stpd(conf(topo, mcast="  encryption off\n"))
    a = control(topo)
    m = join(topo, a, GROUP4)
    assert m.rep == mc.REP_OK and m.key is None and m.suite == mc.SUITE_NONE
    rx = topo.inside.run(m.receiver, inside_ifindex(topo))
    send_all(outside_sender(topo), GROUP4, [b"in the clear"])
    raw = drain_raw(rx, 1.0)
    assert len(raw) == 1 and raw[0].endswith(b"in the clear")
    orx = outside_receiver(topo, GROUP4)
    topo.inside.run(m.send, b"out in the clear")
    orx.settimeout(2)
    assert orx.recvfrom(100)[0] == b"out in the clear"
    a.close()


def test_idle_relay_ends(topo, stpd):
    s = stpd(conf(topo, mcast="  idle-timeout 1\n"))
    a = control(topo)
    assert join(topo, a, GROUP4).rep == mc.REP_OK
    assert wait_until(lambda: igmp_lists(topo, GROUP4))
    assert topo.inside.run(a.read_notice, 5.0) == (0xB5, GROUP4, PORT)
    s.wait_log("no packet for 1 s")
    assert wait_until(lambda: not igmp_lists(topo, GROUP4))


def test_pipelined_requests_and_bad_input(topo, stpd):
    stpd(conf(topo))
    c = control(topo)
    # JOIN and LEAVE of two groups in one write: four replies, in order.
    reqs = b"".join(bytes([5, cmd, 0]) + mc.encode_addr(g, PORT)
                    for cmd, g in ((mc.CMD_JOIN, GROUP4), (mc.CMD_JOIN, "239.1.2.4"),
                                   (mc.CMD_LEAVE, GROUP4), (mc.CMD_LEAVE, "239.1.2.4")))
    c.sock.sendall(reqs)
    reps = [topo.inside.run(c.read_reply, cmd) for cmd in
            (mc.CMD_JOIN, mc.CMD_JOIN, mc.CMD_LEAVE, mc.CMD_LEAVE)]
    assert [r.rep for r in reps] == [0, 0, 0, 0]
    assert reps[0].key is not None and reps[2].key is None
    assert reps[0].host != reps[1].host            # two relays, two intranet groups
    # A bad filter block ends the connection with X'01'.
    c.sock.sendall(bytes([5, mc.CMD_JOIN_FILTER, 0]) + mc.encode_addr(GROUP4, PORT) +
                   bytes([9, 0]))
    assert topo.inside.run(c.read_reply, 0).rep == 0x01
    assert topo.inside.run(lambda: c.sock.recv(1)) == b""
    c.close()


def _mcast_gauges(topo, port):
    """(groups, members) from stpd's metrics listener in the gateway."""
    def get():
        import urllib.request
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            text = r.read().decode()
        vals = dict(ln.split() for ln in text.splitlines()
                    if ln.startswith("stp_mcast_relay_"))
        return int(vals["stp_mcast_relay_groups"]), int(vals["stp_mcast_relay_members"])
    return topo.gateway.run(get)


@pytest.mark.stpd_module("metrics")
def test_metrics_count_relays_and_members(topo, stpd):
    """stp_mcast_relay_groups / _members (docs/operations.md §1) follow JOIN,
    LEAVE and a closed control connection."""
    mport = 9180
    stpd(conf(topo) + "metrics { http 127.0.0.1:%d }\n" % mport)
    assert _mcast_gauges(topo, mport) == (0, 0)
    a, b = control(topo, topo.INSIDE[0]), control(topo, topo.INSIDE[1])
    assert join(topo, a, GROUP4).rep == mc.REP_OK
    assert join(topo, b, GROUP4).rep == mc.REP_OK
    assert join(topo, a, "239.1.2.4").rep == mc.REP_OK
    assert _mcast_gauges(topo, mport) == (2, 3)
    assert topo.inside.run(a.leave, "239.1.2.4", PORT).rep == mc.REP_OK
    assert wait_until(lambda: _mcast_gauges(topo, mport) == (1, 2))
    b.close()
    assert wait_until(lambda: _mcast_gauges(topo, mport) == (1, 1))
    a.close()
    assert wait_until(lambda: _mcast_gauges(topo, mport) == (0, 0))
