"""The control connection reads plaintext whatever carries it (issue 11's
contract test): multicast JOIN and LEAVE on one control connection, plain,
inside method X'86' and on a SOCKS-over-TLS ("tls on") listener. Before the
connection object, a LEAVE inside X'86' was read as ciphertext ("bad
multicast request: bad version") and the session closed.
"""

import os
import socket
import ssl
import sys

import pytest

import mcast_client as mc
from test_mcast import GROUP4, GROUP6, PORT, igmp_lists, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import x86_client as X  # noqa: E402
from tls_fixtures import pki  # noqa: E402,F401  (pki is a fixture)

pytestmark = [pytest.mark.stpd_module("tls"), pytest.mark.stpd_module("mcast")]

TLS_PORT = 1443


def conf(topo, pki):
    return ("listen %s:1080\n" % topo.GW_IN +
            "listen [%s]:1080\n" % topo.GW_IN6 +
            "listen %s:%d { tls on; }\n" % (topo.GW_IN, TLS_PORT) +
            "auth { methods ssl none; }\n"
            "tls { cert %s; key %s; subauth none; }\n" % (pki.path("server.pem"),
                                                           pki.path("server.key")) +
            "client pass { from 10.77.2.0/24 fd77:2::/64 }\n"
            "request pass { }\n"
            "mcast {\n"
            "  external-interface gwo\n"
            "  internal-interface gwi\n"
            "  pool 239.255.0.0/16 ff15::/16\n"
            "}\n")


class X86Sock:
    """The socket interface mcast_client.Control needs, over X'86' frames:
    requests go out in STATE X'03' frames, replies come back decrypted."""

    def __init__(self, x):
        self.x = x

    def getpeername(self):
        return self.x.sock.getpeername()

    def getsockname(self):
        return self.x.sock.getsockname()

    def settimeout(self, t):
        self.x.sock.settimeout(t)

    def sendall(self, b):
        self.x.send_plain(X.DATA, b)

    def recv(self, n):
        try:
            first = self.x.recv_plain(1, X.DATA)
        except X.Closed:
            return b""
        rest, self.x.plain = self.x.plain[:n - 1], self.x.plain[n - 1:]
        return first + rest

    def close(self):
        self.x.close()


def x86_control(topo, pki):
    def make():
        x = X.X86Client(topo.GW_IN, 1080, pki.client_context(), server_hostname="localhost",
                        source=topo.INSIDE[0])
        assert x.greeting([X.METHOD_SSL]) == X.METHOD_SSL
        x.handshake()
        assert x.options([]) == []
        return mc.Control(X86Sock(x))
    c = topo.inside.run(make)
    topo.clients.append(c)
    return c


def tls_listener_control(topo, pki):
    def make():
        raw = socket.create_connection((topo.GW_IN, TLS_PORT), timeout=5,
                                       source_address=(topo.INSIDE[0], 0))
        s = pki.client_context().wrap_socket(raw, server_hostname="localhost")
        c = mc.Control(s)
        c.greet(None, None)
        return c
    c = topo.inside.run(make)
    topo.clients.append(c)
    return c


def plain_control(topo, pki):
    c = topo.inside.run(mc.Control.connect, (topo.GW_IN, 1080), None, None, 5.0,
                        topo.INSIDE[0])
    topo.clients.append(c)
    return c


@pytest.mark.parametrize("carrier", [plain_control, x86_control, tls_listener_control],
                         ids=["plain", "x86", "tls-listener"])
