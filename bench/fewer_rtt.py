#!/usr/bin/python3
"""Issue 17's table (docs/protocol.md 5.11 "Measured"): time to first byte
of a short request, and connections (streams) per second at 32 and 256
clients, for direct, RFC 1928, pipelined, multiplexed (CMD X'30'),
multiplexed over TLS, Dante and microsocks, in one interleaved run.

    bench/fewer_rtt.py --stpd build-rel/src/server/stpd --loadgen build-rel/bench/loadgen

Servers are started as bench/compare starts them (its Server class: each on
a free 127.0.0.1 port, stopped at exit), stpd with 2 workers and
`mux { max-streams 1000 }` (256 streams on 2 connections, plus the ones
closing), stpd+tls with one `tls on` listener and a self-signed P-256
certificate (not verified by the clients: loopback only).

Rates: `loadgen connrate` (bench/README.md): C clients each looping
connect, handshake, CONNECT to the echo, 64 bytes there and back, close;
`--pipeline` sends greeting and request in one write; `--mux` makes each
cycle an HTTP/2 CONNECT stream over X'30' connections opened once
(--mux-conns 4: stpd's 2 workers take connections by SO_REUSEPORT hash,
so with 2 both may land on one worker), `--mux --tls` the same inside TLS. The stpd
rows also give stpd's CPU per cycle (utime+stime over the whole loadgen
run, warm-up included, divided by the cycles of that run).

Time to first byte: one client, one request at a time, 18 bytes to the
echo and the time until the first byte is back; modes interleaved in
rounds. RFC 1928 modes open a connection per request; multiplexed modes
open a stream on one connection set up before (that is the point of
multiplexing: the handshakes are paid once). Frames are built and read by
hand (HPACK literals, no Huffman), so Python's h2 library costs nothing.

Writes bench/results/DATE-fewer-rtt.md and .json; prints the Markdown.
"""

import argparse
import importlib.machinery
import json
import os
import random
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
compare = importlib.machinery.SourceFileLoader("compare", os.path.join(HERE, "compare")).load_module()
sys.path.insert(0, HERE)
from ttfb import recv_n, start_echo, time_modes  # noqa: E402  (bench/ttfb.py)

REQUEST = b"GET / HTTP/1.0\r\n\r\n"
MODES = [  # name, server, loadgen extra
    ("direct", None, []),
    ("RFC 1928 (stpd)", "stpd", []),
    ("pipelined (stpd)", "stpd", ["--pipeline"]),
    ("multiplexed (stpd)", "stpd", ["--mux", "--mux-conns", "4"]),
    ("multiplexed over TLS (stpd)", "stpd+tls", ["--mux", "--mux-conns", "4", "--tls"]),
    ("RFC 1928 (Dante)", "danted", []),
    ("RFC 1928 (microsocks)", "microsocks", []),
]


