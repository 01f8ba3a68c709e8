#!/usr/bin/env python3
"""Memory soak: stpd under connection churn for a bounded time, its RSS,
open fds and threads sampled as it goes.

  bench/soak.py [--stpd PATH] [--duration S] [--warmup S] [--clients N]
                [--interval S] [--max-growth KiB] [--tls auto|on|off] [--json]

Starts its own stpd on a free loopback port (every session logs in with RFC
1929 from a users file; resolver 127.0.0.1:1, it never resolves), a TCP and a
UDP echo server on loopback, and N client threads that loop until the time is
up: CONNECT + echo of a random-sized message, UDP ASSOCIATE + one datagram and
its echo, and a login with a wrong password (refused). With TLS (--tls auto:
when stpd was built with the tls extension) stpd also has a `tls on`
listener and method X'86' with RFC 1929 sub-authentication (docs/tls.md,
a P-256 certificate made for the run), and the clients add, over TLS 1.2
or 1.3 at random: socks5+tls sessions (TLS from the first byte, RFC 1929
and CONNECT + echo inside, closed with or without close_notify), X'86'
sessions (TLS in frames, options, sub-authentication, CONNECT + echo,
orderly close), and sessions of both kinds that the client drops mid-way:
after its ClientHello, after the server's first flight, or (X'86') after
the handshake before the options. Every few seconds it
samples /proc/PID/status (VmRSS, Threads) and /proc/PID/fd. Prints the
samples at start (before load), after the warm-up, at the end of the load and
the maxima, then waits for the fds to come back to the start's count.

Fails (exit 1) when the RSS grows after the warm-up by more than
--max-growth KiB (the highest sample after the warm-up against the sample at
its end), when the fds do not come back to the start's count within 15 s of
the load's end, when a client saw a wrong echo, when stpd died or did not
exit 0 on SIGTERM at the end. Only
loopback traffic; the load is bounded by N threads and the duration."""

import argparse
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import socks  # PySocks (python3-socks)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import socksraw as S  # noqa: E402  (the tests' SOCKS5 codec)
import x86_client as X  # noqa: E402  (the tests' X'86' client, ssl.MemoryBIO)

USER, PASSWORD = "soak", "soak-pw"
PLAIN_KINDS = ("connect", "udp", "badlogin")
TLS_KINDS = ("tls", "x86", "tls_abort", "x86_abort")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tcp_echo():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)

    def serve(c):
        with c:
            while True:
                b = c.recv(65536)
                if not b:
                    return
                c.sendall(b)

    def loop():
        while True:
            c, _ = srv.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def udp_echo():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))

    def loop():
        while True:
            b, a = s.recvfrom(65536)
            s.sendto(b, a)

    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1]


def sample(pid):
    st = {}
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            k, _, v = ln.partition(":")
            st[k] = v.split()
    return {"rss_kib": int(st["VmRSS"][0]), "threads": int(st["Threads"][0]),
            "fds": len(os.listdir("/proc/%d/fd" % pid))}


class Tls:
    """What the TLS sessions need: the tls listener's port and client
    contexts trusting the run's certificate, capped at TLS 1.2 or not."""

    def __init__(self, port, cert):
        self.port = port
        self.ctxs = []
        for top in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cert)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.maximum_version = top
            self.ctxs.append(ctx)