def test_join_leave_on_one_control_connection(topo, stpd, pki, carrier):
    p = stpd(conf(topo, pki))
    ctl = carrier(topo, pki)
    for group in (GROUP4, GROUP6, GROUP4):
        r = topo.inside.run(lambda: ctl.join(group, PORT))
        assert r.rep == mc.REP_OK, r
        assert wait_until(lambda: igmp_lists(topo, group)), "relay did not join"
        r = topo.inside.run(ctl.leave, group, PORT)
        assert r.rep == mc.REP_OK and (r.host, r.port) == (group, PORT), r
        assert wait_until(lambda: not igmp_lists(topo, group)), "group still joined"
    # Pipelined: JOIN and LEAVE in one write (one TLS record) are both read.
    def both():
        msg = bytes([5, mc.CMD_JOIN, 0]) + mc.encode_addr(GROUP4, PORT)
        msg += bytes([5, mc.CMD_LEAVE, 0]) + mc.encode_addr(GROUP4, PORT)
        ctl.sock.sendall(msg)
        return ctl.read_reply(mc.CMD_JOIN), ctl.read_reply(mc.CMD_LEAVE)
    j, lv = topo.inside.run(both)
    assert (j.rep, lv.rep) == (mc.REP_OK, mc.REP_OK), (j, lv)
    # Still one live session: a last JOIN, then the client's orderly close
    # ends it and the group is left.
    assert topo.inside.run(lambda: ctl.join(GROUP4, PORT)).rep == mc.REP_OK
    assert wait_until(lambda: igmp_lists(topo, GROUP4))
    topo.clients.remove(ctl)
    topo.inside.run(ctl.close)
    assert wait_until(lambda: not igmp_lists(topo, GROUP4)), "left joined after close"
    text = p.wait_log("control connection closed")
    assert "bad multicast request" not in text, text


# ---------------------------------------------------------------------------
# Flows: each request on a control connection is a flow with its own rule
# slot and log line.

def flow_conf(topo, rules=""):
    return ("listen %s:1080\n" % topo.GW_IN +
            "client pass { from 10.77.2.0/24 }\n" + rules +
            "request pass { }\n"
            "mcast {\n"
            "  external-interface gwo\n"
            "  internal-interface gwi\n"
            "  pool 239.255.0.0/16 ff15::/16\n"
            "}\n")


def test_each_membership_is_a_flow_with_its_log_line(topo, stpd):
    p = stpd(flow_conf(topo))
    ctl = plain_control(topo, None)
    m = topo.inside.run(lambda: ctl.join(GROUP4, PORT))
    assert m.rep == mc.REP_OK
    topo.inside.run(lambda: m.send(b"x" * 100))
    topo.inside.run(lambda: m.send(b"y" * 50))
    assert topo.inside.run(lambda: ctl.join("239.1.2.4", PORT)).rep == mc.REP_OK
    assert topo.inside.run(ctl.leave, GROUP4, PORT).rep == mc.REP_OK
    text = p.wait_log('target=239.1.2.3:5000 up=150 down=0')
    line = [l for l in text.splitlines() if "flow id=" in l and "239.1.2.3" in l][0]
    assert " cmd=mcast-join " in line and 'rep="succeeded" result="left"' in line, line
    sid = line.split("flow id=")[1].split(".")[0]
    assert "flow id=%s.1 " % sid in line
    # The second membership ends with the session, under its reason, then
    # the session's own line.
    topo.clients.remove(ctl)
    topo.inside.run(ctl.close)
    p.wait_log("flow id=%s.2 " % sid)
    text = p.wait_log("session id=%s " % sid)
    line2 = [l for l in text.splitlines() if "flow id=%s.2 " % sid in l][0]
    assert "target=239.1.2.4:5000" in line2 and 'result="control connection closed"' in line2
    lines = text.splitlines()
    idx = [i for i, l in enumerate(lines) if "session id=%s " % sid in l]
    assert idx and idx[0] > lines.index(line2), "the session's line comes last"


def test_rule_sessions_limit_counts_memberships(topo, stpd):
    """A rule's `sessions` limit is held by each membership (flow), not
    once per control connection: with `sessions 1`, a second group on the
    same connection is refused until the first is left."""
    p = stpd(flow_conf(topo, "request pass { command mcast-join; sessions 1 }\n"))
    ctl = plain_control(topo, None)
    assert topo.inside.run(lambda: ctl.join(GROUP4, PORT)).rep == mc.REP_OK
    r = topo.inside.run(lambda: ctl.join("239.1.2.4", PORT))
    assert r.rep == mc.REP_NEITHER, r
    p.wait_log("session limit of rule reached")
    assert topo.inside.run(ctl.leave, GROUP4, PORT).rep == mc.REP_OK
    assert topo.inside.run(lambda: ctl.join("239.1.2.4", PORT)).rep == mc.REP_OK
