"""Loopback services the integration tests talk to through the proxy.

Everything here listens on 127.0.0.1 and/or ::1 only, and every thread is a
daemon that stops when its server is closed. Nothing here resolves a name:
the machine's DNS server must never be queried by a test.
"""

import hashlib
import http.server
import os
import random
import resource
import socket
import socketserver
import subprocess
import threading
import time

# ---------------------------------------------------------------------------
# ports


_handed_out = set()
# Below the kernel's ephemeral range (32768-60999 by default), so that no
# outgoing connection can take a port between our check and the server's
# bind; each port is handed out once per test run.
_PORT_LO, _PORT_HI = 20000, 32700


def free_port():
    """A port free on 127.0.0.1 and ::1, TCP and UDP, never handed out
    before in this run."""
    rnd = random.Random()
    for _ in range(500):
        port = rnd.randrange(_PORT_LO, _PORT_HI)
        if port not in _handed_out and port_is_free(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def port_is_free(port):
    """True when nothing holds port on 127.0.0.1 or ::1, TCP or UDP."""
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            try:
                with socket.socket(fam, kind) as s:
                    s.bind((host, port))
            except OSError:
                return False
    return True


def _proc_sockets(proto, pid=None):
    """(local_port, state_hex) for every socket in /proc/net/PROTO{,6}, or
    in /proc/PID/net/... (the network namespace of process pid)."""
    out = []
    base = "/proc/%d/net/" % pid if pid else "/proc/net/"
    for name in (proto, proto + "6"):
        try:
            with open(base + name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    port = int(fields[1].rsplit(":", 1)[1], 16)
                    out.append((port, fields[3]))
        except FileNotFoundError:
            pass
    return out


def tcp_listening(port, pid=None):
    """True when some socket listens on TCP port (read from /proc, so no
    connection is made and no session appears in a proxy's log)."""
    return any(p == port and st == "0A" for p, st in _proc_sockets("tcp", pid))


def udp_bound(port):
    return any(p == port for p, _ in _proc_sockets("udp"))


def wait_until(pred, timeout, step=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))


# ---------------------------------------------------------------------------
# processes


def stop_process(proc, timeout=10):
    """SIGTERM, up to timeout seconds for it to exit, then SIGKILL; the exit
    status as proc.returncode has it (negative: the signal that ended it)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


# ---------------------------------------------------------------------------
# content


class BigContent:
    """Deterministic bytes of any length: a 1 MiB random block repeated.
    The test computes the expected sha256 from the same block."""

    BLOCK = random.Random(0x5770).randbytes(1 << 20)

    @classmethod
    def chunks(cls, size):
        left = size
        while left > 0:
            n = min(left, len(cls.BLOCK))
            yield cls.BLOCK[:n]
            left -= n

    @classmethod
    def sha256(cls, size):
        h = hashlib.sha256()
        for c in cls.chunks(size):
            h.update(c)
        return h.hexdigest()


PAGE_MARKER = "stp-test-page-7f3a91"
PAGE = ("<!doctype html><html><head><title>stp test</title></head>"
        "<body><p id=\"m\">%s</p></body></html>\n" % PAGE_MARKER).encode()


# ---------------------------------------------------------------------------
# HTTP


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # keep pytest output clean
        pass

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, "text/html", PAGE)
        elif path.startswith("/big/"):
            try:
                size = int(path[5:])
            except ValueError:
                return self._send(400, "text/plain", b"bad size\n")
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            for c in BigContent.chunks(size):
                self.wfile.write(c)
        elif path == "/peer":
            # The address the request came from: lets a test see that the
            # proxy, not the client, opened the connection.
            self._send(200, "text/plain", ("%s\n" % self.client_address[0]).encode())
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _HTTP4(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _HTTP6(_HTTP4):
    address_family = socket.AF_INET6


def serve_both(cls4, cls6, handler, what):
    """Servers cls4 on 127.0.0.1 and cls6 on ::1 (socketserver classes), on
    one free port, each served by a daemon thread. Returns (v4, v6, port)."""
    for _ in range(20):
        port = free_port()
        try:
            v4 = cls4(("127.0.0.1", port), handler)
        except OSError:
            continue
        try:
            v6 = cls6(("::1", port), handler)
        except OSError:
            v4.server_close()
            continue
        break
    else:
        raise RuntimeError("could not bind " + what)
    for s in (v4, v6):
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()
    return v4, v6, port


class HttpServer:
    """The same content on 127.0.0.1:port and [::1]:port."""

    def __init__(self):
        self.v4, self.v6, self.port = serve_both(_HTTP4, _HTTP6, _Handler, "the HTTP server")

    def close(self):
        for s in (self.v4, self.v6):
            s.shutdown()
            s.server_close()


# ---------------------------------------------------------------------------
# TCP echo and an asymmetric "counter" service


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(60)
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                s.sendall(d)
            s.shutdown(socket.SHUT_WR)  # pass the half-close on
        except OSError:
            pass


class _Asym(socketserver.BaseRequestHandler):
    """Client sends 4 bytes N (big endian); server sends N bytes, then reads
    and discards until EOF, then sends b'' (closes). Lets a test know exactly
    how many bytes went each way."""

    def handle(self):
        s = self.request
        s.settimeout(60)
        try:
            hdr = b""
            while len(hdr) < 4:
                d = s.recv(4 - len(hdr))
                if not d:
                    return
                hdr += d
            n = int.from_bytes(hdr, "big")
            for c in BigContent.chunks(n):
                s.sendall(c)
            while s.recv(65536):
                pass
        except OSError:
            pass


class _ShaSink(socketserver.BaseRequestHandler):
    """Reads until EOF (the client's half-close), then answers
    "<sha256 hex> <length>\n" and closes: proves every byte arrived and
    that data still flows back after the client's half-close."""

    def handle(self):
        s = self.request
        s.settimeout(120)
        h = hashlib.sha256()
        n = 0
        try:
            while True:
                d = s.recv(1 << 20)
                if not d:
                    break
                h.update(d)
                n += len(d)
            s.sendall(("%s %d\n" % (h.hexdigest(), n)).encode())
        except OSError:
            pass


class _TalkFirst(socketserver.BaseRequestHandler):
    """Sends 1 MiB and half-closes at once, then reads the client's bytes
    until EOF and records (sha256 hex, length) under the first 16 bytes
    (the client's tag) in TALK_FIRST_SEEN: the target ends its direction
    first while the client's direction goes on."""

    def handle(self):
        s = self.request
        s.settimeout(60)
        try:
            for c in BigContent.chunks(1 << 20):
                s.sendall(c)
            s.shutdown(socket.SHUT_WR)
            data = bytearray()
            while True:
                d = s.recv(1 << 20)
                if not d:
                    break
                data += d
            TALK_FIRST_SEEN[bytes(data[:16])] = (hashlib.sha256(data).hexdigest(), len(data))
        except OSError:
            pass


TALK_FIRST_SEEN = {}


class _TCP4(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 2048


class _TCP6(_TCP4):
    address_family = socket.AF_INET6


class TcpService:
    def __init__(self, handler):
        self.v4, self.v6, self.port = serve_both(_TCP4, _TCP6, handler, "a TCP service")

    def close(self):
        for s in (self.v4, self.v6):
            s.shutdown()
            s.server_close()


def TcpEcho():
    return TcpService(_Echo)


def AsymService():
    return TcpService(_Asym)


def ShaSink():
    return TcpService(_ShaSink)


def TalkFirst():
    return TcpService(_TalkFirst)


# ---------------------------------------------------------------------------
# UDP echo


class UdpEcho:
    """Echoes every datagram back to its sender, on 127.0.0.1 and ::1.
    Remembers every payload received, so a test can prove a datagram was
    NOT delivered."""

    def __init__(self):
        self.received = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        for _ in range(20):
            port = free_port()
            try:
                s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s4.bind(("127.0.0.1", port))
                s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                s6.bind(("::1", port))
            except OSError:
                continue
            self.port = port
            self.socks = [s4, s6]
            break
        else:
            raise RuntimeError("could not bind the UDP echo")
        for s in self.socks:
            s.settimeout(0.2)
            threading.Thread(target=self._run, args=(s,), daemon=True).start()

    def _run(self, s):
        while not self.stop.is_set():
            try:
                d, peer = s.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.received.append((d, peer))
            try:
                s.sendto(d, peer)
            except OSError:
                pass

    def got(self, payload):
        with self.lock:
            return any(d == payload for d, _ in self.received)

    def close(self):
        self.stop.set()
        for s in self.socks:
            s.close()


# ---------------------------------------------------------------------------
# DNS: dnsmasq that answers for *.stp.test from its own hosts file and says
# NXDOMAIN for every other name. It has no upstream server at all.

DNS_NAMES = {
    "web.stp.test": ["127.0.0.1"],
    "web6.stp.test": ["::1"],
    "both.stp.test": ["127.0.0.1", "::1"],
    # an address no /etc/hosts names: its PTR comes from dnsmasq only
    "ptr.stp.test": ["127.0.0.77"],
}
NXDOMAIN_NAME = "nonexistent.stp.test"


def hosts_file_text():
    lines = []
    for name, addrs in DNS_NAMES.items():
        for a in addrs:
            lines.append("%s %s" % (a, name))
    return "\n".join(lines) + "\n"


def start_dnsmasq(log_path, listen, args, log_mode="wb"):
    """dnsmasq on address listen and a free port, answering only from what
    args give it, never forwarding, logging its queries to log_path (opened
    with log_mode); up to 5 ports are tried. Returns (proc, port, log)."""
    last = None
    for _ in range(5):
        port = free_port()
        log = open(log_path, log_mode)
        proc = subprocess.Popen(
            ["dnsmasq", "--no-daemon", "--port=%d" % port,
             "--listen-address=" + listen, "--bind-interfaces",
             "--no-resolv", "--no-hosts", "--no-poll",
             "--local=/#/",          # every name is local: never forwarded
             "--pid-file=", "--user=root", "--group=root",
             "--cache-size=0", "--log-queries", "--log-facility=-"] + list(args),
            stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: udp_bound(port) or proc.poll() is not None, 5, what="dnsmasq")
        except TimeoutError as e:
            last = e
            stop_process(proc, 5)
            log.close()
            continue
        if proc.poll() is None:
            return proc, port, log
        log.close()
        last = RuntimeError("dnsmasq exited: " + open(log_path).read())
    raise last


class Dnsmasq:
    def __init__(self, workdir, listen="127.0.0.1"):
        self.workdir = workdir
        self.listen = listen
        tag = "" if listen == "127.0.0.1" else "-" + listen.replace(":", "_")
        self.hosts = os.path.join(workdir, "dns-hosts" + tag)
        with open(self.hosts, "w") as f:
            f.write(hosts_file_text())
        self.log_path = os.path.join(workdir, "dnsmasq%s.log" % tag)
        self.proc, self.port, self.log = start_dnsmasq(self.log_path, listen,
                                                       ["--addn-hosts=" + self.hosts])

    @property
    def addr(self):
        if ":" in self.listen:
            return "[%s]:%d" % (self.listen, self.port)
        return "%s:%d" % (self.listen, self.port)

    def close(self):
        stop_process(self.proc, 5)
        self.log.close()


def dns_query(server_port, name, qtype=1, timeout=2.0):
    """Minimal DNS query to our dnsmasq (only used to check the fixture).
    Returns (rcode, answer_count)."""
    qid = random.randrange(65536)
    q = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + qtype.to_bytes(2, "big") + b"\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, ("127.0.0.1", server_port))
        d, _ = s.recvfrom(4096)
    return d[3] & 0x0F, int.from_bytes(d[6:8], "big")


def raise_nofile(want):
    """Raise RLIMIT_NOFILE of this process to min(want, hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def prlimit_nofile(pid, limits=None):
    """resource.prlimit(pid, RLIMIT_NOFILE[, limits]) on a process that may
    run as another user: stpd started as root drops to nobody (or stpd),
    and changing another user's limits needs CAP_SYS_RESOURCE, which the
    test's root may lack (containers). Then it is done from a child running
    as the target's uid and gid, which prlimit(2) allows."""
    import sys
    args = [limits] if limits else []
    try:
        return resource.prlimit(pid, resource.RLIMIT_NOFILE, *args)
    except PermissionError:
        if os.geteuid() != 0:
            raise
    with open("/proc/%d/status" % pid) as f:
        st = dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ":\t" in ln)
    uid, gid = int(st["Uid"].split()[0]), int(st["Gid"].split()[0])
    code = ("import resource; print(*resource.prlimit(%d, resource.RLIMIT_NOFILE%s))"
            % (pid, ", %r" % (tuple(limits),) if limits else ""))
    r = subprocess.run([sys.executable, "-c", code], user=uid, group=gid, extra_groups=[],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    soft, hard = r.stdout.split()
    return int(soft), int(hard)
