"""Application servers behind stpd (docs/protocol.md section 5.9): inside
servers that never open a port outside, reached from outside through
binds on the gateway (ip_forward=0, so stpd is the only path).

    outside 10.77.1.2 --- 10.77.1.1 gateway (stpd; binds listen here)
                          10.77.2.1 (SOCKS listener) --- 10.77.2.2 inside

- `python3 -m http.server` inside behind `stp listen`, served to 100
  concurrent curl clients outside through one generic TCP bind;
- dnsmasq inside (local records only, --no-resolv) answering `dig` from
  outside through a UDP bind;
- the same unmodified servers under stpify with `serve` on: their own
  listen() and UDP bind() open the binds.

Needs root. Environment: STPD, STP_BIN, STPIFY (default: next to $STPD).
"""

import os
import shutil
import subprocess
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

pytestmark = pytest.mark.stpd_module("bind")


def _build_dir():
    """The build tree $STPD comes from (build/ without it)."""
    stpd = os.environ.get("STPD")
    if stpd:
        return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(stpd))))
    return os.path.join(REPO, "build")


def _stpify():
    p = os.environ.get("STPIFY") or os.path.join(_build_dir(), "src", "shim", "stpify")
    if not os.path.exists(p):
        pytest.fail("no stpify binary at %s (set STPIFY=)" % p)
    return p


def _stp():
    p = os.environ.get("STP_BIN") or os.path.join(_build_dir(), "src", "cli", "stp")
    if not os.path.exists(p):
        pytest.fail("no stp binary at %s (set STP_BIN=)" % p)
    return p


def conf(topo):
    return ("listen %s:1080 { external %s }\n" % (topo.GW_IN, topo.GW_OUT) +
            "workers 2\n"
            "binds { max-pending 256; backlog 256; accept-timeout 120; }\n"
            "client pass { from 10.77.2.0/24 }\n"
            "request pass { command listen listenreply udpbind udpbindreply }\n")


class Listen:
    """`stp listen SPEC...` inside; .bound[i] = (host, port) on the gateway."""

    def __init__(self, topo, tmp_path, *specs):
        self.out_path = os.path.join(str(tmp_path), "listen.out")
        self.out = open(self.out_path, "w+")
        self.proc = topo.inside.popen(
            [_stp(), "--proxy", "socks5://%s:1080" % topo.GW_IN, "listen"] + list(specs),
            stdout=self.out, stderr=subprocess.STDOUT)
        topo.clients.append(self)
        deadline = time.time() + 15
        self.bound = []
        while time.time() < deadline:
            lines = [ln.split() for ln in open(self.out_path).read().splitlines()
                     if ln.startswith("bound ")]
            if len(lines) == len(specs):
                for ln in lines:
                    host, port = ln[2].rsplit(":", 1)
                    self.bound.append((host, int(port)))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail("stp listen did not bind: %s" % open(self.out_path).read())

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.out.close()


def start_inside(topo, argv, tmp_path, name):
    log = open(os.path.join(str(tmp_path), name + ".log"), "w")
    p = topo.inside.popen(argv, stdout=log, stderr=subprocess.STDOUT)

    class Closer:
        def close(self):
            if p.poll() is None:
                p.terminate()
                p.wait(10)
            log.close()
    topo.clients.append(Closer())
    return p


def wait_port(topo, host, port, udp=False):
    deadline = time.time() + 10
    while time.time() < deadline:
        out = topo.inside.sh("ss", "-lnu" if udp else "-lnt")
        if ":%d " % port in out:
            return
        time.sleep(0.05)
    pytest.fail("nothing listens on %s:%d inside" % (host, port))


