"""SETUP_UDP_TUNNEL (docs/protocol.md 5.10) between two networks, each
behind its own stpd (tunnel_topo.py: net A, gw A, transit, gw B, net B,
ip_forward 0 on both gateways). dig in net A asks dnsmasq in net B through
the tunnel; a sequenced stream goes there and back; tshark on the transit
link sees only DTLS / TLS; far-side failures come back as clear reply
codes; a cut transit link recovers; both stpd log the tunnel's end with
its bytes.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

from conftest import LoggedProcess, stpd_binary  # noqa: E402
from tls_fixtures import pki, need  # noqa: E402,F401  (pki is a fixture)
from tunnel_client import DTLS, TLS, Tunnel  # noqa: E402
from tunnel_topo import TunnelTopology as T  # noqa: E402

pytestmark = [pytest.mark.stpd_module("tunnel"), pytest.mark.stpd_module("tls")]

REMOTE = (T.GB_OUT, 1443)
DNS = (T.B, 53)
ECHO = (T.B, 7000)
MARK = b"TUNNEL-PAYLOAD-MARK-7f3a9c"
TRANSPORTS = [pytest.param(DTLS, id="dtls"), pytest.param(TLS, id="tls")]


class Daemon(LoggedProcess):
    wait_log_timeout = 15.0
    stop_timeout = 15

    def __init__(self, ns, argv, log_path, probe=None):
        self.log_path = log_path
        self.log = open(log_path, "w+")
        self.proc = ns.popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                             stderr=subprocess.STDOUT)
        if probe:
            deadline = time.time() + 10
            while not ns.run(probe):
                if self.proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("%s did not start: %s" % (argv[0], self.text()))
                time.sleep(0.05)


def tcp_probe(addr):
    def probe():
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(addr)
            return True
        except OSError:
            return False
        finally:
            s.close()
    return probe


def make_leaf(pki, name, ip):
    """A server certificate for a gateway's outside address."""
    if not os.path.exists(pki.path(name + ".pem")):
        # the name too: a remote stpd given by name is checked by it
        pki._leaf(name, "/CN=" + name, ["-addext",
                                         "subjectAltName=IP:%s,DNS:%s.gw.test" % (ip, name),
                                         "-addext", "extendedKeyUsage=serverAuth"], days=30)
    return pki.path(name + ".pem"), pki.path(name + ".key")


class Setup:
    def __init__(self, tmp, pki):
        self.tmp = str(tmp)
        self.pki = pki
        self.topo = T()
        self.daemons = []
        self.a = self.b = None

    def users(self):
        path = os.path.join(self.tmp, "users")
        h = subprocess.run(["openssl", "passwd", "-6", "secret"], stdout=subprocess.PIPE,
                           check=True).stdout.decode().strip()
        with open(path, "w") as f:
            f.write("gwa:%s\n" % h)
        return path

    def start_b(self, relay_rule="request pass { command tunnel-relay; to 10.80.4.0/24 }\n",
                certs=False):
        cert, key = make_leaf(self.pki, "gwb", T.GB_OUT)
        tls = "tls { cert %s; key %s; }\n" % (cert, key)
        methods = "userpass"
        if certs:
            tls = ("tls { cert %s; key %s; client-ca %s; client-cert require; cert-user on }\n"
                   % (cert, key, self.pki.path("ca.pem")))
            methods = "none userpass"
        conf = ("listen %s:1443 { tls on; }\n" % T.GB_OUT +
                "auth { methods %s; backend file; users-file %s }\n" % (methods, self.users()) +
                tls +
                "tunnel { cert %s; key %s; idle 30 }\n" % (cert, key) +
                # names as the far endpoint: net B's dnsmasq, B's own resolver
                "resolver %s\n" % T.B +
                "client pass { from 10.80.2.0/24 }\n" + relay_rule +
                "request block { }\n")
        path = os.path.join(self.tmp, "b.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.b = Daemon(self.topo.gwb, [stpd_binary(), "-c", path],
                        os.path.join(self.tmp, "b.log"), tcp_probe(REMOTE))
        self.daemons.append(self.b)
        return self.b

    def start_a(self, tunnel_extra="", idle=30, to=T.GB_OUT, extra=""):
        conf = ("listen %s:1080\n" % T.GA_IN +
                "auth { methods none; }\n"
                "tunnel { ca %s; idle %d; %s }\n" % (self.pki.path("ca.pem"), idle,
                                                     tunnel_extra) + extra +
                "client pass { from 10.80.1.0/24 }\n"
                "request pass { command tunnel; to %s }\n" % to +
                "request pass { command discover }\n"
                "request block { }\n")
        path = os.path.join(self.tmp, "a.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.a = Daemon(self.topo.gwa, [stpd_binary(), "-c", path],
                        os.path.join(self.tmp, "a.log"), tcp_probe((T.GA_IN, 1080)))
        self.daemons.append(self.a)
        return self.a

    def tunnel(self, trans, far=DNS, user="gwa", password="secret", remote=REMOTE, **kw):
        return self.topo.neta.run(lambda: Tunnel((T.GA_IN, 1080), remote, far, trans, user,
                                                 password, source=T.A, **kw))

    def close(self):
        rcs = []
        for d in self.daemons:
            if d.proc.poll() is None or d.log and not d.log.closed:
                rcs.append((d.stop(), d.log_path))
        self.topo.close()
        for rc, path in rcs:
            text = open(path).read()
            assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text, text
            assert rc == 0, "stpd exited %d:\n%s" % (rc, text)


