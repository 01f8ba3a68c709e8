"""Compartments with unmodified programs (issue 15, seed 001 figure 4): the
topology of test_compartments.py (app1, app2, inside, outside, stpd's own
namespace; no veth anywhere, ip_forward 0), with the clients in the middle
compartments run under stpify instead of speaking SOCKS themselves:

- curl without a proxy option, and a python socket script, reach exactly
  the inside hosts and ports their compartment's rules allow (EACCES and
  stpd's deny line for the rest); a name resolves in the compartment the
  connection goes to;
- dig over UDP (UDP ASSOCIATE, and TRANSPARENT X'04' with the user engine)
  reaches the inside DNS server only from app1;
- a multicast receiver in app1 (`stp mcast join`) hears a sender in the
  inside compartment through a relay whose member side is in app1 and whose
  group side is inside; app2, without a rule, is refused.

Needs root, curl, dig, dnsmasq.
"""

import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from test_compartments import REPO, World
from test_transparent import TCP, tcp_sock, transparent

# app1 -> inside: HTTP as in test_compartments; DNS to 10.81.9.53:53 over
# UDP ASSOCIATE or TRANSPARENT; the multicast group 239.1.2.3.
# (rules are one line each: stpd.conf has no line continuation)
RULES = """
request pass { from-compartment app1; to-compartment inside; command transparent; to 10.81.9.2; port 80; ptcl tcp }
mcast {
    pool 239.255.0.0/16
}
request pass { from-compartment app1; to-compartment inside; command udpassociate udpreply transparent; to 10.81.9.53; port 53 }
request block { command udpassociate udpreply transparent; to 0.0.0.0/0 }
request pass { from-compartment app1; to-compartment inside; command udpassociate }
request pass { from-compartment app1; to-compartment inside; command mcast-join; to 239.1.2.3 }
request pass { from-compartment app2; to-compartment inside; command mcast-join; to 239.1.2.3; mcast receive }
request pass { from-compartment app1; command mux }
"""

GROUP, PORT = "239.1.2.3", 5000


def _binary(env, rel):
    if os.environ.get(env):
        return os.environ[env]
    p = os.path.join(REPO, "build", rel)
    if not os.path.exists(p):
        pytest.skip("no %s (set %s=)" % (rel, env))
    return p