def www_dir(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.txt").write_bytes(b"served-from-inside-7f3a\n" * 100)
    return str(www)


def hundred_curls(topo, url):
    """100 clients at once from outside; each must get the whole body."""
    if not shutil.which("curl"):
        pytest.fail("curl missing (scripts/deps.sh)")
    script = ("for i in $(seq 100); do curl -s --max-time 90 -o /dev/null "
              "-w '%%{http_code} %%{size_download}\\n' %s & done; wait" % url)
    t0 = time.time()
    out = subprocess.run(["ip", "netns", "exec", topo.outside.name, "sh", "-c", script],
                         capture_output=True, text=True, timeout=150).stdout
    assert out.split("\n").count("200 2400") == 100, out
    assert time.time() - t0 < 120


def test_http_server_under_stpify(topo, stpd, tmp_path):
    s = stpd(conf(topo))
    log = tmp_path / "http.log"
    start_inside(topo, ["env", "STP_SERVE=1", "STP_LOG=info", _stpify(), "--proxy",
                        "socks5://%s:1080" % topo.GW_IN, "python3", "-m", "http.server",
                        "18000", "--bind", "0.0.0.0", "--directory", www_dir(tmp_path)],
                 tmp_path, "http")
    # the same port on the gateway, when free there
    s.wait_log("LISTEN: 1 TCP and 0 UDP binds", timeout=15)
    hundred_curls(topo, "http://%s:18000/index.txt" % topo.GW_OUT)
    # the server saw the real peers (accept() reports them)
    deadline = time.time() + 10
    while time.time() < deadline:
        text = open(str(log)).read()
        if text.count("10.77.1.2 - - ") >= 100:
            break
        time.sleep(0.1)
    assert text.count('10.77.1.2 - - ') == text.count('"GET /index.txt HTTP/1.1" 200') == 100
    assert "127.0.0.1 - - " not in text and "::1 - - " not in text


def test_http_server_behind_stp_listen(topo, stpd, tmp_path):
    s = stpd(conf(topo))
    start_inside(topo, ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1",
                        "--directory", www_dir(tmp_path)], tmp_path, "http")
    wait_port(topo, "127.0.0.1", 8000)
    lst = Listen(topo, tmp_path, "tcp:127.0.0.1:8000")
    host, port = lst.bound[0]
    assert host == topo.GW_OUT
    url = "http://%s:%d/index.txt" % (host, port)
    hundred_curls(topo, url)
    lst.close()
    # every peer was a flow of the one control session, with its bytes
    text = s.wait_log('result="control connection closed"', timeout=10)
    assert text.count("cmd=accept target=10.77.1.2:") >= 100


def test_dnsmasq_behind_udp_bind(topo, stpd, tmp_path):
    for tool in ("dnsmasq", "dig"):
        if not shutil.which(tool):
            pytest.fail("%s missing (scripts/deps.sh)" % tool)
    stpd(conf(topo))
    start_inside(topo, [shutil.which("dnsmasq"), "--keep-in-foreground", "--no-resolv",
                        "--no-hosts", "--port=5353", "--listen-address=127.0.0.1",
                        "--bind-interfaces", "--address=/app.stp.test/10.9.8.7",
                        "--pid-file=" + str(tmp_path / "dnsmasq.pid")], tmp_path, "dnsmasq")
    wait_port(topo, "127.0.0.1", 5353, udp=True)
    lst = Listen(topo, tmp_path, "udp:127.0.0.1:5353")
    host, port = lst.bound[0]
    assert host == topo.GW_OUT
    for _ in range(3):
        out = topo.outside.sh("dig", "@" + host, "-p", str(port), "+short", "+time=5",
                              "+tries=2", "app.stp.test")
        assert out.strip() == "10.9.8.7"


def test_dnsmasq_under_stpify(topo, stpd, tmp_path):
    for tool in ("dnsmasq", "dig"):
        if not shutil.which(tool):
            pytest.fail("%s missing (scripts/deps.sh)" % tool)
    s = stpd(conf(topo))
    start_inside(topo, ["env", "STP_SERVE=1", _stpify(), "--proxy",
                        "socks5://%s:1080" % topo.GW_IN, shutil.which("dnsmasq"),
                        "--keep-in-foreground", "--no-resolv", "--no-hosts", "--port=15353",
                        "--address=/app.stp.test/10.9.8.7",
                        "--pid-file=" + str(tmp_path / "dnsmasq.pid")], tmp_path, "dnsmasq")
    s.wait_log("0 TCP and 1 UDP binds", timeout=15)
    for _ in range(3):
        out = topo.outside.sh("dig", "@" + topo.GW_OUT, "-p", "15353", "+short", "+time=5",
                              "+tries=2", "app.stp.test")
        assert out.strip() == "10.9.8.7"