@pytest.fixture
def env(tmp_path, pki):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    s = Setup(tmp_path, pki)
    yield s
    s.close()


def dnsmasq(env):
    need("dnsmasq", "dnsmasq")
    d = Daemon(env.topo.netb, ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv",
                               "--no-hosts", "--bind-interfaces", "--listen-address=" + T.B,
                               "--port=53", "--address=/far.tunnel.test/10.9.8.7",
                               "--address=/ns.netb.test/%s" % T.B,
                               "--address=/echo.netb.test/%s" % T.B,
                               "--address=/blocked.netb.test/%s" % T.B,
                               "--pid-file=", "--log-queries"],
               os.path.join(env.tmp, "dnsmasq.log"))
    env.daemons.append(d)
    return d


def echo_server(env, stop):
    """UDP echo in net B, on a thread inside the namespace."""
    s = env.topo.netb.run(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    env.topo.netb.run(s.bind, ECHO)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.settimeout(0.2)

    def loop():
        while not stop.is_set():
            try:
                d, a = s.recvfrom(65536)
            except socket.timeout:
                continue
            s.sendto(d, a)
        s.close()
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


class Forwarder:
    """A plain UDP port on 127.0.0.1 in net A whose datagrams go through the
    tunnel (what `dig` talks to)."""

    def __init__(self, env, tun):
        self.tun = tun
        self.sock = env.topo.neta.run(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        env.topo.neta.run(self.sock.bind, ("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.tun.udp.settimeout(0.2)
        self.peer = None
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self.up, self.down)]
        for t in self.threads:
            t.start()

    def up(self):
        while not self.stop.is_set():
            try:
                d, self.peer = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            self.tun.send(d)

    def down(self):
        while not self.stop.is_set():
            try:
                d = self.tun.recv()
            except socket.timeout:
                continue
            if self.peer:
                self.sock.sendto(d, self.peer)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.sock.close()


def stream(tun, n=2000, burst=10, pause=0.01):
    """n sequenced datagrams through the echo and back: (received seqs)."""
    got = []
    tun.udp.settimeout(0.2)
    # ~1000 datagrams/s: a correctness check on a loaded 2-core machine,
    # not a capacity test (bench/tunnel_bench.py is that)
    tun.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

    def rx():
        misses = 0
        while len(got) < n and misses < 15:
            try:
                d = tun.recv()
            except socket.timeout:
                misses += 1
                continue
            misses = 0
            got.append(int.from_bytes(d[:4], "big"))
    t = threading.Thread(target=rx, daemon=True)
    t.start()
    for i in range(n):
        tun.send(i.to_bytes(4, "big") + MARK + bytes(400))
        if i % burst == burst - 1:
            time.sleep(pause)
    t.join(30)
    return got


def tshark_start(env, path):
    need("tshark", "tshark")
    p = env.topo.transit.popen(["tshark", "-i", "ta", "-w", path, "-q"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.time() + 15
    buf = b""
    while time.time() < deadline and b"Capturing on" not in buf:
        buf += p.stderr.read1(4096) if hasattr(p.stderr, "read1") else p.stderr.read(1)
    return p


@pytest.mark.parametrize("trans", TRANSPORTS)
def test_dig_stream_and_transit(env, trans, tmp_path):
    """dig and a sequenced stream through the tunnel; the transit link sees
    only DTLS (or TLS) records; both ends log the end with bytes."""
    env.start_b()
    env.start_a()
    dnsmasq(env)
    cap = os.path.join(str(tmp_path), "transit.pcap")
    ts = tshark_start(env, cap)
    try:
        t = env.tunnel(trans)
        assert t.rep == 0
        assert t.bnd[0] == T.GA_IN
        fwd = Forwarder(env, t)
        out = env.topo.neta.sh("dig", "@127.0.0.1", "-p", str(fwd.port), "+tries=2",
                               "+time=5", "+short", "far.tunnel.test", "A")
        assert out.strip() == "10.9.8.7"
        fwd.close()
        t.close()
        env.a.wait_log("tunnel to %s:1443 (%s)" % (T.GB_OUT, "dtls" if trans == DTLS else "tls"))
    except BaseException:
        ts.kill()
        raise
    # the stream: to an echo server in net B and back, in order
    stop = threading.Event()
    echo_server(env, stop)
    t = env.tunnel(trans, far=ECHO)
    assert t.rep == 0
    got = stream(t)
    stop.set()
    t.close()
    ts.send_signal(signal.SIGINT)
    ts.wait(20)
    missing = sorted(set(range(2000)) - set(got))
    assert len(got) >= 2000 * 0.99, "lost %d of 2000: %s" % (len(missing), missing[:40])
    assert got == sorted(got), "reordered"
    a = env.a.wait_log("ended (control connection closed)")
    b = env.b.wait_log("tunnel relay to far end ended")
    assert "up=2000/%d " % (2000 * (4 + len(MARK) + 400)) in a
    assert "up=" in b and "down=" in b
    # transit: no payload byte in the clear, every datagram a DTLS record
    # (or every TCP segment with data a TLS record)
    raw = open(cap, "rb").read()
    assert MARK not in raw and b"tunnel" not in raw
    proto = "dtls" if trans == DTLS else "tls"
    # A TLS record longer than a segment: its first segments carry no
    # "tls" field but point to the frame it is reassembled in; a segment
    # sent again (a loaded machine) repeats bytes already checked, and
    # tshark does not dissect it again.
    flt = ("udp && !dtls" if trans == DTLS else
           "tcp.len > 0 && !tls && !tcp.reassembled_in && !tcp.analysis.retransmission")
    decode = ["-d", "tcp.port==1443,tls"]
    if trans == DTLS:
        ports = env.topo.transit.sh("tshark", "-r", cap, "-T", "fields", "-e", "udp.dstport",
                                    "-Y", "ip.dst==%s && udp" % T.GB_OUT).split()
        assert ports, "no UDP to gw B on the transit link"
        decode = ["-d", "udp.port==%s,dtls" % ports[0]]
    bad = env.topo.transit.sh("tshark", "-r", cap, *decode, "-Y", flt, "-T", "fields",
                              "-e", "frame.number")
    assert bad.strip() == "", "non-%s frames on the transit link: %s" % (proto, bad)
    n = env.topo.transit.sh("tshark", "-r", cap, *decode, "-Y", proto, "-T", "fields",
                            "-e", "frame.number")
    # DTLS: a record per datagram each way; TLS coalesces frames into records
    assert len(n.split()) > (2000 if trans == DTLS else 50), len(n.split())


@pytest.mark.parametrize("trans", TRANSPORTS)
def test_far_side_failures(env, trans):
    """Wrong credentials X'0C', the remote's rules X'0D', remote down X'05';
    the local rules refuse a remote they do not name: X'02'."""
    env.start_b(relay_rule="request pass { command tunnel-relay; to 10.80.4.0/24; port 53 }\n")
    env.start_a()
    t = env.tunnel(trans, password="wrong")
    assert t.rep == 0x0C
    t.close()
    env.a.wait_log("refused user gwa")
    t = env.tunnel(trans, far=ECHO)
    assert t.rep == 0x0D
    t.close()
    env.a.wait_log("the remote stpd refused: REP X'02'")
    t = env.topo.neta.run(lambda: Tunnel((T.GA_IN, 1080), (T.GB_IN, 1443), DNS, trans, "gwa",
                                         "secret", source=T.A))
    assert t.rep == 0x02
    t.close()
    env.b.stop()
    env.daemons.remove(env.b)
    t = env.tunnel(trans)
    assert t.rep == 0x05
    t.close()


@pytest.mark.parametrize("trans", TRANSPORTS)
def test_transit_cut(env, trans):
    """The transit link goes down mid-stream and comes back: the tunnel
    recovers (DTLS drops what went meanwhile; TCP retransmits for TLS), and
    closing the control connection then ends it on both stpd."""
    env.start_b()
    env.start_a()
    stop = threading.Event()
    echo_server(env, stop)
    t = env.tunnel(trans, far=ECHO)
    assert t.rep == 0
    t.send(b"before")
    assert t.recv() == b"before"
    env.topo.transit.ip("link", "set", "ta", "down")
    for i in range(20):
        t.send(b"during%d" % i)
    time.sleep(0.5)
    env.topo.transit.ip("link", "set", "ta", "up")
    t.udp.settimeout(1)
    deadline = time.time() + 20
    ok = False
    while time.time() < deadline and not ok:
        t.send(b"after")
        try:
            while True:
                if t.recv() == b"after":
                    ok = True
                    break
        except socket.timeout:
            pass
    assert ok, "no recovery after the link came back"
    stop.set()
    t.close()
    env.a.wait_log("ended (control connection closed)")
    env.b.wait_log("tunnel relay to far end ended")


def stp_binary():
    p = os.path.join(os.path.dirname(stpd_binary()), "..", "cli", "stp")
    if not os.path.exists(p):
        pytest.skip("no stp binary next to stpd")
    return os.path.abspath(p)


@pytest.mark.parametrize("trans", TRANSPORTS)
def test_stp_tunnel_cli(env, trans):
    """`stp tunnel` (libstp's stp_tunnel_open) exposes a local UDP port in
    net A: dig against it reaches dnsmasq in net B; with a wrong password
    it exits 20 (a reply code above X'09') naming X'0C'."""
    env.start_b()
    env.start_a()
    dnsmasq(env)
    extra = ["--tls"] if trans == TLS else []
    envv = dict(os.environ, STP_TUNNEL_PASSWORD="secret")
    p = env.topo.neta.popen([stp_binary(), "--proxy", "socks5://%s:1080" % T.GA_IN, "tunnel",
                             "--local", "127.0.0.1:5353", "--tunnel-user", "gwa"] + extra +
                            ["%s:1443" % T.GB_OUT, "%s:53" % T.B],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=envv)
    try:
        line = p.stderr.readline().decode()
        assert "stp: tunnel 127.0.0.1:5353 -> %s:53" % T.B in line, line
        out = env.topo.neta.sh("dig", "@127.0.0.1", "-p", "5353", "+tries=2", "+time=5",
                               "+short", "far.tunnel.test", "A")
        assert out.strip() == "10.9.8.7"
    finally:
        p.terminate()
        p.wait(10)
    env.a.wait_log("ended (control connection closed)")
    envv["STP_TUNNEL_PASSWORD"] = "wrong"
    r = env.topo.neta.popen([stp_binary(), "--proxy", "socks5://%s:1080" % T.GA_IN, "tunnel",
                             "--local", "127.0.0.1:5354", "--tunnel-user", "gwa"] + extra +
                            ["%s:1443" % T.GB_OUT, "%s:53" % T.B],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=envv)
    _, err = r.communicate(timeout=30)
    assert r.returncode == 20, err
    assert b"reply X'0C'" in err, err


def test_client_certificate_credentials(env):
    """CRED X'02': stpd A presents its configured client certificate (CN
    alice) and stpd B makes that the user (cert-user on); B's rules pass
    tunnel-relay for alice only. Without the certificate configured on A:
    X'01'."""
    env.start_b(relay_rule="request pass { command tunnel-relay; user alice; to 10.80.4.0/24 }\n",
                certs=True)
    env.start_a(tunnel_extra="client-cert %s; client-key %s" % (env.pki.path("alice.pem"),
                                                               env.pki.path("alice.key")))
    dnsmasq(env)
    t = env.tunnel(DTLS, user=None, password=None, cred=2)
    assert t.rep == 0
    fwd = Forwarder(env, t)
    out = env.topo.neta.sh("dig", "@127.0.0.1", "-p", str(fwd.port), "+tries=2", "+time=5",
                           "+short", "far.tunnel.test", "A")
    assert out.strip() == "10.9.8.7"
    fwd.close()
    t.close()
    env.b.wait_log("alice")
    # without the certificate (CRED X'01'), B's TLS refuses stpd A: X'0C'
    t = env.tunnel(DTLS, password="wrong")
    assert t.rep == 0x0C
    t.close()


def test_malformed_and_hung(env, tmp_path):
    """Malformed X'20' bodies get X'01'/X'08' and leave stpd A serving; a
    remote that accepts but never speaks TLS: X'04' after connect-timeout;
    a client that leaves during set-up: the thread ends, nothing leaks."""
    import struct
    env.start_a(tunnel_extra="connect-timeout 2")

    def raw(body):
        s = socket.create_connection((T.GA_IN, 1080), timeout=15)
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x20\x00\x01" + socket.inet_aton(T.GB_OUT) + struct.pack("!H", 1443) +
                  body)
        r = s.recv(10)
        s.close()
        return r[1] if len(r) > 1 else None
    far = b"\x01" + socket.inet_aton(T.B) + struct.pack("!H", 53)
    assert env.topo.neta.run(raw, b"\x02\x01\x00" + far) == 0x01      # TVER
    assert env.topo.neta.run(raw, b"\x01\x07\x00" + far) == 0x01      # TRANS
    assert env.topo.neta.run(raw, b"\x01\x01\x05" + far) == 0x01      # CRED
    assert env.topo.neta.run(raw, b"\x01\x01\x01\x00") == 0x01       # empty UNAME
    assert env.topo.neta.run(raw, b"\x01\x01\x00\x09") == 0x08       # F.ATYP
    # a "remote" that accepts and never answers
    lst = env.topo.gwb.run(lambda: socket.socket())
    env.topo.gwb.run(lst.bind, REMOTE)
    lst.listen(8)
    t0 = time.time()
    t = env.tunnel(DTLS)
    assert t.rep == 0x04
    assert 1.5 < time.time() - t0 < 10
    t.close()
    env.a.wait_log("timed out")
    # a client that leaves while stpd A waits for the silent remote
    s = env.topo.neta.run(lambda: socket.create_connection((T.GA_IN, 1080), timeout=5))
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    from tunnel_client import setup_request
    s.sendall(setup_request(REMOTE, (T.B, 53), DTLS, "gwa", "secret"))
    time.sleep(0.3)
    s.close()
    env.a.wait_log("tunnel to %s:1443 (dtls)" % T.GB_OUT)
    lst.close()
    assert env.a.proc.poll() is None


@pytest.mark.parametrize("trans", TRANSPORTS)
def test_idle_timeout(env, trans):
    """An idle tunnel ends on stpd A's timer (idle 2 s) with its counts; the
    client's control connection closes and stpd B ends its side."""
    env.start_b()
    env.start_a(idle=2)
    stop = threading.Event()
    echo_server(env, stop)
    t = env.tunnel(trans, far=ECHO)
    assert t.rep == 0
    t.send(b"ping")
    assert t.recv() == b"ping"
    env.a.wait_log("ended (tunnel idle timeout): up=1/4 down=1/4", timeout=15)
    t.ctl.settimeout(10)
    assert t.ctl.recv(1) == b""
    t.close()
    env.b.wait_log("tunnel relay to far end ended")
    a = env.a.text()
    assert "cmd=tunnel target=%s:1443" % T.GB_OUT in a
    assert "cmd=tunnel-relay target=%s:7000" % T.B in env.b.text()
    stop.set()
    # feature discovery names the tunnel's transports and limits; X'21'
    # is not offered to this client (A's rules), so nothing about it
    out = env.topo.neta.sh(stp_binary(), "features", "socks5://%s:1080" % T.GA_IN)
    assert "command X'20': transports=X'01',X'02'" in out, out
    assert "command X'20': idle-timeout=2" in out, out
    assert "command X'20': datagram-max=1500" in out, out
    assert "X'21'" not in out, out


@pytest.mark.parametrize("trans", TRANSPORTS)
def test_remote_drops(env, trans):
    """stpd B dying (SIGKILL: its sockets close) ends the tunnel on stpd A,
    which closes the client's control connection."""
    env.start_b()
    env.start_a()
    stop = threading.Event()
    echo_server(env, stop)
    t = env.tunnel(trans, far=ECHO)
    assert t.rep == 0
    t.send(b"ping")
    assert t.recv() == b"ping"
    env.b.proc.kill()
    env.b.proc.wait(10)
    env.b.log.close()
    env.daemons.remove(env.b)
    # DTLS: the TLS connection's FIN; TLS: OpenSSL's "unexpected EOF" (no
    # close_notify from a killed process)
    a = env.a.wait_log("ended (the remote", timeout=15)
    assert ("ended (the remote stpd closed the tunnel)" in a or
            "ended (the remote connection failed" in a)
    t.ctl.settimeout(10)
    assert t.ctl.recv(1) == b""
    t.close()
    stop.set()


@pytest.mark.parametrize("trans", TRANSPORTS)
def test_far_endpoint_by_name(env, trans):
    """F by name (ATYP X'03'): stpd B looks it up with its own resolver (net
    B's dnsmasq, which alone knows the names) and its rules see the name:
    dig and an echo through a tunnel to a name; an unknown name gets X'04'
    (B's look-up failure, as for CONNECT, passed on by A); a name B's rules
    block by name gets X'0D'; `stp tunnel` takes FAR as a name."""
    env.start_b(relay_rule="request block { command tunnel-relay; to blocked.netb.test }\n"
                "request pass { command tunnel-relay; to 10.80.4.0/24 }\n")
    env.start_a()
    dns = dnsmasq(env)
    t = env.tunnel(trans, far=("ns.netb.test", 53))
    assert t.rep == 0
    fwd = Forwarder(env, t)
    out = env.topo.neta.sh("dig", "@127.0.0.1", "-p", str(fwd.port), "+tries=2",
                           "+time=5", "+short", "far.tunnel.test", "A")
    assert out.strip() == "10.9.8.7"
    fwd.close()
    t.close()
    stop = threading.Event()
    echo_server(env, stop)
    t = env.tunnel(trans, far=("echo.netb.test", 7000))
    assert t.rep == 0
    for i in range(5):
        t.send(b"named%d" % i)
        assert t.recv() == b"named%d" % i
    t.close()
    stop.set()
    env.b.wait_log("cmd=tunnel-relay target=echo.netb.test:7000")
    env.a.wait_log("for echo.netb.test:7000 ended (control connection closed): "
                   "up=5/30 down=5/30")
    # B asked net B's DNS (from its inside address); A asked nobody
    d = dns.wait_log("echo.netb.test from %s" % T.GB_IN)
    assert "from %s" % T.GA_OUT not in d and "from %s" % T.A not in d
    # unknown there: X'04' as a failed CONNECT look-up, through A
    t = env.tunnel(trans, far=("nope.netb.test", 7000))
    assert t.rep == 0x04
    t.close()
    env.b.wait_log("resolving nope.netb.test failed")
    env.a.wait_log("cannot reach the far endpoint: REP X'04'")
    # B's rules match the name (it resolves inside the allowed range)
    t = env.tunnel(trans, far=("blocked.netb.test", 7000))
    assert t.rep == 0x0D
    t.close()
    env.a.wait_log("the remote stpd refused: REP X'02'")
    # stp tunnel with FAR by name; nothing in net A resolves it
    extra = ["--tls"] if trans == TLS else []
    envv = dict(os.environ, STP_TUNNEL_PASSWORD="secret")
    p = env.topo.neta.popen([stp_binary(), "--proxy", "socks5://%s:1080" % T.GA_IN, "tunnel",
                             "--local", "127.0.0.1:5355", "--tunnel-user", "gwa"] + extra +
                            ["%s:1443" % T.GB_OUT, "ns.netb.test:53"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=envv)
    try:
        line = p.stderr.readline().decode()
        assert "stp: tunnel 127.0.0.1:5355 -> ns.netb.test:53" in line, line
        out = env.topo.neta.sh("dig", "@127.0.0.1", "-p", "5355", "+tries=2", "+time=5",
                               "+short", "far.tunnel.test", "A")
        assert out.strip() == "10.9.8.7"
    finally:
        p.terminate()
        p.wait(10)
    env.b.wait_log("cmd=tunnel-relay target=ns.netb.test:53")
    # a name B cannot resolve: stp tunnel exits 10 + X'04'
    r = env.topo.neta.popen([stp_binary(), "--proxy", "socks5://%s:1080" % T.GA_IN, "tunnel",
                             "--local", "127.0.0.1:5356", "--tunnel-user", "gwa"] + extra +
                            ["%s:1443" % T.GB_OUT, "nope.netb.test:53"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=envv)
    _, err = r.communicate(timeout=30)
    assert r.returncode == 14, err


def stpify_bin():
    if os.environ.get("STPIFY"):  # an ASan stpd's tests take the plain build's stpify
        return os.environ["STPIFY"]
    p = os.path.join(os.path.dirname(stpd_binary()), "..", "shim", "stpify")
    if not os.path.exists(p):
        pytest.skip("no stpify binary next to stpd")
    return os.path.abspath(p)


SEQ_CLIENT = r'''
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dst = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
got, srcs = [], set()
for base in range(0, n, 10):
    for i in range(base, min(base + 10, n)):
        s.sendto(i.to_bytes(4, "big") + b"SEQ" + bytes(200), dst)
    for _ in range(min(10, n - base)):
        try:
            d, a = s.recvfrom(2048)
        except socket.timeout:
            break
        got.append(int.from_bytes(d[:4], "big"))
        srcs.add(a)
print("dst", dst[0], dst[1])
print("srcs", " ".join("%s:%d" % a for a in sorted(srcs)))
print("got", " ".join(map(str, got)))
'''


def run_stpify(env, trans, argv, dests="10.80.4.0/24", timeout=90, userinfo="gwa",
               tunnel=None):
    scheme = "tls" if trans == TLS else "dtls"
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
         "STP_PROXY": "socks5://%s:1080" % T.GA_IN, "STP_LOG": "info", "STP_TIMEOUT": "20",
         "STP_TUNNEL": tunnel or "%s://%s@%s:1443 %s" % (scheme, userinfo, T.GB_OUT, dests)}
    if ":" not in userinfo:
        e["STP_TUNNEL_PASSWORD"] = "secret"
    if os.environ.get("STPIFY_LIB"):
        e["STPIFY_LIB"] = os.environ["STPIFY_LIB"]
    full = ["env"] + ["%s=%s" % kv for kv in e.items()] + [stpify_bin()] + argv
    r = subprocess.run(["ip", "netns", "exec", env.topo.neta.name] + full,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


@pytest.mark.parametrize("trans", TRANSPORTS)
def test_stpify_through_tunnel(env, trans, tmp_path):
    """stpify's `tunnel` setting (STP_TUNNEL): an unmodified dig in net A
    (no `stp tunnel` process) asks dnsmasq in net B through a tunnel that
    stpify opens on dig's own socket; a python UDP client's sequenced
    exchange with the echo in net B comes back complete and in order, from
    the echo's address; to a name (stpify's fake DNS) the name goes to
    stpd B, which resolves it; a destination outside the list is not
    tunnelled (UDP ASSOCIATE, which stpd A's rules refuse here)."""
    need("dig", "dnsutils")
    env.start_b()
    env.start_a()
    dnsmasq(env)
    scheme = "dtls" if trans == DTLS else "tls"
    rc, out, err = run_stpify(env, trans, ["dig", "@" + T.B, "far.tunnel.test", "A", "+short",
                                           "+tries=3", "+time=5"])
    assert out.strip().splitlines()[-1:] == ["10.9.8.7"], err
    assert "UDP tunnel association for fd" in err, err
    assert "tunnel %s://gwa@%s:1443" % (scheme, T.GB_OUT) in err, err
    a = env.a.wait_log("tunnel to %s:1443 (%s) for %s:53 ended" % (T.GB_OUT, scheme, T.B))
    assert "cmd=tunnel target=%s:1443" % T.GB_OUT in a
    # a sequenced exchange from python, by address, then by name
    stop = threading.Event()
    echo_server(env, stop)
    prog = tmp_path / "seq.py"
    prog.write_text(SEQ_CLIENT)
    n = 300
    for host in (T.B, "echo.netb.test"):
        # the password in the URL this time: never logged
        rc, out, err = run_stpify(env, trans, ["python3", str(prog), host, "7000", str(n)],
                                  dests="10.80.4.0/24, .netb.test", userinfo="gwa:secret")
        assert rc == 0, err
        assert "secret" not in err and "UDP tunnel association for fd" in err, err
        lines = dict(line.split(" ", 1) for line in out.strip().splitlines() if " " in line)
        got = [int(x) for x in lines.get("got", "").split()]
        assert len(got) >= n * 0.99, "lost %d of %d: %s" % (n - len(got), n, err[-2000:])
        assert got == sorted(got) and len(set(got)) == len(got), "reordered or duplicated"
        dst = lines["dst"].split()[0]
        assert lines["srcs"] == "%s:7000" % dst, lines  # replies come from the peer
        env.b.wait_log("cmd=tunnel-relay target=%s:7000" % host)
    assert dst.startswith("240."), dst  # the name's fake address: nothing resolved in net A
    stop.set()
    # not in the list: UDP ASSOCIATE as usual (stpd A's rules refuse it)
    rc, out, err = run_stpify(env, trans, ["dig", "@" + T.B, "far.tunnel.test", "A", "+short",
                                           "+tries=1", "+time=2"], dests="192.0.2.0/24")
    assert "10.9.8.7" not in out
    assert "UDP tunnel association" not in err, err
    # a value stpify cannot read: said so, and the tunnel stays off
    send = ("import socket\ntry:\n socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            ".sendto(b'x', ('%s', 9))\nexcept OSError:\n pass\n" % T.B)
    rc, out, err = run_stpify(env, trans, ["python3", "-c", send],
                              tunnel="ftp://gwa@%s:1443" % T.GB_OUT)
    assert "tunnel: want dtls:// or tls://" in err and "tunnel off" in err, err


@pytest.mark.parametrize("trans", TRANSPORTS)
def test_remote_stpd_by_name(env, trans):
    """The remote stpd given by name: stpd A looks it up with its own
    resolver (a dnsmasq on gateway A that alone knows the name), on its
    loop, and checks B's certificate against the name; an unknown name is
    X'04'. Nothing in net A resolves anything."""
    need("dnsmasq", "dnsmasq")
    d = Daemon(env.topo.gwa, ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv",
                              "--no-hosts", "--bind-interfaces", "--listen-address=" + T.GA_IN,
                              "--port=53", "--address=/gwb.gw.test/%s" % T.GB_OUT,
                              "--pid-file=", "--log-queries"],
               os.path.join(env.tmp, "dnsmasq-a.log"))
    env.daemons.append(d)
    env.start_b()
    env.start_a(to=".gw.test", extra="resolver %s\n" % T.GA_IN)
    dns = dnsmasq(env)
    t = env.tunnel(trans, remote=("gwb.gw.test", REMOTE[1]))
    assert t.rep == 0
    fwd = Forwarder(env, t)
    out = env.topo.neta.sh("dig", "@127.0.0.1", "-p", str(fwd.port), "+tries=2",
                           "+time=5", "+short", "far.tunnel.test", "A")
    assert out.strip() == "10.9.8.7"
    fwd.close()
    t.close()
    d.wait_log("gwb.gw.test from %s" % T.GA_IN)
    env.a.wait_log("tunnel to gwb.gw.test:1443 (%s)" % ("dtls" if trans == DTLS else "tls"))
    t = env.tunnel(trans, remote=("nowhere.gw.test", REMOTE[1]))
    assert t.rep == 0x04
    t.close()
    env.a.wait_log("resolving the remote stpd nowhere.gw.test failed")
