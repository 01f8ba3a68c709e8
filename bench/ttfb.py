#!/usr/bin/python3
"""Time to first byte of a short request: direct, RFC 1928 step by step,
pipelined (docs/protocol.md 5.11), and pipelined in the SYN (TCP Fast Open),
for method none and RFC 1929; also TCP segments per connection.

    bench/ttfb.py --stpd build/src/server/stpd [-n 2000]

One client, one connection at a time (latency, not load). Everything runs
in a network namespace of its own (lo only, net.ipv4.tcp_fastopen=3 so
both ends may use TFO, counters of its own for nstat), which the script
makes and removes; root is needed for that. The target is an echo server
in a separate process; stpd runs with one worker. Modes run interleaved in
rounds, so drift hits all alike. Prints a Markdown table: median and p90
in microseconds, the ratio of medians to direct, the median of the quietest
of the 10 rounds (the machine may be shared: load bursts hit single rounds)
and its ratio, segments per connection.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MSG_FASTOPEN = 0x20000000
REQUEST = b"GET / HTTP/1.0\r\n\r\n"


def echo_server():
    """Runs in the child: a one-thread echo on 127.0.0.1, port on stdout;
    Fast Open on its listener."""
    import selectors
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 256)
    ls.listen(512)
    print(ls.getsockname()[1], flush=True)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is ls:
                c, _ = ls.accept()
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
                continue
            try:
                d = key.fileobj.recv(65536)
            except OSError:
                d = b""
            if d:
                try:
                    key.fileobj.send(d)
                except OSError:
                    pass
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()


def start_echo():
    """echo_server in a process of its own: (the process, its port)."""
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--echo"],
                         stdout=subprocess.PIPE)
    return p, int(p.stdout.readline())


def time_modes(fns, n, rounds=10, warmup=20, meter=None):
    """Time to first byte of each mode. fns maps a mode's name to a function
    that makes one request, returns once its first byte is back, and
    returns what closes it (not timed). After WARMUP of each (TFO cookies
    are fetched then), N per mode in ROUNDS interleaved rounds, so drift
    hits all modes alike. Returns {mode: sorted times in µs}, {mode: the
    median of its quietest round} (the machine may be shared: load bursts
    hit single rounds), and, with METER (a counter, e.g. TCP segments sent)
    read around each mode's round, {mode: its total increase}."""
    times = {m: [] for m in fns}
    best = {m: float("inf") for m in fns}
    metered = {m: 0 for m in fns}
    for fn in fns.values():
        for _ in range(warmup):
            fn()()
    for _ in range(rounds):
        for m, fn in fns.items():
            before = meter() if meter else 0
            one = []
            for _ in range(n // rounds):
                t0 = time.perf_counter_ns()
                done = fn()
                one.append((time.perf_counter_ns() - t0) / 1000.0)
                done()
            times[m] += one
            best[m] = min(best[m], statistics.median(one))
            if meter:
                time.sleep(0.05)  # the closes' segments land in this mode's count
                metered[m] += meter() - before
    return {m: sorted(t) for m, t in times.items()}, best, metered


def addr4(port):
    return b"\x01\x7f\x00\x00\x01" + port.to_bytes(2, "big")


def recv_n(s, n):
    got = b""
    while len(got) < n:
        c = s.recv(n - len(got))
        if not c:
            raise ConnectionError("closed after %d of %d bytes" % (len(got), n))
        got += c
    return got


def conn(port, first=b"", tfo=False):
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tfo:
        s.sendto(first, MSG_FASTOPEN, ("127.0.0.1", port))
    else:
        s.connect(("127.0.0.1", port))
        if first:
            s.sendall(first)
    return s


def mode_fns(proxy, auth_proxy, target, auth):
    req = b"\x05\x01\x00" + addr4(target)
    up = bytes([1, len(auth[0])]) + auth[0] + bytes([len(auth[1])]) + auth[1]

    def direct(tfo=False):
        s = conn(target, REQUEST, tfo)
        recv_n(s, 1)
        return s.close

    def step(port, userpass):
        s = conn(port)
        s.sendall(b"\x05\x01" + (b"\x02" if userpass else b"\x00"))
        recv_n(s, 2)
        if userpass:
            s.sendall(up)
            recv_n(s, 2)
        s.sendall(req)
        recv_n(s, 10)
        s.sendall(REQUEST)
        recv_n(s, 1)
        return s.close

    def piped(port, userpass, tfo=False):
        first = b"\x05\x01" + (b"\x02" + up if userpass else b"\x00") + req + REQUEST
        s = conn(port, first, tfo)
        recv_n(s, (4 if userpass else 2) + 10 + 1)
        return s.close

    return {
        "direct": lambda: direct(),
        "direct, TFO": lambda: direct(True),
        "RFC 1928 (none)": lambda: step(proxy, False),
        "pipelined (none)": lambda: piped(proxy, False),
        "pipelined + TFO (none)": lambda: piped(proxy, False, True),
        "RFC 1928 + RFC 1929": lambda: step(auth_proxy, True),
        "pipelined (RFC 1929)": lambda: piped(auth_proxy, True),
        "pipelined + TFO (RFC 1929)": lambda: piped(auth_proxy, True, True),
    }


def out_segs():
    """TCP segments sent in this namespace so far (both ends: all on lo)."""
    head, vals = [l.split() for l in open("/proc/net/snmp") if l.startswith("Tcp:")]
    return int(vals[head.index("OutSegs")])


def start_stpd(stpd, tmp, port, users=None):
    conf = os.path.join(tmp, "stpd-%d.conf" % port)
    with open(conf, "w") as f:
        if users:
            f.write("auth { methods userpass; users-file %s }\n" % users)
        f.write("listen 127.0.0.1:%d { }\nclient pass { from 127.0.0.0/8 }\n"
                "request pass { }\nlog { level warning }\n" % port)
    p = subprocess.Popen([stpd, "-c", conf, "--workers", "1"], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(tmp, "stpd-%d.log" % port), "w"))
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("stpd did not start")


