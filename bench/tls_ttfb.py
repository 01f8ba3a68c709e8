#!/usr/bin/python3
"""Time to first byte through TLS proxies with libstp itself, step by step
(STP_PIPELINING=0) against pipelined (docs/protocol.md 5.11, "inside TLS"),
next to direct in the same run.

    bench/tls_ttfb.py --build build [-n 300] [--clients 1,32]

stpd (2 workers, a plain listener offering X'86' and a `tls on` listener,
RFC 1929 with `cache-ttl`: the password hash is paid once, not per
connection) and an echo target run on loopback. A Python process loads
libstp.so.2 with ctypes; C client threads (ctypes calls run without the
GIL) each loop: stp_conn_open to the echo through the proxy, write 18
bytes, read the first byte back, close. Direct: the same with a plain TCP
connect. The time is from the call to the first byte. Modes run
interleaved in rounds (drift hits all alike). Before the timed rounds each
proxy mode warms up until discovery is cached, so "pipelined" is libstp's
steady state (the first two connections of a process go step by step).
STP_MUX=0: one TLS connection per target, the path this measures.
Prints a Markdown table: median and p90 µs per mode and client count, and
the ratio of medians to direct.

On loopback a round trip is a thread wake-up and the TLS handshake's CPU
dominates; --delay-ms D puts a relay that delays each chunk by D ms in
front of stpd and of the direct target (a 2D ms round trip, no sch_netem
here), which shows the round trips themselves.
"""

import argparse
import ctypes
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REQUEST = b"GET / HTTP/1.0\r\n\r\n"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ttfb import start_echo  # noqa: E402  (bench/ttfb.py)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_pki(d):
    """A self-signed P-256 CA that signs the server's certificate."""
    def run(*a):
        subprocess.run(a, cwd=d, check=True, capture_output=True)
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run("openssl", "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=bench CA",
        "-days", "2", "-out", "ca.pem")
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key")
    run("openssl", "req", "-new", "-key", "server.key", "-subj", "/CN=localhost",
        "-out", "server.csr")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")