def _etc(topo, ns, hosts):
    """/etc/netns/NAME/{hosts,resolv.conf} for `ip netns exec` (removed
    with the topology): names only this test knows, and no real resolver."""
    d = "/etc/netns/" + ns.name
    os.makedirs(d, exist_ok=True)
    with open(d + "/hosts", "w") as f:
        f.write("127.0.0.1 localhost\n" + hosts)
    with open(d + "/resolv.conf", "w") as f:
        f.write("nameserver 127.0.0.1\n")

    class Remover:
        def close(self):
            shutil.rmtree(d, ignore_errors=True)
    topo.clients.append(Remover())


def test_rtsp_rtp_through_binds(topo, stpd, tmp_path):
    """An RTSP session with RTP over UDP: ffmpeg inside is the RTSP server
    (listen mode, RECORD), socksified with `serve`: its RTSP port and its
    RTP/RTCP ports become binds on the gateway, and ffmpeg outside pushes
    4 s of test video over RTP/UDP to them. Checked by the frames the
    inside end decodes.

    ffmpeg's listen mode names its listen URL's host as the RTP source in
    its Transport header, so the URL uses a name that is the wildcard
    inside and the gateway outside (/etc/netns hosts files)."""
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        pytest.fail("ffmpeg missing (scripts/deps.sh)")
    _etc(topo, topo.inside, "0.0.0.0 rtsp.stp.test\n")
    _etc(topo, topo.outside, "%s rtsp.stp.test\n" % topo.GW_OUT)
    s = stpd(conf(topo))
    frames = tmp_path / "frames.txt"
    url = "rtsp://rtsp.stp.test:18554/live.sdp"
    inside = start_inside(topo, ["env", "STP_SERVE=1", "STP_DNS=local", "STP_LOG=info",
                                 _stpify(), "--proxy", "socks5://%s:1080" % topo.GW_IN,
                                 ffmpeg, "-nostdin", "-hide_banner", "-rtsp_flags", "listen",
                                 "-listen_timeout", "60", "-i", url, "-f", "framemd5", "-y",
                                 str(frames)], tmp_path, "rtsp-inside")
    s.wait_log("LISTEN: 1 TCP and 0 UDP binds", timeout=15)
    out = subprocess.run(["ip", "netns", "exec", topo.outside.name, ffmpeg, "-nostdin",
                          "-hide_banner", "-re", "-f", "lavfi", "-i",
                          "testsrc=size=160x120:rate=25", "-t", "4", "-c:v", "mpeg4",
                          "-f", "rtsp", "-rtsp_transport", "udp", url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    inside.wait(30)
    lines = [ln for ln in open(str(frames)).read().splitlines() if not ln.startswith("#")]
    log = open(str(tmp_path / "rtsp-inside.log")).read()
    assert len(lines) >= 75, log[-3000:]  # 100 sent; a few may be lost at the start
    # the RTP and RTCP ports were UDP binds of the gateway, and carried the media
    assert s.text().count("0 TCP and 1 UDP binds") == 2
    import re
    udp_bytes = [int(m) for m in re.findall(
        r"flow id=\d+\.1 .*cmd=listen target=0\.0\.0\.0:0 up=\d+ down=(\d+) ",
        s.wait_log('result="control connection closed"', timeout=10))]
    assert max(udp_bytes) > 50000, s.text()[-3000:]


def _udp_client(topo):
    """A UDP socket in the outside namespace (usable from the test)."""
    import socket
    return topo.outside.run(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))


def _ask(u, addr, msg, n, timeout=3, tries=10):
    """Sends msg until n datagrams come back: -> (list of payloads, sources)."""
    import socket
    u.settimeout(timeout)
    for _ in range(tries):
        u.sendto(msg, addr)
        got = []
        try:
            while len(got) < n:
                got.append(u.recvfrom(65536))
        except socket.timeout:
            continue
        return [g[0] for g in got], {g[1] for g in got}
    pytest.fail("no answer from %s:%d" % addr)


def test_connected_udp_server_under_stpify(topo, stpd, tmp_path):
    """socat's UDP-LISTEN under stpify `serve`: it peeks the first datagram's
    sender, connect()s its socket to it and then only read()s and write()s
    (an echo, PIPE): socat names the real outside peer, the connected
    socket goes back through the UDP bind, and the answers leave the
    gateway's bound port."""
    if not shutil.which("socat"):
        pytest.fail("socat missing (scripts/deps.sh)")
    s = stpd(conf(topo))
    start_inside(topo, ["env", "STP_SERVE=1", "STP_LOG=debug", _stpify(), "--proxy",
                        "socks5://%s:1080" % topo.GW_IN, shutil.which("socat"), "-d", "-d",
                        "-T", "30", "UDP4-LISTEN:16000", "PIPE"], tmp_path, "socat")
    s.wait_log("0 TCP and 1 UDP binds", timeout=15)
    u = _udp_client(topo)
    try:
        u.bind(("10.77.1.2", 0))
        got, srcs = _ask(u, (topo.GW_OUT, 16000), b"hello-connected", 1)
        assert got == [b"hello-connected"] and srcs == {(topo.GW_OUT, 16000)}
        for i in range(3):  # on the connected socket now
            u.sendto(b"again-%d" % i, (topo.GW_OUT, 16000))
            u.settimeout(10)
            data, src = u.recvfrom(65536)
            assert data == b"again-%d" % i and src == (topo.GW_OUT, 16000)
        me = "10.77.1.2:%d" % u.getsockname()[1]
    finally:
        u.close()
    log = open(str(tmp_path / "socat.log")).read()
    assert "accepting UDP connection from AF=2 %s" % me in log, log
    assert "connected to a proxy peer via loopback" in log, log


SENDMMSG_SERVER = r"""
import ctypes, socket, sys
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
libc = ctypes.CDLL(None, use_errno=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 16001))
data, peer = s.recvfrom(2048)
s.connect(peer)
s.send(b"from=%s:%d getpeername=%s:%d" % (peer[0].encode(), peer[1],
       s.getpeername()[0].encode(), s.getpeername()[1]))
bufs = [ctypes.create_string_buffer(b"mmsg-one", 8), ctypes.create_string_buffer(b"mmsg-two", 8)]
iovs = (iovec * 2)(*[iovec(ctypes.cast(b, ctypes.c_void_p), 8) for b in bufs])
msgs = (mmsghdr * 2)()
for i in range(2):
    msgs[i].hdr.iov = ctypes.pointer(iovs[i])
    msgs[i].hdr.iovlen = 1
n = libc.sendmmsg(s.fileno(), msgs, 2, 0)
print("sendmmsg", n, ctypes.get_errno(), flush=True)
s.settimeout(30)
s.recv(2048)  # held open until the test is done
"""


def test_sendmmsg_on_connected_udp_under_stpify(topo, stpd, tmp_path):
    """A UDP server under stpify `serve` that connect()s to its peer and then
    answers with send() and sendmmsg() (no addresses): every answer
    reaches the outside peer from the bound port, and recvfrom() and
    getpeername() name the real peer."""
    s = stpd(conf(topo))
    script = tmp_path / "mmsg_server.py"
    script.write_text(SENDMMSG_SERVER)
    start_inside(topo, ["env", "STP_SERVE=1", _stpify(), "--proxy",
                        "socks5://%s:1080" % topo.GW_IN, "python3", str(script)],
                 tmp_path, "mmsg")
    s.wait_log("0 TCP and 1 UDP binds", timeout=15)
    u = _udp_client(topo)
    try:
        u.bind(("10.77.1.2", 0))
        got, srcs = _ask(u, (topo.GW_OUT, 16001), b"go", 3)
        me = b"10.77.1.2:%d" % u.getsockname()[1]
        assert srcs == {(topo.GW_OUT, 16001)}
        assert got[0] == b"from=" + me + b" getpeername=" + me
        assert sorted(got[1:]) == [b"mmsg-one", b"mmsg-two"]
        u.sendto(b"done", (topo.GW_OUT, 16001))
    finally:
        u.close()
    deadline = time.time() + 10  # the line comes after the datagrams
    while "sendmmsg 2 0" not in open(str(tmp_path / "mmsg.log")).read():
        assert time.time() < deadline, open(str(tmp_path / "mmsg.log")).read()
        time.sleep(0.05)