def run(args):
    tmp = tempfile.mkdtemp(prefix="stp-ttfb-")
    users = os.path.join(tmp, "users")
    # sha256-crypt: the hash costs the same in both auth modes, and little.
    h = subprocess.run(["openssl", "passwd", "-5", "-salt", "benchsalt", "pw"],
                       capture_output=True, check=True).stdout.decode().strip()
    with open(users, "w") as f:
        f.write("bench:%s\n" % h)
    echo, target = start_echo()
    procs = [echo, start_stpd(args.stpd, tmp, 21080), start_stpd(args.stpd, tmp, 21081, users)]
    try:
        fns = mode_fns(21080, 21081, target, (b"bench", b"pw"))
        times, best, segs = time_modes(fns, args.n, meter=out_segs)
        base = statistics.median(times["direct"])
        print("| mode | median µs | p90 µs | median / direct | quietest round's median µs "
              "| / direct | TCP segments per connection |")
        print("|---|---|---|---|---|---|---|")
        for m, t in times.items():
            med = statistics.median(t)
            print("| %s | %.0f | %.0f | %.2f | %.0f | %.2f | %.1f |" % (
                m, med, t[int(len(t) * 0.9)], med / base, best[m], best[m] / best["direct"],
                segs[m] / len(t)))
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stpd", default="build/src/server/stpd")
    ap.add_argument("-n", type=int, default=2000, help="connections per mode")
    ap.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.echo:
        echo_server()
        return
    if args.in_netns:
        run(args)
        return
    ns = "stp-ttfb-%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        ex = ["ip", "netns", "exec", ns]
        subprocess.run(ex + ["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(ex + ["sysctl", "-qw", "net.ipv4.tcp_fastopen=3"], check=True)
        r = subprocess.run(ex + [sys.executable, os.path.abspath(__file__), "--in-netns",
                                 "--stpd", os.path.abspath(args.stpd), "-n", str(args.n)])
        sys.exit(r.returncode)
    finally:
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    main()
