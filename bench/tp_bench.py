#!/usr/bin/python3
"""TRANSPARENT's kernel engine against a direct routed path (issue 12).

Runs as root, in the namespace topology of tests/netns/tp_topo.py (client,
relay, target; the relay forwards). Each repetition measures, in this
order: UDP datagrams/s and TCP bulk over the direct routed path (the client
sends to the target's address, the relay routes), then the same through a
kernel-engine pinhole (the client sends to BND, the relay's DNAT/SNAT and
forward rules carry it), and the CPU the engine's process used meanwhile.
Prints one Markdown table (medians, ratios) for bench/NOTES.md.

    bench/tp_bench.py [--build build] [--reps 3] [--seconds 3] [--size 512]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "netns"))

from tp_topo import TpTopology  # noqa: E402


def cpu_seconds(pid):
    """CPU time of the process's main thread in ns resolution (schedstat's
    first field), so a few microseconds show."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0]) / 1e9


class Bench:
    def __init__(self, args, topo):
        self.a, self.t = args, topo
        self.flood = os.path.join(REPO, args.build, "bench", "tp_flood")
        self.drive = os.path.join(REPO, args.build, "tests", "netns", "tp_drive")
        self.port = 47000

    def next_port(self):
        self.port += 1
        return self.port

    def receiver(self, mode, bind, *extra):
        p = self.t.target.popen([self.flood, mode, bind] + list(extra),
                                stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        return p

    def udp(self, src, dst, bind):
        r = self.receiver("udp-recv", bind, "1000")
        self.t.client.sh(self.flood, "udp-send", src, dst, str(self.a.seconds), str(self.a.size))
        out = r.communicate(timeout=60)[0].split()
        n, secs = int(out[1]), float(out[5])
        return n / secs if secs > 0 else 0.0, n

    def tcp(self, src, dst, bind):
        r = self.receiver("tcp-recv", bind)
        self.t.client.sh(self.flood, "tcp-send", src, dst, str(self.a.seconds))
        out = r.communicate(timeout=60)[0].split()
        return int(out[1]) / float(out[3]) / 1e6

    def direct(self):
        t = self.t
        p1, p2 = self.next_port(), self.next_port()
        udp, _ = self.udp("%s:%d" % (t.C1, p1), "%s:%d" % (t.T, p1), "%s:%d" % (t.T, p1))
        tcp = self.tcp("%s:%d" % (t.C1, p2), "%s:%d" % (t.T, p2), "%s:%d" % (t.T, p2))
        return udp, tcp

    def pinhole(self):
        t = self.t
        d = t.relay.popen([self.drive, "kernel"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, bufsize=1)
        assert d.stdout.readline().strip() == "ready"

        def open_(n, ptcl, port):
            d.stdin.write("open %d %d %s:%d %s:%d %s:0 0 0\n" % (n, ptcl, t.C1, port, t.T, port,
                                                                t.R1))
            f = d.stdout.readline().split()
            assert f[0] == "opened" and f[2] == "0", f
            return f[3]

        p1, p2 = self.next_port(), self.next_port()
        bnd_u, bnd_t = open_(1, 17, p1), open_(2, 6, p2)
        cpu0 = cpu_seconds(d.pid)
        udp, n = self.udp("%s:%d" % (t.C1, p1), bnd_u, "%s:%d" % (t.T, p1))
        tcp = self.tcp("%s:%d" % (t.C1, p2), bnd_t, "%s:%d" % (t.T, p2))
        cpu = cpu_seconds(d.pid) - cpu0
        # TCP relay 2 may have ended by itself ("closed": both FINs seen)
        d.stdin.write("close 1\nclose 2\nquit\n")
        d.stdin.flush()
        final = {}
        for line in d.stdout:
            f = line.split()
            if f[0] == "closed":
                final[f[1]] = [int(x) for x in f[2:6]]
            elif f[0] == "ended":
                final[f[1]] = [int(x) for x in f[3:7]]
        d.wait(10)
        t.relay.sh("nft", "delete", "table", "inet", "stpd_tp")  # the direct path again
        pkts = final["1"][0] + final["2"][0] + final["2"][2]
        return udp, tcp, cpu, pkts, n, final["1"][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--size", type=int, default=512)
    a = ap.parse_args()
    topo = TpTopology()
    rows = []
    try:
        b = Bench(a, topo)
        for i in range(a.reps):
            du, dt = b.direct()
            pu, pt, cpu, pkts, delivered, counted = b.pinhole()
            rows.append((du, dt, pu, pt, cpu, pkts))
            print("rep %d: direct udp %.0f dgram/s tcp %.0f MB/s | pinhole udp %.0f dgram/s "
                  "tcp %.0f MB/s | engine cpu %.6f s for %d pkts (udp: %d delivered, %d counted)"
                  % (i + 1, du, dt, pu, pt, cpu, pkts, delivered, counted), file=sys.stderr)
    finally:
        topo.close()
    med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
    ratio = lambda p, d: statistics.median(r[p] / r[d] for r in rows)  # noqa: E731
    cpu_per_pkt = statistics.median(r[4] / r[5] * 1e9 for r in rows)
    print("| metric | direct routed | kernel pinhole | ratio | goal |")
    print("|---|---|---|---|---|")
    print("| UDP %d B, datagrams/s | %.0f | %.0f | %.2fx | >= 0.9x |" % (
        a.size, med(0), med(2), ratio(2, 0)))
    print("| TCP bulk, 1 stream, MB/s | %.0f | %.0f | %.2fx | >= 0.9x |" % (
        med(1), med(3), ratio(3, 1)))
    print("| engine process CPU per relayed packet | — | %.1f ns | | ~0 |" % cpu_per_pkt)


if __name__ == "__main__":
    main()