def listen_port():
    """A port below the ephemeral range: after tens of thousands of cycles
    per second every ephemeral port of 127.0.0.1 may sit in TIME_WAIT, and
    bind(port 0) then fails."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in 20000-32000")


compare.free_port = listen_port
DANTE_EXTERNAL = iter(range(20, 250))


class Server(compare.Server):
    def stpd_command(self, p):
        cmd = super().stpd_command(p)
        with open(cmd[cmd.index("-c") + 1], "a") as f:
            f.write("mux { max-streams 1000 }\n")
        return cmd

    def command(self):
        cmd = super().command()
        if self.name == "danted":
            # Dante binds its outgoing sockets to `external` before connect(),
            # so ports in TIME_WAIT on that address count: a fresh loopback
            # address per start (127.0.0.20, .21, ...) has them all free.
            conf = cmd[cmd.index("-f") + 1]
            text = open(conf).read().replace("external: 127.0.0.1",
                                             "external: 127.0.0.%d" % next(DANTE_EXTERNAL))
            open(conf, "w").write(text)
        return cmd


def cpu_secs(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- rates


def rate(loadgen, mode, clients, srv, args):
    name, server, extra = mode
    cmd = [loadgen, "connrate", "--clients", str(clients), "--duration", str(args.duration),
           "--warmup", str(args.warmup), "--threads", "2"] + extra
    cmd += ["--direct"] if server is None else ["--proxy", "127.0.0.1:%d" % srv.port]
    c0 = cpu_secs(srv.proc.pid) if server and server.startswith("stpd") else None
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    try:
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {"ok": False, "first_error": p.stderr.strip()[-300:]}
    res["ok"] = res.get("ok", False) and p.returncode == 0
    if c0 is not None and res.get("conn_s"):
        cycles = res["conn_s"] * (args.duration + args.warmup)
        res["stpd_us"] = (cpu_secs(srv.proc.pid) - c0) * 1e6 / cycles
    res["load1"] = os.getloadavg()[0]
    return res


# ---------------------------------------------------------------- time to first byte


def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def literal(name, value):
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


class RawMux:
    """One X'30' connection driven with hand-made frames: a stream is
    HEADERS (CONNECT) + DATA (the request) in one write, then frames are
    read until that stream's first DATA byte; END_STREAM closes it."""

    def __init__(self, port, tls=False):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the bench's self-signed certificate
            s = ctx.wrap_socket(s)
        s.sendall(b"\x05\x01\x00\x05\x30\x00\x01" + bytes(6))
        head = recv_n(s, 12)
        assert head[:2] == b"\x05\x00" and head[3] == 0, head
        # Preface, SETTINGS (a large stream window), a large connection window.
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, struct.pack(">HI", 4, 1 << 24))
                  + frame(8, 0, 0, struct.pack(">I", (1 << 30))))
        self.s, self.buf, self.next = s, b"", 1

    def read_frame(self):
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            c = self.s.recv(65536)
            if not c:
                raise ConnectionError("stpd closed the mux connection")
            self.buf += c
        n = int.from_bytes(self.buf[:3], "big")
        f, self.buf = self.buf[:9 + n], self.buf[9 + n:]
        ftype, flags, sid = f[3], f[4], int.from_bytes(f[5:9], "big") & 0x7fffffff
        if ftype == 4 and not flags & 1:
            self.s.sendall(frame(4, 1, 0, b""))  # SETTINGS ACK
        return ftype, flags, sid, f[9:]

    def stream(self, authority):
        sid, self.next = self.next, self.next + 2
        block = literal(b":method", b"CONNECT") + literal(b":authority", authority)
        self.s.sendall(frame(1, 4, sid, block) + frame(0, 0, sid, REQUEST))
        while True:
            ftype, _, fsid, payload = self.read_frame()
            if fsid == sid and ftype == 0 and payload:
                break
            if fsid == sid and ftype == 3:
                raise ConnectionError("stream reset")
        return sid

    def close_stream(self, sid):
        # END_STREAM, as a client closes its side; not RST_STREAM, which
        # stpd rate-limits (1000 at once, 33/s: "rapid reset").
        self.s.sendall(frame(0, 1, sid, b""))


def ttfb_fns(servers, target):
    req = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + target.to_bytes(2, "big")

    def direct():
        s = socket.create_connection(("127.0.0.1", target))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(REQUEST)
        recv_n(s, 1)
        return s.close

    def step(port):
        def fn():
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"\x05\x01\x00")
            recv_n(s, 2)
            s.sendall(req)
            recv_n(s, 10)
            s.sendall(REQUEST)
            recv_n(s, 1)
            return s.close
        return fn

    def piped(port):
        def fn():
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"\x05\x01\x00" + req + REQUEST)
            recv_n(s, 2 + 10 + 1)
            return s.close
        return fn

    auth = b"127.0.0.1:%d" % target
    mux = RawMux(servers["stpd"].port)
    mux_tls = RawMux(servers["stpd+tls"].port, tls=True)

    def streamer(m):
        def fn():
            sid = m.stream(auth)
            return lambda: m.close_stream(sid)
        return fn

    fns = {"direct": direct, "RFC 1928 (stpd)": step(servers["stpd"].port),
           "pipelined (stpd)": piped(servers["stpd"].port),
           "multiplexed (stpd)": streamer(mux),
           "multiplexed over TLS (stpd)": streamer(mux_tls)}
    if "danted" in servers:
        fns["RFC 1928 (Dante)"] = step(servers["danted"].port)
    if "microsocks" in servers:
        fns["RFC 1928 (microsocks)"] = step(servers["microsocks"].port)
    return fns


def ttfb(servers, n):
    echo, target = start_echo()
    try:
        return time_modes(ttfb_fns(servers, target), n)[0]
    finally:
        echo.terminate()
        echo.wait()


# ---------------------------------------------------------------- report