class Load:
    """N client threads of mixed sessions until stop is set."""

    def __init__(self, port, tport, uport, n, tls=None):
        self.port, self.tport, self.uport, self.tls_side = port, tport, uport, tls
        self.stop = threading.Event()
        kinds = PLAIN_KINDS + (TLS_KINDS if tls else ())
        self.counts = dict({k: 0 for k in kinds}, errors=0)
        self.ops = ["connect"] * 6 + ["udp"] * 3 + ["badlogin"]
        if tls:
            self.ops += ["tls"] * 2 + ["x86"] * 2 + ["tls_abort", "x86_abort"]
        self.errors = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                        for i in range(n)]

    def sock(self, kind, password=PASSWORD):
        s = socks.socksocket(socket.AF_INET, kind)
        s.set_proxy(socks.SOCKS5, "127.0.0.1", self.port, username=USER, password=password)
        s.settimeout(20)
        return s

    @staticmethod
    def message(rnd):
        return rnd.randbytes(rnd.choice((1, 100, 4000, 60000)))

    def connect(self, rnd):
        msg = self.message(rnd)
        with self.sock(socket.SOCK_STREAM) as s:
            s.connect(("127.0.0.1", self.tport))
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                b = s.recv(65536)
                if not b:
                    break
                got += b
        return got == msg

    def udp(self, rnd):
        msg = rnd.randbytes(rnd.choice((1, 500, 1400)))
        with self.sock(socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))  # the UDP ASSOCIATE
            s.sendto(msg, ("127.0.0.1", self.uport))
            return s.recvfrom(65536)[0] == msg

    def badlogin(self, rnd):
        with self.sock(socket.SOCK_STREAM, password="wrong") as s:
            try:
                s.connect(("127.0.0.1", self.tport))
            except socks.ProxyError as e:  # PySocks wraps it
                return isinstance(getattr(e, "socket_err", None), socks.SOCKS5AuthError)
        return False

    def tls(self, rnd):
        """socks5+tls: TLS from the first byte, plain SOCKS5 inside."""
        msg = self.message(rnd)
        ctx = rnd.choice(self.tls_side.ctxs)
        with socket.create_connection(("127.0.0.1", self.tls_side.port), timeout=20) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as s:
            if S.negotiate(s, (S.M_USERPASS,)) != S.M_USERPASS or \
                    S.userpass(s, USER, PASSWORD) != 0 or \
                    S.request(s, S.CMD_CONNECT, "127.0.0.1", self.tport).rep != 0:
                return False
            s.sendall(msg)
            ok = S.recv_exact(s, len(msg)) == msg
            if rnd.random() < 0.5:
                s.unwrap()  # close_notify both ways; else just the TCP close
        return ok

    def x86(self, rnd):
        """Method X'86': TLS in frames, RFC 1929 inside, CONNECT + echo."""
        msg = self.message(rnd)
        c = X.X86Client("127.0.0.1", self.port, rnd.choice(self.tls_side.ctxs),
                        server_hostname="localhost", timeout=20)
        try:
            if c.greeting([X.METHOD_SSL]) != X.METHOD_SSL:
                return False
            c.handshake()
            if c.options([X.OPT_SUBAUTH]) != [X.OPT_SUBAUTH] or \
                    c.subauth_methods([0x02]) != 0x02 or c.userpass(USER, PASSWORD) != 0:
                return False
            if c.connect("127.0.0.1", self.tport)[0] != 0:
                return False
            c.send_plain(X.DATA, msg)
            ok = c.recv_plain(len(msg), X.DATA) == msg
            c.close()
            return ok
        finally:
            c.sock.close()

    def hello(self, rnd):
        return X.client_hello(rnd.choice(self.tls_side.ctxs))

    def tls_abort(self, rnd):
        """The tls listener: the client drops the connection after its
        ClientHello, or after the server's first bytes."""
        with socket.create_connection(("127.0.0.1", self.tls_side.port), timeout=20) as s:
            s.sendall(self.hello(rnd))
            if rnd.random() < 0.5:
                return bool(s.recv(1))  # the ServerHello's first byte
        return True

    def x86_abort(self, rnd):
        """X'86': dropped after the ClientHello frame, after the server's
        first frame, or once TLS is up, before the options."""
        how = rnd.randrange(3)
        c = X.X86Client("127.0.0.1", self.port, rnd.choice(self.tls_side.ctxs),
                        server_hostname="localhost", timeout=20)
        try:
            if c.greeting([X.METHOD_SSL]) != X.METHOD_SSL:
                return False
            if how == 2:
                c.handshake()
                return True
            c.send_frame(X.HANDSHAKE, self.hello(rnd))
            return how == 0 or c.recv_frame()[0] == X.HANDSHAKE
        finally:
            c.sock.close()

    def client(self, i):
        rnd = random.Random(i)
        while not self.stop.is_set():
            op = rnd.choice(self.ops)
            try:
                ok = getattr(self, op)(rnd)
            except (OSError, EOFError, ValueError, socks.ProxyError, X.ProtocolError,
                    X.Closed) as e:
                ok = False
                # UDP datagrams may be lost on a loaded machine: count, not fail
                if op == "udp" and isinstance(e, socket.timeout):
                    ok = None
            with self.lock:
                if ok:
                    self.counts[op] += 1
                elif ok is False:
                    self.counts["errors"] += 1
                    if len(self.errors) < 5:
                        self.errors.append(op)

    def start(self):
        for t in self.threads:
            t.start()

    def end(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def run_load(p, port, tport, uport, tls, args, t0, until, samples, counts):
    """The client threads until UNTIL seconds after T0, sampling stpd."""
    load = Load(port, tport, uport, args.clients, tls)
    load.start()
    while time.time() - t0 < until and p.poll() is None:
        time.sleep(min(args.interval, max(0.0, until - (time.time() - t0))))
        if p.poll() is None:
            samples.append(dict(t=round(time.time() - t0, 1), **sample(p.pid)))
    load.end()
    for k, v in load.counts.items():
        counts[k] = counts.get(k, 0) + v
    return load


def settle(p, want, limit=15):
    """stpd's fd count once its sessions closed: the lowest seen until it
    is at most WANT (or, WANT None, stops falling for 1 s), within LIMIT s."""
    deadline = time.time() + limit
    low, low_at = sample(p.pid)["fds"], time.time()
    while time.time() < deadline:
        if want is not None and low <= want:
            break
        if want is None and time.time() - low_at >= 1:
            break
        time.sleep(0.1)
        n = sample(p.pid)["fds"]
        if n < low:
            low, low_at = n, time.time()
    return low


def has_tls(stpd):
    """Whether stpd was built with the tls extension (its -V "modules:")."""
    out = subprocess.run([stpd, "-V"], stdout=subprocess.PIPE, timeout=30).stdout.decode()
    return any(ln.startswith("modules:") and "tls" in ln.split()[1:]
               for ln in out.splitlines())


def write_conf(work, port, users, tls_port):
    """stpd's config: the plain listener, with TLS a `tls on` listener,
    X'86' with RFC 1929 sub-authentication and a fresh P-256 certificate."""
    conf = ["listen 127.0.0.1:%d" % port, "resolver 127.0.0.1:1"]
    cert = None
    if tls_port:
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert, "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conf += ["listen 127.0.0.1:%d { tls on; }" % tls_port,
                 "tls { cert %s; key %s; subauth userpass; }" % (cert, key)]
    conf.append("auth { methods %suserpass; backend file; users-file %s; }" % (
        "ssl " if tls_port else "", users))
    path = os.path.join(work, "stpd.conf")
    with open(path, "w") as f:
        f.write("\n".join(conf) + "\n")
    return path, cert


