"""The client side of multicast through SOCKS (docs/mcast.md "Client",
docs/stpify.md "Multicast"), end to end in the outside/gateway/inside
namespaces of netns.py with stpd in the gateway:

1. libstp through the `stp mcast join` command: two inside receivers get
   an outside stream byte-exact and in order; --send reaches an outside
   receiver; refusals and notices give the documented exit codes.
2. stpify: an unmodified Python program (a plain socket, bind,
   IP_ADD_MEMBERSHIP / IP_ADD_SOURCE_MEMBERSHIP, select, recvfrom, sendto)
   and socat receive the group's data through the proxy and send to it.
3. interop: libstp and the independent reference client mcast_client.py
   in the same group see each other's packets.

Binaries: STP, STPIFY (default: build-mcc/, then build/), STPD (conftest).
Run as root: sudo STPD=build-mcc/src/server/stpd /usr/bin/python3 -m pytest
tests/netns/test_mcast_client.py
"""

import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

import mcast_client as mc
from test_mcast import (GROUP4, GROUP6, PORT, conf, control, inside_ifindex, join,
                        outside_receiver, outside_sender, payloads, send_all, wait_until,
                        igmp_lists)

pytestmark = [pytest.mark.stpd_module("mcast")]

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _binary(env, rel):
    if os.environ.get(env):
        return os.environ[env]
    for b in ("build-mcc", "build"):
        p = os.path.join(REPO, b, rel)
        if os.path.exists(p):
            return p
    pytest.skip("no %s binary (set %s=)" % (rel, env))


def stp_bin():
    return _binary("STP", "src/cli/stp")


def stpify_bin():
    return _binary("STPIFY", "src/shim/stpify")