def start_stpd(build, d):
    plain, tls = free_port(), free_port()
    users = os.path.join(d, "users")
    # sha256-crypt (openssl passwd -5), which stpd accepts: cheap, and cached
    h = subprocess.run(["openssl", "passwd", "-5", "-stdin"], input="pw\n", text=True,
                       check=True, capture_output=True).stdout.strip()
    with open(users, "w") as f:
        f.write("bench:%s\n" % h)
    conf = os.path.join(d, "stpd.conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:%d { name plain }\n" % plain)
        f.write("listen 127.0.0.1:%d { name tlsl; tls on }\n" % tls)
        f.write("workers 2\n")
        f.write("auth { methods ssl userpass; backend file; users-file %s; cache-ttl 600 }\n" % users)
        f.write("tls { cert %s; key %s; subauth userpass }\n" % (
            os.path.join(d, "server.pem"), os.path.join(d, "server.key")))
        f.write("log { target stderr; level warning }\n")
        f.write("limits { sessions 100000; sessions-per-client 100000 }\n")
        f.write("client pass { from 127.0.0.0/8 }\nrequest pass { }\n")
    p = subprocess.Popen([os.path.join(build, "src/server/stpd"), "-c", conf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", tls), timeout=1).close()
            socket.create_connection(("127.0.0.1", plain), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise RuntimeError("stpd did not start: %s" % p.stderr.read(4000).decode())
    return p, plain, tls


class Lib:
    def __init__(self, path):
        self.l = ctypes.CDLL(path)
        self.l.stp_conn_open.restype = ctypes.c_void_p
        self.l.stp_conn_open.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16,
                                         ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        self.l.stp_conn_write.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                          ctypes.POINTER(ctypes.c_int)]
        self.l.stp_conn_write.restype = ctypes.c_ssize_t
        self.l.stp_conn_read.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                         ctypes.POINTER(ctypes.c_int)]
        self.l.stp_conn_read.restype = ctypes.c_ssize_t
        self.l.stp_conn_close.argtypes = [ctypes.c_void_p]

    def proxy(self, url):
        buf = ctypes.create_string_buffer(65536)
        err = ctypes.c_int(0)
        if self.l.stp_proxy_parse(buf, url.encode(), ctypes.byref(err)) != 0:
            raise RuntimeError("bad URL %s: %d" % (url, err.value))
        return buf

    def once(self, proxy, port):
        """µs from stp_conn_open to the first byte back."""
        err = ctypes.c_int(0)
        b = ctypes.create_string_buffer(64)
        t0 = time.perf_counter()
        c = self.l.stp_conn_open(proxy, b"127.0.0.1", port, 20000, ctypes.byref(err))
        if not c:
            raise RuntimeError("stp_conn_open: error %d" % err.value)
        self.l.stp_conn_write(c, REQUEST, len(REQUEST), ctypes.byref(err))
        n = self.l.stp_conn_read(c, b, 64, ctypes.byref(err))
        t = (time.perf_counter() - t0) * 1e6
        self.l.stp_conn_close(c)
        if n <= 0:
            raise RuntimeError("no echo")
        return t


class DelayRelay:
    """A TCP relay that holds every chunk delay_ms before passing it on,
    in order, both ways: a round trip of 2 x delay_ms, like a network
    path (this kernel has no sch_netem). Each direction has a reader
    thread and a writer thread."""

    def __init__(self, upstream, delay_ms):
        import queue
        self.queue = queue
        self.upstream, self.delay = upstream, delay_ms / 1000.0
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(512)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._direction(c, u)
            self._direction(u, c)

    def _direction(self, src, dst):
        q = self.queue.Queue()

        def reader():
            while True:
                try:
                    d = src.recv(65536)
                except OSError:
                    d = b""
                q.put((time.monotonic() + self.delay, d))
                if not d:
                    return

        def writer():
            while True:
                due, d = q.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    if d:
                        dst.sendall(d)
                    else:
                        dst.shutdown(socket.SHUT_WR)
                        return
                except OSError:
                    return
        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()


def direct_once(port):
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(REQUEST)
    s.recv(64)
    t = (time.perf_counter() - t0) * 1e6
    s.close()
    return t


def run_mode(fn, clients, n):
    """clients threads, n requests each; all times."""
    out, errors = [], []
    lock = threading.Lock()

    def worker():
        mine = []
        try:
            for _ in range(n):
                mine.append(fn())
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(str(e))
        with lock:
            out.extend(mine)
    ts = [threading.Thread(target=worker) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("-n", type=int, default=300, help="requests per mode and client count")
    ap.add_argument("--clients", default="1,32")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--delay-ms", type=float, default=0,
                    help="one-way delay added by a relay in front of stpd and of the "
                         "direct target (0: none, loopback as it is)")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    d = tempfile.mkdtemp(prefix="stp-tls-ttfb-")
    make_pki(d)
    os.environ.update(STP_MUX="0", STP_PROXY_LOOPBACK="1", STP_AUTOCONF="0")
    for k in ("STP_PROXY", "ALL_PROXY", "STP_DEBUG", "STP_PIPELINING"):
        os.environ.pop(k, None)
    stpd, plain, tls = start_stpd(build, d)
    echo, target = start_echo()
    lib = Lib(os.path.join(build, "src/client/libstp.so.2"))
    direct_port = target
    if args.delay_ms > 0:
        # stpd's own connection to the target stays undelayed, as a proxy
        # next to its targets; the client's path gets the delay.
        direct_port = DelayRelay(target, args.delay_ms).port
        plain = DelayRelay(plain, args.delay_ms).port
        tls = DelayRelay(tls, args.delay_ms).port
    ca = os.path.join(d, "ca.pem")
    urls = {"socks5+tls://": lib.proxy("socks5+tls://bench:pw@127.0.0.1:%d?ca=%s" % (tls, ca)),
            "socks5s:// (X'86')": lib.proxy("socks5s://bench:pw@127.0.0.1:%d?ca=%s" % (plain, ca))}
    modes = {"direct": lambda: direct_once(direct_port)}
    for name, p in urls.items():
        for piped in (False, True):
            def fn(p=p, piped=piped):
                # STP_PIPELINING is read at each handshake (pipeline.c)
                return lib.once(p, target)
            modes["%s %s" % (name, "pipelined" if piped else "step by step")] = (fn, piped)
    # Warm up: discovery cached, the auth cache filled.
    for p in urls.values():
        for _ in range(4):
            lib.once(p, target)
    load0 = os.getloadavg()[0]
    times = {}
    try:
        for clients in [int(c) for c in args.clients.split(",")]:
            per = max(1, args.n // clients // args.rounds)
            for _ in range(args.rounds):
                for name, m in modes.items():
                    if isinstance(m, tuple):
                        fn, piped = m
                        os.environ["STP_PIPELINING"] = "1" if piped else "0"
                    else:
                        fn = m
                    times.setdefault((name, clients), []).extend(run_mode(fn, clients, per))
    finally:
        stpd.terminate()
        stpd.wait()
        echo.terminate()
        echo.wait()
    print("`bench/tls_ttfb.py`, %s, load average %.1f at start, %.1f at end; libstp %s; "
          "one-way delay %g ms\n" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), load0,
                                      os.getloadavg()[0], build, args.delay_ms))
    cl = sorted({c for _, c in times})
    print("| mode | " + " | ".join("%d client%s: median µs | p90 µs | / direct" % (
        c, "s" if c > 1 else "") for c in cl) + " |")
    print("|---|" + "---|---|---|" * len(cl))
    for name in modes:
        cells = [name]
        for c in cl:
            t = sorted(times[(name, c)])
            base = statistics.median(times[("direct", c)])
            m = statistics.median(t)
            cells += ["%.0f" % m, "%.0f" % t[int(len(t) * 0.9)], "%.2f" % (m / base)]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
