#!/usr/bin/python3
"""SETUP_UDP_TUNNEL (docs/protocol.md 5.10) against the same traffic routed
directly, in the five-namespace topology of tests/netns/tunnel_topo.py.

Each repetition measures one-way UDP datagrams/s delivered from net A to
net B (bench/tp_flood: sendmmsg bursts for SECONDS, the receiver counts
from its first datagram to its last):
  routed  the gateways forward (ip_forward=1 for this run only): the sender
          sends to net B's address;
  dtls    the sender sends to `stp tunnel --local` in net A, which carries
          each datagram through stpd A, DTLS to stpd B, and on to net B;
  tls     the same with --tls (TLS over TCP between the servers).
  openvpn Debian's openvpn between the gateways (TLS mode, p2p, UDP, TUN
          devices, data cipher AES-256-GCM as DTLS 1.2 negotiates here), the
          gateways forwarding between their inside link and tun0.
Prints one Markdown table (medians of --reps, ratios to routed).

    bench/tunnel_bench.py [--build build] [--reps 3] [--seconds 3] [--size 512]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(REPO, "tests", "netns"))  # its netns.py first

from tunnel_topo import TunnelTopology as T  # noqa: E402
from tls_fixtures import Pki  # noqa: E402


def openvpn_run(topo, pki, tmp, measure):
    """One measurement over an OpenVPN p2p tunnel between the gateways."""
    common = ["openvpn", "--dev", "tun0", "--dev-type", "tun", "--proto", "udp",
              "--port", "1194", "--ca", pki.path("ca.pem"), "--data-ciphers", "AES-256-GCM",
              "--verb", "1"]
    ovb = topo.gwb.popen(common + ["--tls-server", "--dh", "none", "--local", T.GB_OUT,
                                   "--remote", T.GA_OUT, "--ifconfig", "10.99.0.2", "10.99.0.1",
                                   "--cert", pki.path("gwb.pem"), "--key", pki.path("gwb.key")],
                         stdout=open(os.path.join(tmp, "ovb.log"), "w"), stderr=subprocess.STDOUT)
    ova = topo.gwa.popen(common + ["--tls-client", "--local", T.GA_OUT, "--remote", T.GB_OUT,
                                   "--ifconfig", "10.99.0.1", "10.99.0.2",
                                   "--cert", pki.path("alice.pem"), "--key", pki.path("alice.key")],
                         stdout=open(os.path.join(tmp, "ova.log"), "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            logs = [open(os.path.join(tmp, n)).read() for n in ("ova.log", "ovb.log")]
            if all("Initialization Sequence Completed" in t for t in logs):
                break
            time.sleep(0.2)
        else:
            sys.exit("openvpn did not come up: %s" % logs)
        topo.gwa.ip("route", "replace", "10.80.4.0/24", "dev", "tun0")
        topo.gwb.ip("route", "replace", "10.80.1.0/24", "dev", "tun0")
        for gw in (topo.gwa, topo.gwb):
            gw.sysctl("net.ipv4.ip_forward", 1)
        return measure()
    finally:
        for gw in (topo.gwa, topo.gwb):
            gw.sysctl("net.ipv4.ip_forward", 0)
        for p in (ova, ovb):
            p.terminate()
            p.wait(15)
        topo.gwa.ip("route", "replace", "10.80.4.0/24", "via", T.T_A)
        topo.gwb.ip("route", "replace", "10.80.1.0/24", "via", T.T_B)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--size", type=int, default=512)
    a = ap.parse_args()
    stpd = os.path.join(REPO, a.build, "src", "server", "stpd")
    stp = os.path.join(REPO, a.build, "src", "cli", "stp")
    flood = os.path.join(REPO, a.build, "bench", "tp_flood")
    tmp = tempfile.mkdtemp(prefix="tunbench-")
    pki = Pki(tmp)
    pki._leaf("gwb", "/CN=gwb", ["-addext", "subjectAltName=IP:%s" % T.GB_OUT,
                                 "-addext", "extendedKeyUsage=serverAuth"], days=30)
    h = subprocess.run(["openssl", "passwd", "-6", "secret"], stdout=subprocess.PIPE,
                       check=True).stdout.decode().strip()
    with open(os.path.join(tmp, "users"), "w") as f:
        f.write("gwa:%s\n" % h)
    with open(os.path.join(tmp, "b.conf"), "w") as f:
        f.write("listen %s:1443 { tls on; }\n" % T.GB_OUT +
                "auth { methods userpass; backend file; users-file %s/users }\n" % tmp +
                "tls { cert %s; key %s; }\n" % (pki.path("gwb.pem"), pki.path("gwb.key")) +
                "tunnel { cert %s; key %s; }\n" % (pki.path("gwb.pem"), pki.path("gwb.key")) +
                "log { level warning }\n"
                "client pass { from 10.80.2.0/24 }\n"
                "request pass { command tunnel-relay; to 10.80.4.0/24 }\n")
    with open(os.path.join(tmp, "a.conf"), "w") as f:
        f.write("listen %s:1080\n" % T.GA_IN +
                "auth { methods none; }\n"
                "log { level warning }\n"
                "tunnel { ca %s }\n" % pki.path("ca.pem") +
                "client pass { from 10.80.1.0/24 }\n"
                "request pass { command tunnel; to %s }\n" % T.GB_OUT)
    topo = T()
    # routes for the routed runs (the gateways forward only then)
    topo.gwa.ip("route", "add", "10.80.4.0/24", "via", T.T_A)
    topo.gwb.ip("route", "add", "10.80.1.0/24", "via", T.T_B)
    topo.transit.ip("route", "add", "10.80.1.0/24", "via", T.GA_OUT)
    topo.transit.ip("route", "add", "10.80.4.0/24", "via", T.GB_OUT)
    procs = []
    results = {"routed": [], "dtls": [], "tls": [], "openvpn": []}
    try:
        for ns, conf in ((topo.gwb, "b.conf"), (topo.gwa, "a.conf")):
            procs.append(ns.popen([stpd, "-c", os.path.join(tmp, conf)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1)

        def one(dst, recv_ns):
            r = recv_ns.popen([flood, "udp-recv", "%s:9000" % T.B, "1500"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            time.sleep(0.3)
            topo.neta.sh(flood, "udp-send", "%s:0" % ("127.0.0.1" if dst.startswith("127.")
                                                      else T.A),
                         dst, str(a.seconds), str(a.size))
            out = r.communicate(timeout=60)[0].decode()
            m = re.search(r"datagrams (\d+) bytes \d+ seconds ([\d.]+)", out)
            return int(m.group(1)) / float(m.group(2)) if m and float(m.group(2)) > 0 else 0.0

        for rep in range(a.reps):
            for gw in (topo.gwa, topo.gwb):
                gw.sysctl("net.ipv4.ip_forward", 1)
            results["routed"].append(one("%s:9000" % T.B, topo.netb))
            for gw in (topo.gwa, topo.gwb):
                gw.sysctl("net.ipv4.ip_forward", 0)
            for mode in ("dtls", "tls"):
                env = dict(os.environ, STP_TUNNEL_PASSWORD="secret")
                c = topo.neta.popen([stp, "--proxy", "socks5://%s:1080" % T.GA_IN, "tunnel",
                                     "--local", "127.0.0.1:5400", "--tunnel-user", "gwa"] +
                                    (["--tls"] if mode == "tls" else []) +
                                    ["%s:1443" % T.GB_OUT, "%s:9000" % T.B],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
                c.stderr.readline()
                results[mode].append(one("127.0.0.1:5400", topo.netb))
                c.terminate()
                c.wait(10)
            results["openvpn"].append(openvpn_run(topo, pki, tmp, lambda: one("%s:9000" % T.B,
                                                                              topo.netb)))
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)
        topo.close()
    base = statistics.median(results["routed"]) or 1
    print("| path | datagrams/s (median of %d, %d-byte, one way) | ratio to routed |" %
          (a.reps, a.size))
    print("|---|---|---|")
    for k in ("routed", "dtls", "tls", "openvpn"):
        m = statistics.median(results[k])
        print("| %s | %.0f | %.2f |" % (k, m, m / base))


if __name__ == "__main__":
    main()