@pytest.fixture
def world(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for prog in ("curl", "dnsmasq", "dig"):
        if not shutil.which(prog):
            pytest.skip("%s not installed" % prog)
    w = World(str(tmp_path))
    w.stpify = _binary("STPIFY", "src/shim/stpify")
    w.stp = _binary("STP_BIN", "src/cli/stp")
    w.clients = []
    w.start(w.conf(RULES))
    yield w
    for p in w.clients:
        if p.poll() is None:
            p.kill()
            p.wait()
    w.stpd.send_signal(signal.SIGTERM)
    rc = w.stpd.wait(20)
    w.close()
    text = w.text()
    assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text, text
    assert rc == 0, text


PROXY = {"app1": "127.0.0.1", "app2": "127.0.0.2"}


def stpified(w, ns, argv, extra_env=None, timeout=60):
    """argv under stpify in ns (app1 or app2), its own proxy's listener."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "STP_LOG": "info",
           "STP_TIMEOUT": "10", "STP_AUTOCONF": "0"}
    env.update(extra_env or {})
    role = "app1" if ns is w.app1 else "app2"
    cmd = (["ip", "netns", "exec", ns.name, "env", "-i"] +
           ["%s=%s" % kv for kv in env.items()] +
           [w.stpify, "--proxy", "socks5h://%s:1080" % PROXY[role]] + argv)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def wait_re(w, pattern, timeout=10.0):
    """The log once pattern is in it (session lines come when the client's
    connection has been closed, maybe after the client exited)."""
    deadline = time.time() + timeout
    while True:
        text = w.text()
        if re.search(pattern, text) or time.time() > deadline:
            assert re.search(pattern, text), (pattern, text)
            return text
        time.sleep(0.05)


def deny_lines(w, listener):
    return [ln for ln in w.text().splitlines()
            if " deny " in " %s " % ln and "listener=%s " % listener in ln + " "]


# ---------------------------------------------------------------------------
# TCP: curl and a python socket program, neither knowing about SOCKS

def test_curl_under_stpify_reaches_only_its_rules(world):
    w = world

    def curl(ns, url):
        return stpified(w, ns, ["curl", "-sS", "-m", "10", url])

    assert curl(w.app1, "http://10.81.9.2/")[:2] == (0, "10.81.9.2:80\n")
    assert curl(w.app1, "http://www.test/")[:2] == (0, "10.81.9.2:80\n")  # inside's DNS
    assert curl(w.app2, "http://10.81.9.3/")[:2] == (0, "10.81.9.3:80\n")
    for ns, url in ((w.app1, "http://10.81.9.2:8080/"), (w.app1, "http://10.81.9.3/"),
                    (w.app1, "http://10.81.8.2/"), (w.app2, "http://10.81.9.2/"),
                    (w.app2, "http://www.test/")):
        rc, out, err = curl(ns, url)
        assert rc == 7 and out == "", (url, rc, out, err)  # could not connect
    wait_re(w, r"(?:session|flow) .*listener=app1-l .*cmd=connect target=10\.81\.9\.2:80 .*"
               r"compartment=app1->inside")
    wait_re(w, r"(?:session|flow) .*listener=app1-l .*target=www\.test:80 .*"
               r"compartment=app1->inside")
    wait_re(w, r"(?:session|flow) .*listener=app2-l .*target=10\.81\.9\.3:80 .*"
               r"compartment=app2->inside")
    d1, d2 = " ".join(deny_lines(w, "app1-l")), " ".join(deny_lines(w, "app2-l"))
    for target in ("10.81.9.2:8080", "10.81.9.3:80", "10.81.8.2:80"):
        assert "target=%s " % target in d1 + " ", d1
    assert "target=10.81.9.2:80 " in d2, d2
    # No rule sends app2's names inside: www.test is looked up in app2,
    # which has no DNS server, and the connection fails there.
    wait_re(w, r"(?:session|flow) .*listener=app2-l .*target=www\.test:80 .*"
               r"rep=\"host unreachable\".*compartment=app2->app2")


SOCKET_SCRIPT = r'''
import errno, socket, sys
for spec in sys.argv[1:]:
    host, port = spec.rsplit(":", 1)
    s = socket.socket()
    s.settimeout(15)
    try:
        s.connect((host, int(port)))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        body = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            body += d
        print(spec, "ok", body.split(b"\r\n\r\n", 1)[1].decode().strip())
    except OSError as e:
        print(spec, "err", errno.errorcode.get(e.errno, e.errno))
    finally:
        s.close()
'''


def test_python_sockets_under_stpify(world, tmp_path):
    w = world
    script = tmp_path / "conn.py"
    script.write_text(SOCKET_SCRIPT)
    os.chmod(str(tmp_path), 0o755)
    rc, out, err = stpified(w, w.app1, ["/usr/bin/python3", str(script), "10.81.9.2:80",
                                        "www.test:80", "10.81.9.2:8080", "10.81.9.3:80",
                                        "10.81.8.2:80"])
    assert rc == 0, err
    assert out.splitlines() == ["10.81.9.2:80 ok 10.81.9.2:80", "www.test:80 ok 10.81.9.2:80",
                                "10.81.9.2:8080 err EACCES", "10.81.9.3:80 err EACCES",
                                "10.81.8.2:80 err EACCES"], (out, err)
    rc, out, err = stpified(w, w.app2, ["/usr/bin/python3", str(script), "10.81.9.3:80",
                                        "10.81.9.2:80", "www.test:80"])
    assert rc == 0, err
    assert out.splitlines() == ["10.81.9.3:80 ok 10.81.9.3:80", "10.81.9.2:80 err EACCES",
                                "www.test:80 err EHOSTUNREACH"], (out, err)
    d2 = deny_lines(w, "app2-l")
    assert any("target=10.81.9.2:80 " in ln + " " and "compartment=app2->app2" in ln
               for ln in d2), d2


# ---------------------------------------------------------------------------
# UDP: dig through UDP ASSOCIATE and through TRANSPARENT (user engine)

ANSWER = re.compile(r"^\d+\.\d+\.\d+\.\d+$", re.M)  # dig +short prints errors too


def dig(w, ns, server, transparent=False):
    env = {"STP_UDP_TRANSPARENT": "1"} if transparent else {}
    return stpified(w, ns, ["dig", "@" + server, "www.test", "A", "+short", "+tries=2",
                            "+time=3"], env)


def test_dig_over_udp_associate(world):
    w = world
    rc, out, err = dig(w, w.app1, "10.81.9.53")
    assert rc == 0 and out.strip().splitlines()[-1:] == ["10.81.9.2"], (rc, out, err)
    assert "UDP association for fd" in err, err
    wait_re(w, r"session .*listener=app1-l .*cmd=udpassociate .*"
               r"compartment=app1->inside")
    # The outside DNS server: the datagram is denied, dig gets nothing.
    rc, out, err = dig(w, w.app1, "10.81.8.53")
    assert rc != 0 and not ANSWER.search(out), (rc, out, err)
    w.wait_log("target=10.81.8.53:53")
    assert any("cmd=udpassociate target=10.81.8.53:53" in ln for ln in deny_lines(w, "app1-l"))
    # app2 has no UDP rule at all.
    rc, out, err = dig(w, w.app2, "10.81.9.53")
    assert rc != 0 and not ANSWER.search(out), (rc, out, err)
    assert any("cmd=udpassociate" in ln for ln in deny_lines(w, "app2-l")), w.text()


def test_dig_over_transparent_user_engine(world):
    w = world
    rc, out, err = dig(w, w.app1, "10.81.9.53", transparent=True)
    assert rc == 0 and out.strip().splitlines()[-1:] == ["10.81.9.2"], (rc, out, err)
    assert "UDP TRANSPARENT association for fd" in err, err
    w.wait_log("ended: control connection closed")
    # The client side in app1 (127.0.0.1, where the client is), the target
    # side inside; the flow's line names both compartments.
    wait_re(w, r"transparent \S+ udp 127\.0\.0\.1:\d+ -> 10\.81\.9\.53:53 bnd=127\.0\.0\.1:"
               r"\d+ ended: control connection closed up=\d+ bytes/[1-9]")
    wait_re(w, r"flow id=\S+ .*listener=app1-l .*cmd=transparent .*"
               r"target=10\.81\.9\.53:53 .*compartment=app1->inside")
    # app2: X'02' for TRANSPARENT, and the UDP ASSOCIATE stpify falls back
    # to is refused too.
    rc, out, err = dig(w, w.app2, "10.81.9.53", transparent=True)
    assert rc != 0 and not ANSWER.search(out), (rc, out, err)
    d2 = " ".join(deny_lines(w, "app2-l"))
    assert "cmd=transparent target=10.81.9.53:53" in d2, d2


# ---------------------------------------------------------------------------
# Multicast: a member in app1, the group in the inside compartment

SENDER = r'''
import socket, sys, time
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.81.9.3", 0))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.81.9.3"))
print("%s:%d" % s.getsockname(), flush=True)
for line in sys.stdin:          # one datagram per line asked for
    i = int(line)
    s.sendto(b"datagram %04d" % i, (sys.argv[2], int(sys.argv[3])))
'''


def _multicast_on_lo(ns):
    ns.ip("link", "set", "lo", "multicast", "on")
    ns.ip("route", "add", "224.0.0.0/4", "dev", "lo")


class Lines:
    """A process's stdout/stderr read as lines by threads."""

    def __init__(self, p):
        self.p, self.out, self.err = p, [], []
        self.cv = threading.Condition()
        for stream, sink in ((p.stdout, self.out), (p.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream, sink):
        for line in iter(stream.readline, b""):
            with self.cv:
                sink.append(line.decode().rstrip("\n"))
                self.cv.notify_all()

    def wait(self, pred, timeout=15.0):
        deadline = time.time() + timeout
        with self.cv:
            while not pred() and time.time() < deadline and self.p.poll() is None:
                self.cv.wait(0.1)
            return pred()


def test_mcast_member_in_app1_group_inside(world, tmp_path):
    w = world
    _multicast_on_lo(w.inside)
    _multicast_on_lo(w.app1)
    _multicast_on_lo(w.app2)
    script = tmp_path / "sender.py"
    script.write_text(SENDER)
    os.chmod(str(tmp_path), 0o755)
    n = 20
    rx = subprocess.Popen(["ip", "netns", "exec", w.app1.name, w.stp, "--proxy",
                           "socks5://127.0.0.1:1080", "mcast", "join", "%s:%d" % (GROUP, PORT),
                           "--hex", "--from", "--count", str(n)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    w.clients.append(rx)
    rxl = Lines(rx)
    assert rxl.wait(lambda: any("stp: joined %s:%d via 239.255." % (GROUP, PORT) in ln
                                for ln in rxl.err)), rxl.err
    tx = subprocess.Popen(["ip", "netns", "exec", w.inside.name, "/usr/bin/python3", str(script),
                           str(n), GROUP, str(PORT)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    w.clients.append(tx)
    txl = Lines(tx)
    assert txl.wait(lambda: txl.out), txl.err
    src = txl.out[0]
    # One datagram at a time until the member hears the first (the
    # member's intranet path may come up just after the reply), then the rest.
    sent = 0
    deadline = time.time() + 15
    while not rxl.out and time.time() < deadline:
        tx.stdin.write(b"%d\n" % sent)
        tx.stdin.flush()
        sent += 1
        rxl.wait(lambda: rxl.out, 0.2)
    assert rxl.out, (rxl.err, w.text())
    first = int(bytes.fromhex(rxl.out[0].split(" ")[1]).split(b" ")[1])
    for i in range(sent, first + n):
        tx.stdin.write(b"%d\n" % i)
        tx.stdin.flush()
        time.sleep(0.01)
    assert rxl.wait(lambda: len(rxl.out) >= n), (rxl.out, rxl.err)
    assert rx.wait(15) == 0, rxl.err  # --count reached: LEAVE, exit 0
    got = [ln.split(" ") for ln in rxl.out[:n]]
    assert [g[0] for g in got] == [src] * n   # the real sender inside, not the relay
    assert [bytes.fromhex(g[1]) for g in got] == [b"datagram %04d" % i
                                                 for i in range(first, first + n)]
    tx.stdin.close()
    w.wait_log("ended (last member left)")
    wait_re(w, r"flow id=\S+ .*listener=app1-l .*cmd=mcast-join .*"
               r"target=239\.1\.2\.3:5000 .*compartment=app1->inside")
    # The relay's own intranet copies, which app1's loopback device hands
    # back to its member socket, are not counted as bad member frames.
    wait_re(w, r"multicast relay 239\.1\.2\.3:5000 in app1->inside: ended .* "
               r"unknown=0 malformed=0 ")

    # app2: no rule grants it another group; refused, and stpd says so.
    rx2 = subprocess.run(["ip", "netns", "exec", w.app2.name, w.stp, "--proxy",
                          "socks5://127.0.0.2:1080", "mcast", "join", "239.1.2.9:%d" % PORT,
                          "--count", "1"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=30)
    assert rx2.returncode != 0, rx2.stderr
    assert any("cmd=mcast-join target=239.1.2.9:5000" in ln and "compartment=app2->app2" in ln
               for ln in deny_lines(w, "app2-l")), w.text()


RECEIVER = r'''
import socket, sys
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
r.bind((sys.argv[1], int(sys.argv[2])))
r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton(sys.argv[1]) + socket.inet_aton("0.0.0.0"))
print("ready", flush=True)
r.settimeout(20)
for _ in range(int(sys.argv[3])):
    d, frm = r.recvfrom(65536)
    print(frm[1], d.decode(), flush=True)
'''


def test_mcast_member_in_app1_sends_to_the_group_inside(world, tmp_path):
    """The other direction: what a member in app1 sends reaches a receiver
    on the group in the inside compartment, sent from the relay's group
    socket there (port P of the group)."""
    w = world
    _multicast_on_lo(w.inside)
    _multicast_on_lo(w.app1)
    script = tmp_path / "receiver.py"
    script.write_text(RECEIVER)
    os.chmod(str(tmp_path), 0o755)
    lines = [b"first line", b"second line", b"x" * 1200]
    orx = subprocess.Popen(["ip", "netns", "exec", w.inside.name, "/usr/bin/python3",
                            str(script), GROUP, str(PORT), str(len(lines))],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    w.clients.append(orx)
    orl = Lines(orx)
    assert orl.wait(lambda: orl.out), orl.err
    tx = subprocess.Popen(["ip", "netns", "exec", w.app1.name, w.stp, "--proxy",
                           "socks5://127.0.0.1:1080", "mcast", "join", "%s:%d" % (GROUP, PORT),
                           "--send"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    w.clients.append(tx)
    txl = Lines(tx)
    assert txl.wait(lambda: any("stp: joined" in ln for ln in txl.err)), txl.err
    tx.stdin.write(b"\n".join(lines) + b"\n")
    tx.stdin.close()  # stdin's end: LEAVE, exit 0
    assert tx.wait(15) == 0, txl.err
    assert orl.wait(lambda: len(orl.out) >= 1 + len(lines)), (orl.out, orl.err)
    assert orl.out[1:] == ["%d %s" % (PORT, ln.decode()) for ln in lines]
    w.wait_log("ended (last member left)")
    wait_re(w, r"multicast relay 239\.1\.2\.3:5000 in app1->inside: ended .* out=3 ")


def test_mux_streams_go_where_their_rule_says(world):
    """CONNECT streams of a multiplexed connection (X'30', `stp connect
    --mux`) are made in the stream's rule's compartment, as CONNECT's are,
    and refused where no rule lets them cross."""
    w = world

    def mux(target, port):
        return subprocess.run(["ip", "netns", "exec", w.app1.name, w.stp, "--proxy",
                               "socks5://127.0.0.1:1080", "--no-autoconfig", "connect", "--mux",
                               target, str(port)],
                              input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=30)

    r = mux("10.81.9.2", 80)
    assert r.returncode == 0 and r.stdout.endswith(b"\r\n\r\n10.81.9.2:80\n"), r
    r = mux("10.81.9.2", 8080)
    assert r.returncode == 12, r  # 10 + X'02' not allowed
    wait_re(w, r"flow id=\S+ .*listener=app1-l .*cmd=connect target=10\.81\.9\.2:80 .*"
               r"compartment=app1->inside")
    wait_re(w, r"deny .*listener=app1-l .*cmd=connect target=10\.81\.9\.2:8080 .*"
               r"compartment=app1->app1")


def test_transparent_tcp_user_engine(world):
    """TCP through TRANSPARENT (user engine): the relay's listening socket
    on BND is in app1 (the client connects to it from app1), its
    connection to DST is in the inside compartment."""
    w = world
    ts = tcp_sock(w.app1, "127.0.0.1")
    src = ("127.0.0.1", ts.getsockname()[1])
    c, rep, bnd = transparent(w.app1, ("127.0.0.1", 1080), TCP, ("10.81.9.2", 80), src)
    assert rep == 0 and bnd[0] == "127.0.0.1", (rep, bnd)

    def fetch():
        ts.connect(bnd)
        ts.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            d = ts.recv(4096)
            if not d:
                return data
            data += d
    assert w.app1.run(fetch).endswith(b"\r\n\r\n10.81.9.2:80\n")
    c.close()
    ts.close()
    w.wait_log("cmd=transparent target=10.81.9.2:80 bound=")
    wait_re(w, r"session .*listener=app1-l .*cmd=transparent target=10\.81\.9\.2:80 .*"
               r"compartment=app1->inside")
    # Another inside host: no rule, X'02' and a deny line.
    c2, rep, _ = transparent(w.app1, ("127.0.0.1", 1080), TCP, ("10.81.9.3", 80), src)
    c2.close()
    assert rep == 2
    assert any("cmd=transparent target=10.81.9.3:80" in ln for ln in deny_lines(w, "app1-l"))


def test_kernel_engine_refuses_compartments(world):
    """The kernel engine's NAT works in stpd's own namespace only: an
    association of a compartment's session is refused with X'09' and a line
    saying why, and stpify's udp_transparent falls back to UDP ASSOCIATE,
    which crosses. (The workers keep CAP_NET_ADMIN for the kernel
    engine.)"""
    w = world
    w.stpd.send_signal(signal.SIGTERM)
    assert w.stpd.wait(20) == 0
    shutil.rmtree(w.conf_dir, ignore_errors=True)
    # The kernel engine will not start on a host that does not forward.
    # stpd's own namespace has nothing but lo: nothing can be forwarded
    # there, and every other namespace keeps ip_forward 0.
    w.gw.sysctl("net.ipv4.ip_forward", 1)
    w.start(w.conf(RULES) + "transparent { engine kernel }\n")
    c, rep, _ = transparent(w.app1, ("127.0.0.1", 1080), TCP, ("10.81.9.2", 80),
                            ("127.0.0.1", 40000))
    c.close()
    assert rep == 9
    w.wait_log("transparent: engine kernel cannot relay in compartments (app1->inside)")
    rc, out, err = dig(w, w.app1, "10.81.9.53", transparent=True)
    assert rc == 0 and out.strip().splitlines()[-1:] == ["10.81.9.2"], (rc, out, err)
    assert "UDP association for fd" in err and "TRANSPARENT association" not in err, err


def test_mcast_one_relay_per_compartment(world, tmp_path):
    """Members of one group from app1 and app2: two relays (their member
    sockets are in different namespaces), each with its own intranet
    group, both hearing the one sender inside."""
    w = world
    for ns in (w.inside, w.app1, w.app2):
        _multicast_on_lo(ns)
    script = tmp_path / "sender.py"
    script.write_text(SENDER)
    os.chmod(str(tmp_path), 0o755)
    n = 10
    rxs = []
    for ns, proxy in ((w.app1, "127.0.0.1"), (w.app2, "127.0.0.2")):
        p = subprocess.Popen(["ip", "netns", "exec", ns.name, w.stp, "--proxy",
                              "socks5://%s:1080" % proxy, "mcast", "join",
                              "%s:%d" % (GROUP, PORT), "--hex", "--count", str(n)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        w.clients.append(p)
        rxs.append(Lines(p))
    for rl in rxs:
        assert rl.wait(lambda: any("stp: joined" in ln for ln in rl.err)), rl.err
    tx = subprocess.Popen(["ip", "netns", "exec", w.inside.name, "/usr/bin/python3", str(script),
                           str(n), GROUP, str(PORT)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    w.clients.append(tx)
    txl = Lines(tx)
    assert txl.wait(lambda: txl.out), txl.err
    deadline = time.time() + 20
    i = 0
    while any(len(rl.out) < n for rl in rxs) and time.time() < deadline:
        tx.stdin.write(b"%d\n" % i)
        tx.stdin.flush()
        i += 1
        time.sleep(0.02)
    for rl in rxs:
        assert len(rl.out) >= n, (rl.out, rl.err)
        nums = [int(bytes.fromhex(ln).split(b" ")[1]) for ln in rl.out[:n]]
        assert nums == list(range(nums[0], nums[0] + n)), nums  # in order, none lost
    tx.stdin.close()
    text = w.wait_log("in app2->inside: ended")
    starts = re.findall(r"multicast relay 239\.1\.2\.3:5000 in (app\d->inside): joined on "
                        r"\S+, intranet (\S+)", text)
    assert sorted(p for p, _ in starts) == ["app1->inside", "app2->inside"], text
    assert starts[0][1] != starts[1][1], starts  # an intranet group each
    # app2's grant is receive only (X'B0'), app1's both.
    assert re.search(r"flow id=\S+ .*listener=app2-l .*cmd=mcast-join .*"
                     r"rep=\"multicast: not allowed to send\".*compartment=app2->inside",
                     text), text