def soak(args):
    tport, uport, port = tcp_echo(), udp_echo(), free_port()
    tls_port = free_port() if args.tls == "on" or (args.tls == "auto" and
                                                   has_tls(args.stpd)) else None
    work = tempfile.mkdtemp(prefix="stp-soak-")
    users = os.path.join(work, "users")
    h = subprocess.run(["openssl", "passwd", "-6", PASSWORD], check=True,
                       stdout=subprocess.PIPE).stdout.decode().strip()
    with open(users, "w") as f:
        f.write("%s:%s\n" % (USER, h))
    conf, cert = write_conf(work, port, users, tls_port)
    tls = Tls(tls_port, cert) if tls_port else None
    log = open(os.path.join(work, "stpd.log"), "w+")
    quiet = False  # show stpd's log unless all went well
    p = subprocess.Popen([args.stpd, "-c", conf, "--workers", str(args.workers),
                          "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        for lport in (port, tls_port):
            while lport:
                try:
                    socket.create_connection(("127.0.0.1", lport), 1).close()
                    break
                except OSError:
                    if p.poll() is not None or time.time() > deadline:
                        raise SystemExit("stpd did not start")
                    time.sleep(0.05)
        time.sleep(0.5)  # the probe connection's session ends
        samples = [dict(t=0.0, **sample(p.pid))]
        # Warm-up, then a pause to count the fds of an idle, warmed stpd
        # (each worker keeps a splice pipe once it relayed), then the rest.
        t0 = time.time()
        counts = {}
        load = run_load(p, port, tport, uport, tls, args, t0, args.warmup, samples, counts)
        warm = samples[-1]
        idle_fds = settle(p, None)
        load = run_load(p, port, tport, uport, tls, args, t0, args.duration, samples, counts)
        end = samples[-1]
        alive = p.poll() is None
        fds_after = settle(p, idle_fds) if alive else None
        after = warm and [s for s in samples if s["t"] >= warm["t"]]
        res = {
            "duration_s": args.duration, "warmup_s": args.warmup, "clients": args.clients,
            "workers": args.workers, "tls": bool(tls), "start": samples[0],
            "after_warmup": warm, "end": end,
            "max": {k: max(s[k] for s in samples) for k in ("rss_kib", "fds", "threads")},
            "rss_growth_after_warmup_kib": after and max(s["rss_kib"] for s in after) - warm["rss_kib"],
            "fds_idle_after_warmup": idle_fds, "fds_after_load": fds_after, "sessions": counts,
            "load_average": open("/proc/loadavg").read().split()[:3],
            "samples": samples,
        }
        problems = []
        if not alive:
            problems.append("stpd exited (%s)" % p.returncode)
        else:  # a clean exit (with ASan: LeakSanitizer found nothing)
            p.terminate()
            try:
                res["exit_status"] = p.wait(60)
            except subprocess.TimeoutExpired:
                res["exit_status"] = None
            if res["exit_status"] != 0:
                problems.append("stpd exited with %s on SIGTERM" % res["exit_status"])
        if res["rss_growth_after_warmup_kib"] > args.max_growth:
            problems.append("RSS grew by %d KiB after the warm-up (bound %d)" % (
                res["rss_growth_after_warmup_kib"], args.max_growth))
        if alive and fds_after > idle_fds:
            problems.append("%d fds open after the load, %d idle after the warm-up" % (
                fds_after, idle_fds))
        if counts["errors"]:
            problems.append("%d failed sessions (first: %s)" % (counts["errors"], load.errors))
        if not all(counts[k] for k in PLAIN_KINDS + (TLS_KINDS if tls else ())):
            problems.append("not every kind of session ran: %s" % counts)
        res["problems"] = problems
        quiet = not problems
        return res
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.seek(0)
        tail = log.read()[-2000:]
        log.close()
        if tail.strip() and not quiet:
            print("---- stpd log (tail)\n" + tail, file=sys.stderr)
        subprocess.run(["rm", "-rf", work])


def summary(r):
    out = ["soak: %d s, %d client threads, %d workers, TLS %s, warm-up %d s, load average %s" % (
        r["duration_s"], r["clients"], r["workers"], "on" if r["tls"] else "off", r["warmup_s"],
        " ".join(r["load_average"]))]
    for k in ("start", "after_warmup", "end", "max"):
        s = r[k] or {}
        out.append("  %-13s rss %6s KiB  fds %4s  threads %3s%s" % (
            k, s.get("rss_kib"), s.get("fds"), s.get("threads"),
            "  (t=%s s)" % s["t"] if "t" in s else ""))
    out.append("  RSS growth after warm-up: %s KiB; idle fds after warm-up %s, after the load %s"
               % (r["rss_growth_after_warmup_kib"], r["fds_idle_after_warmup"],
                  r["fds_after_load"]))
    out.append("  sessions: %s" % (
        ", ".join("%s %d" % kv for kv in r["sessions"].items())))
    out.append("  verdict: " + ("; ".join(r["problems"]) or "ok"))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stpd", default=os.environ.get("STPD", os.path.join(
        os.path.dirname(HERE), "build/src/server/stpd")))
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--warmup", type=float, default=None, help="default: a fifth, at least 10 s")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--interval", type=float, default=5)
    ap.add_argument("--max-growth", type=int, default=4096, help="KiB")
    ap.add_argument("--tls", choices=("auto", "on", "off"), default="auto",
                    help="TLS sessions too (auto: if stpd has the tls extension)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()
    if args.warmup is None:
        args.warmup = max(10.0, args.duration / 5)
    r = soak(args)
    print(json.dumps(r) if args.json else summary(r))
    sys.exit(1 if r["problems"] else 0)


if __name__ == "__main__":
    main()