def markdown(rates, ttfbs, meta):
    def med(m, c, key="conn_s"):
        v = [r[key] for r in rates.get((m, c), []) if r.get("ok") and r.get(key) is not None]
        return statistics.median(v) if v else None

    def ratio(m, c):
        """Median of the repetitions' ratios: each run next to the direct run
        of its own repetition, which cancels part of the machine's drift."""
        v = [r["conn_s"] / d["conn_s"] for r, d in zip(rates.get((m, c), []),
                                                       rates.get(("direct", c), []))
             if r.get("ok") and d.get("ok") and d.get("conn_s")]
        return statistics.median(v) if v else None

    out = ["Run %s, `bench/fewer_rtt.py`, %d repetitions x %g s (+%g s warm-up) per rate, "
           "%d requests per time-to-first-byte mode, load average %.1f at start and %.1f at end "
           "(2 cores shared with other work: compare ratios, not absolute numbers)." % (
               meta["date"], meta["reps"], meta["duration"], meta["warmup"], meta["n"],
               meta["load_start"], meta["load_end"]), "",
           "Rates are medians over the repetitions; their \"/ direct\" is the median of the "
           "repetitions' own ratios (each run next to its repetition's direct run).", "",
           "| mode | TTFB median µs | / direct | TTFB p90 µs | streams or conn/s, 32 clients "
           "| / direct | 256 clients | / direct | stpd CPU µs per cycle (32) |",
           "|---|---|---|---|---|---|---|---|---|"]
    base_t = statistics.median(ttfbs["direct"]) if "direct" in ttfbs else None
    for name, _, _ in MODES:
        t = ttfbs.get(name)
        cells = [name]
        if t:
            tm = statistics.median(t)
            cells += ["%.0f" % tm, "%.2f" % (tm / base_t), "%.0f" % t[int(len(t) * 0.9)]]
        else:
            cells += ["—"] * 3
        for c in (32, 256):
            r = med(name, c)
            q = ratio(name, c)
            cells += ["%.0f" % r if r else "failed", "%.2f" % q if q else "—"]
        cpu = med(name, 32, "stpd_us")
        cells.append("%.1f" % cpu if cpu else "—")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stpd", required=False)
    ap.add_argument("--loadgen", required=False)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--duration", type=float, default=4)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("-n", type=int, default=2000, help="requests per time-to-first-byte mode")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--render", metavar="JSON", help="print the table of an earlier run")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: stpd modes only, once, briefly, nothing written; "
                         "exit 1 on any failure (meson test --suite bench)")
    args = ap.parse_args()
    if args.render:
        j = json.load(open(args.render))
        rates = {(k.rsplit("|", 1)[0], int(k.rsplit("|", 1)[1])): v for k, v in j["rates"].items()}
        print(markdown(rates, j["ttfb_us"], j["meta"]))
        return
    if args.quick:
        args.reps, args.duration, args.warmup, args.n = 1, 0.5, 0.2, 50
    stpd, loadgen = compare.build(argparse.Namespace(stpd=args.stpd, loadgen=args.loadgen))
    names = ["stpd", "stpd+tls"] + [s for s in ("danted", "microsocks") if
                                   shutil_which(s) and not args.quick]
    workdir = tempfile.mkdtemp(prefix="stp-fewer-rtt-")
    compare.make_stpd_files(stpd, workdir)
    servers = {n: Server(n, stpd, workdir, 2) for n in names}
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "reps": args.reps,
            "duration": args.duration, "warmup": args.warmup, "n": args.n,
            "load_start": os.getloadavg()[0]}
    rates = {}
    try:
        for s in servers.values():
            s.start()
        for rep in range(args.reps):
            for c in (32, 256):
                for mode in MODES:
                    if mode[1] and mode[1] not in servers:
                        continue
                    srv = servers.get(mode[1])
                    # Dante that served a run before refuses some clients with
                    # "network unreachable" (bench/NOTES.md): a fresh one each time.
                    if srv and (not srv.alive() or mode[1] == "danted"):
                        srv.restart()
                    r = rate(loadgen, mode, c, srv, args)
                    rates.setdefault((mode[0], c), []).append(r)
                    print("rep %d %3d clients %-28s %8.0f/s %s%s" % (
                        rep + 1, c, mode[0], r.get("conn_s") or 0,
                        "ok" if r["ok"] else "FAILED " + r.get("first_error", ""),
                        " stpd %.1f us/cycle" % r["stpd_us"] if "stpd_us" in r else ""),
                        file=sys.stderr, flush=True)
        ttfbs = ttfb(servers, args.n)
    finally:
        for s in servers.values():
            s.stop()
    meta["load_end"] = os.getloadavg()[0]
    md = markdown(rates, ttfbs, meta)
    print(md)
    if args.quick:
        bad = [k for k, v in rates.items() if not all(r["ok"] for r in v)]
        if bad:
            sys.exit("fewer_rtt: failed: %s" % bad)
        return
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, time.strftime("%Y-%m-%d-%H%M", time.gmtime()) + "-fewer-rtt")
    with open(stem + ".md", "w") as f:
        f.write("# Fewer round trips and multiplexing (issue 17)\n\n" + md)
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "rates": {"%s|%d" % k: v for k, v in rates.items()},
                   "ttfb_us": ttfbs}, f)
    print("wrote %s.md and .json" % stem, file=sys.stderr)


def shutil_which(name):
    import shutil
    return shutil.which(name) or os.path.exists("/usr/sbin/" + name)


if __name__ == "__main__":
    main()
