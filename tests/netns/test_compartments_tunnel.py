"""SETUP_UDP_TUNNEL (docs/protocol.md 5.10) from a compartment: stpd A is
the compartments stpd of test_compartments' figure 4; a client in app1 asks
it for a tunnel to stpd B, which runs in the inside network (10.81.9.2:1443,
TLS), toward a UDP echo at 10.81.9.3:7. Only a socket made in the inside
compartment can reach B (nothing routes between the namespaces), so a
working tunnel proves A made its sockets toward B where the rule says, and
its client-facing socket in app1. A rule that names no crossing for app2
refuses the tunnel."""

import os
import re
import shutil
import socket
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

from conftest import stpd_binary  # noqa: E402
from test_compartments import World  # noqa: E402,F401
from test_compartments import world  # noqa: E402,F401  (a fixture)
from test_tunnel import Daemon, make_leaf, tcp_probe  # noqa: E402
from tls_fixtures import pki  # noqa: E402,F401  (pki is a fixture)
from tunnel_client import DTLS, TLS, Tunnel  # noqa: E402

REMOTE = ("10.81.9.2", 1443)
ECHO = ("10.81.9.3", 7)


class Echo:
    def __init__(self, ns):
        self.sock = ns.run(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        ns.run(self.sock.bind, ECHO)
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                d, peer = self.sock.recvfrom(4096)
                self.sock.sendto(b"echo:" + d, peer)
            except OSError:
                return

    def close(self):
        self.sock.close()


def start_b(world, pki):  # noqa: F811
    cert, key = make_leaf(pki, "cmpb", REMOTE[0])
    users = os.path.join(world.tmp, "users")
    h = subprocess.run(["openssl", "passwd", "-6", "secret"], stdout=subprocess.PIPE,
                       check=True).stdout.decode().strip()
    with open(users, "w") as f:
        f.write("gwa:%s\n" % h)
    conf = ("listen %s:%d { tls on; }\n" % REMOTE +
            "auth { methods userpass; backend file; users-file %s }\n" % users +
            "tls { cert %s; key %s; }\n" % (cert, key) +
            "tunnel { cert %s; key %s; idle 30 }\n" % (cert, key) +
            "client pass { from 10.81.9.0/24 }\n"
            "request pass { command tunnel-relay; to %s; port %d }\n" % ECHO +
            "request block { }\n")
    path = os.path.join(world.tmp, "b.conf")
    with open(path, "w") as f:
        f.write(conf)
    return Daemon(world.inside, [stpd_binary(), "-c", path], os.path.join(world.tmp, "b.log"),
                  tcp_probe(REMOTE))


@pytest.mark.parametrize("trans", [pytest.param(DTLS, id="dtls"), pytest.param(TLS, id="tls")])
def test_tunnel_from_a_compartment(world, pki, trans):  # noqa: F811
    if not shutil.which("openssl"):
        pytest.fail("openssl missing (scripts/deps.sh)")
    echo = Echo(world.inside)
    world.servers.append(echo)
    b = start_b(world, pki)
    try:
        rules = ("request pass { from-compartment app1; to-compartment inside; "
                 "command tunnel; to %s; port %d }\n" % REMOTE)
        conf = world.conf(rules)
        # stpd A runs as nobody: the CA it checks B against goes in a
        # directory nobody may enter (pytest's are 0700)
        conf = conf.replace("user nobody\n", "user nobody\ntunnel { ca @CA@; idle 30 }\n")
        _start(world, conf, pki)
        t = world.app1.run(lambda: Tunnel(("127.0.0.1", 1080), REMOTE, ECHO, trans, "gwa",
                                          "secret", timeout=20))
        try:
            assert t.rep == 0, t.rep
            assert t.bnd[0] == "127.0.0.1"  # the client side is in app1
            got = []
            for i in range(5):
                t.send(b"d%d" % i)
                got.append(t.recv())
            assert got == [b"echo:d%d" % i for i in range(5)]
        finally:
            t.close()
        text = b.wait_log("tunnel relay")
        assert "10.81.9.3:7" in text
        # app2 has no rule for tunnels: refused at A
        t2 = world.app2.run(lambda: Tunnel(("127.0.0.2", 1080), REMOTE, ECHO, trans, "gwa",
                                           "secret", timeout=20))
        try:
            assert t2.rep == 0x02, t2.rep
        finally:
            t2.close()
        text = world.wait_log("compartment=app1->inside")
        assert re.search(r"cmd=tunnel .*compartment=app1->inside", text), text
    finally:
        assert b.stop() == 0, b.text()


def _start(world, conf, pki):  # noqa: F811
    import tempfile
    d = tempfile.mkdtemp(prefix="stpcmpca")
    os.chmod(d, 0o755)
    ca = os.path.join(d, "ca.pem")
    shutil.copy(pki.path("ca.pem"), ca)
    os.chmod(ca, 0o644)
    world.servers.append(_Rm(d))
    world.start(conf.replace("@CA@", ca))


class _Rm:
    def __init__(self, d):
        self.d = d

    def close(self):
        shutil.rmtree(self.d, ignore_errors=True)