class Proc:
    """A process in a namespace whose stdout and stderr are read as lines
    by threads; closed (killed) before stpd stops."""

    def __init__(self, ns, argv, stdin=subprocess.DEVNULL, env=None):
        self.p = ns.popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env)
        self.out, self.err = [], []
        self.cv = threading.Condition()
        self.pumps = []
        for stream, sink in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            t = threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            t.start()
            self.pumps.append(t)

    def _pump(self, stream, sink):
        for line in iter(stream.readline, b""):
            with self.cv:
                sink.append(line.rstrip(b"\n"))
                self.cv.notify_all()

    def wait_lines(self, sink, n, timeout=10.0):
        deadline = time.time() + timeout
        with self.cv:
            while len(sink) < n and time.time() < deadline:
                self.cv.wait(0.1)
            return list(sink)

    def wait_err(self, needle, timeout=10.0):
        deadline = time.time() + timeout
        with self.cv:
            while time.time() < deadline:
                if any(needle.encode() in ln for ln in self.err):
                    return True
                if self.p.poll() is not None:
                    break
                self.cv.wait(0.1)
        raise AssertionError("%r not on stderr: %r" % (needle, self.err))

    def send(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def wait(self, timeout=10.0):
        """Exit status, once the output threads have read everything the
        process wrote (so err/out are complete)."""
        rc = self.p.wait(timeout)
        for t in self.pumps:
            t.join(timeout)
        return rc

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def start(topo, argv, **kw):
    pr = Proc(topo.inside, argv, **kw)
    topo.clients.append(pr)  # killed before stpd stops, even when a test fails
    return pr


def proxy_url(topo):
    return "socks5://%s:1080" % topo.GW_IN


def stp_join(topo, group, *opts, **kw):
    g = "[%s]:%d" % (group, PORT) if ":" in group else "%s:%d" % (group, PORT)
    return start(topo, [stp_bin(), "--proxy", proxy_url(topo), "mcast", "join", g] + list(opts),
                 **kw)


def outside_rx_all(sock, timeout=2.0):
    sock.settimeout(timeout)
    got = []
    try:
        while True:
            got.append(sock.recvfrom(65536))
    except socket.timeout:
        return got


# ---------------------------------------------------------------------------
# 1. libstp through `stp mcast join`

@pytest.mark.parametrize("suite", ["aes-256-gcm", "chacha20-poly1305"])
def test_cli_two_receivers_byte_exact(topo, stpd, suite):
    stpd(conf(topo, mcast="  encryption %s\n" % suite))
    n = 40
    rx = [stp_join(topo, GROUP4, "--hex", "--from", "--count", str(n)) for _ in range(2)]
    for r in rx:
        r.wait_err("stp: joined 239.1.2.3:5000 via 239.255.")
    items = payloads(n, 11)
    tx = outside_sender(topo)
    send_all(tx, GROUP4, items)
    src = "%s:%d" % tx.getsockname()
    for r in rx:
        lines = r.wait_lines(r.out, n)
        assert len(lines) == n, r.err
        assert [ln.split(b" ")[0].decode() for ln in lines] == [src] * n
        assert [bytes.fromhex(ln.split(b" ")[1].decode()) for ln in lines] == items
        assert r.wait() == 0  # --count reached


def test_cli_send_reaches_outside(topo, stpd):
    s = stpd(conf(topo))
    orx = outside_receiver(topo, GROUP4)
    lines = [b"first line", b"second line", b"x" * 1200]
    pr = stp_join(topo, GROUP4, "--send", stdin=subprocess.PIPE)
    pr.wait_err("stp: joined")
    pr.send(b"\n".join(lines) + b"\n")
    pr.p.stdin.close()  # stdin's end: LEAVE, exit 0
    assert pr.wait() == 0, pr.err
    got = outside_rx_all(orx)
    assert [d for d, _ in got] == lines
    assert all(frm == (topo.GW_OUT, PORT) for _, frm in got)
    s.wait_log("ended (last member left)")
    assert "out=3" in s.text()


def test_cli_v6_group(topo, stpd):
    stpd(conf(topo))
    pr = stp_join(topo, GROUP6, "--hex", "--count", "5")
    pr.wait_err("via [ff15:")
    assert wait_until(lambda: igmp_lists(topo, GROUP6))
    items = payloads(5, 12)
    send_all(outside_sender(topo, v6=True), GROUP6, items)
    lines = pr.wait_lines(pr.out, 5)
    assert [bytes.fromhex(ln.decode()) for ln in lines] == items


def test_cli_refusals_and_notice_exit_codes(topo, stpd):
    rules = ("request block { command mcast-join; to 239.9.9.9/32 }\n"
             "request pass { command mcast-join; to 239.8.8.8/32; mcast receive }\n")
    stpd(conf(topo, rules, "  max-time 1\n"))
    # X'B2': neither sending nor receiving allowed.
    pr = stp_join(topo, "239.9.9.9")
    assert pr.wait() == 20
    assert any(b"X'B2'" in ln for ln in pr.err), pr.err
    # X'B6': not a multicast address.
    pr = stp_join(topo, "10.1.2.3")
    assert pr.wait() == 20
    assert any(b"X'B6'" in ln for ln in pr.err), pr.err
    # X'B0' (receive only) when --send asks for sending.
    pr = stp_join(topo, "239.8.8.8", "--send")
    assert pr.wait() == 20
    assert any(b"X'B0'" in ln for ln in pr.err), pr.err
    # Notice X'B4' after max-time: the membership (and the command) ends.
    pr = stp_join(topo, GROUP4)
    pr.wait_err("stp: joined")
    assert pr.wait(5) == 20
    assert any(b"X'B4'" in ln for ln in pr.err), pr.err
    # The proxy unreachable: exit 3.
    pr = start(topo, [stp_bin(), "--proxy", "socks5://%s:1" % topo.GW_IN, "mcast", "join",
                      "239.1.2.3:5000"])
    assert pr.wait() == 3


# ---------------------------------------------------------------------------
# 2. stpify: unmodified programs

RECEIVER = r'''
import select, socket, struct, sys
group, port, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ifaddr = sys.argv[5] if len(sys.argv) > 5 else "0.0.0.0"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
if mode == "any":
    mreq = socket.inet_aton(group) + socket.inet_aton(ifaddr)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
else:  # source-specific: struct ip_mreq_source (group, interface, source)
    mreq = socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + socket.inet_aton(mode)
    s.setsockopt(socket.IPPROTO_IP, 39, mreq)  # IP_ADD_SOURCE_MEMBERSHIP (Linux)
print("ready %s:%d" % s.getsockname(), flush=True)
for i in range(n):
    r, _, _ = select.select([s], [], [], 10)
    if not r:
        print("timeout", flush=True)
        sys.exit(1)
    data, src = s.recvfrom(65536)
    print(src[0], src[1], data.hex(), flush=True)
s.sendto(b"reply from an unmodified program", (group, port))
s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq[:8])
print("left", flush=True)
'''


def stpify(topo, argv, **kw):
    return start(topo, [stpify_bin(), "--proxy", proxy_url(topo)] + argv, **kw)


def test_stpify_python_receiver(topo, stpd, tmp_path):
    s = stpd(conf(topo))
    script = tmp_path / "receiver.py"
    script.write_text(RECEIVER)
    n = 30
    pr = stpify(topo, ["/usr/bin/python3", str(script), GROUP4, str(PORT), str(n), "any"])
    ready = pr.wait_lines(pr.out, 1)
    assert ready and ready[0] == b"ready 0.0.0.0:%d" % PORT, (ready, pr.err)
    orx = outside_receiver(topo, GROUP4)
    items = payloads(n, 21)
    tx = outside_sender(topo)
    send_all(tx, GROUP4, items)
    lines = pr.wait_lines(pr.out, n + 2)[1:]
    assert len(lines) == n + 1, (lines, pr.err)
    want_src = ("%s %d" % tx.getsockname()).encode()
    for ln, item in zip(lines, items):
        host, port, data = ln.split(b" ")
        assert host + b" " + port == want_src        # the real sender, not the relay
        assert bytes.fromhex(data.decode()) == item  # decrypted, byte-exact, in order
    assert lines[n] == b"left"
    # (the outside sender's own packets loop back to orx: only the gateway's count)
    got = [(d, frm) for d, frm in outside_rx_all(orx) if frm[0] == topo.GW_OUT]
    assert got == [(b"reply from an unmodified program", (topo.GW_OUT, PORT))]
    assert pr.wait() == 0, pr.err
    # IP_DROP_MEMBERSHIP was a LEAVE: the relay ended with its last member.
    s.wait_log("ended (last member left)")


def test_stpify_source_specific(topo, stpd, tmp_path):
    stpd(conf(topo))
    script = tmp_path / "receiver.py"
    script.write_text(RECEIVER)
    group = "232.1.1.1"
    pr = stpify(topo, ["/usr/bin/python3", str(script), group, str(PORT), "2", topo.OUT_IP])
    assert pr.wait_lines(pr.out, 1), pr.err
    # The JOIN was X'85' INCLUDE {OUT_IP}: the gateway holds that filter.
    mcf = topo.gateway.read("/proc/net/mcfilter")
    assert ("0x" + socket.inet_aton(topo.OUT_IP).hex()) in mcf, mcf
    send_all(outside_sender(topo, topo.OUT_IP2), group, [b"not included"])
    send_all(outside_sender(topo, topo.OUT_IP), group, [b"included 1", b"included 2"])
    lines = pr.wait_lines(pr.out, 3)[1:3]
    assert len(lines) == 2, (pr.out, pr.err)
    assert [bytes.fromhex(ln.split(b" ")[2].decode()) for ln in lines] == [b"included 1",
                                                                          b"included 2"]
    assert all(ln.startswith(topo.OUT_IP.encode() + b" ") for ln in lines)
    assert pr.wait() == 0, pr.err


def test_stpify_socat(topo, stpd):
    if shutil.which("socat") is None:
        pytest.skip("socat not installed (Debian package socat)")
    stpd(conf(topo))
    pr = stpify(topo, ["socat", "-u",
                       "UDP4-RECV:%d,reuseaddr,ip-add-membership=%s:i0" % (PORT, GROUP4),
                       "STDOUT"])
    assert wait_until(lambda: igmp_lists(topo, GROUP4), 10), pr.err
    # The gateway's IGMP report shows stpd's JOIN, which comes before the
    # member's own path is up, and socat cannot say when it is ready: warm
    # up until one datagram arrives, then every later one must, in order.
    tx = outside_sender(topo)
    assert wait_until(lambda: send_all(tx, GROUP4, [b"warm-up\n"]) is None and
                      pr.wait_lines(pr.out, 1, timeout=0.3), 15), pr.err
    warm = len(pr.wait_lines(pr.out, 1, timeout=0.5))
    items = [b"socat line %d" % i for i in range(10)]
    send_all(tx, GROUP4, [i + b"\n" for i in items])
    lines = [ln for ln in pr.wait_lines(pr.out, warm + 10) if ln != b"warm-up"]
    assert lines == items, pr.err


def test_stpify_receiver_without_proxy_gets_nothing(topo, stpd, tmp_path):
    """Control: the same program without stpify never sees the group (the
    gateway routes no multicast), so the tests above prove the proxy path."""
    stpd(conf(topo))
    script = tmp_path / "receiver.py"
    script.write_text(RECEIVER.replace("10)", "2)"))
    pr = start(topo, ["/usr/bin/python3", str(script), GROUP4, str(PORT), "1", "any",
                      topo.INSIDE[0]])
    assert pr.wait_lines(pr.out, 1), pr.err
    send_all(outside_sender(topo), GROUP4, [b"never arrives"] * 3)
    assert pr.wait(10) == 1
    assert pr.out[-1] == b"timeout"


# ---------------------------------------------------------------------------
# 3. interop with the reference client

def test_interop_with_reference_client(topo, stpd):
    stpd(conf(topo))
    pr = stp_join(topo, GROUP4, "--send", "--hex", "--from", stdin=subprocess.PIPE)
    pr.wait_err("stp: joined")
    c = control(topo, topo.INSIDE[1])
    ref = join(topo, c, GROUP4)
    assert ref.rep == mc.REP_OK
    rx = topo.inside.run(ref.receiver, inside_ifindex(topo))
    # reference -> libstp: the frame names the reference member's address.
    topo.inside.run(ref.send, b"from the reference client")
    lines = pr.wait_lines(pr.out, 1)
    assert lines, pr.err
    src, data = lines[0].split(b" ")
    assert bytes.fromhex(data.decode()) == b"from the reference client"
    assert src.startswith(topo.INSIDE[1].encode() + b":")
    # libstp -> reference: sealed with libstp's send key, copied by the
    # relay to the intranet group with libstp's member id as ORIGIN.
    pr.send(b"from libstp\n")
    got = topo.inside.run(ref.recv, rx, 3.0)
    assert got is not None
    origin, frm, payload = got
    assert payload == b"from libstp" and origin not in (0, ref.member_id)
    # and libstp skipped its own copy: nothing more on its stdout.
    time.sleep(0.5)
    assert len(pr.out) == 1
    pr.p.stdin.close()
    assert pr.wait() == 0
    c.close()


def test_libstp_hears_a_member_sending_to_the_group(topo, stpd):
    """A member that sends to ADDR:PORT of the reply (the intranet group,
    seed 000 5.2) is heard: libstp's receiver gets each payload once, as
    the relay's copy, and passes over the member's own frames, which it
    sees on the group too."""
    stpd(conf(topo))
    pr = stp_join(topo, GROUP4, "--hex", "--from")
    pr.wait_err("stp: joined")
    c = control(topo, topo.INSIDE[1])
    ref = join(topo, c, GROUP4)
    assert ref.rep == mc.REP_OK
    items = [b"to the group %d" % i for i in range(5)]
    for p in items:
        topo.inside.run(ref.send_to_group, p, inside_ifindex(topo))
    lines = pr.wait_lines(pr.out, 5)
    assert [bytes.fromhex(ln.split(b" ")[1].decode()) for ln in lines] == items, pr.err
    assert all(ln.startswith(topo.INSIDE[1].encode() + b":") for ln in lines)
    time.sleep(0.5)
    assert len(pr.out) == 5          # nothing twice
    c.close()
