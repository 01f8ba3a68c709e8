#!/usr/bin/python3
"""Authentications per second through stpd: method X'01' (GSS-API, RFC 1961,
Kerberos from a keytab) next to X'02' (RFC 1929 against the password file),
in one run, against one stpd that offers both.

Starts its own MIT KDC on loopback (tests/integration/kdc.py: temp realm,
keytab, a user's credential cache), then stpd (2 workers) with

    auth { methods gssapi userpass; users-file F }

and for each method runs P client processes for D seconds, each doing
complete authentications one after the other on fresh connections:

    userpass  05 01 02 / 05 02 / RFC 1929 request / 01 00, close
    gssapi    05 01 01 / 05 01 / AP-REQ (01 01) / AP-REP / level (01 02) x2, close

Prints authentications/s (all clients), the client's p50/p99 latency, and
stpd's CPU time per authentication (utime+stime of the stpd process over
the run / authentications): the server's own cost, which does not depend on
how fast the Python clients are.

Then, with --bulk MB (default 200), the cost of the protection: MB/s of one
`stp connect` upload (stdin -> proxy -> a discarding sink) at each level.

    bench/authrate_gssapi.py [--stpd build/src/server/stpd] [--procs 4] [--secs 5] [--bulk 200]
"""

import argparse
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import kdc as K  # noqa: E402
import services  # noqa: E402


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("closed after %d of %d" % (len(b), n))
        b += d
    return b


def frame(mtyp, tok):
    return bytes([1, mtyp]) + struct.pack(">H", len(tok)) + tok


def read_frame(s):
    h = recv_exact(s, 2)
    if h[1] == 0xFF:
        raise RuntimeError("refused (X'01' X'FF')")
    (n,) = struct.unpack(">H", recv_exact(s, 2))
    return recv_exact(s, n)


def auth_userpass(port, _):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"\x05\x01\x02")
    assert recv_exact(s, 2) == b"\x05\x02"
    u, p = b"bench", b"bench-pw"
    s.sendall(bytes([1, len(u)]) + u + bytes([len(p)]) + p)
    assert recv_exact(s, 2) == b"\x01\x00"
    s.close()


def auth_gssapi(port, creds):
    import gssapi
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"\x05\x01\x01")
    assert recv_exact(s, 2) == b"\x05\x01"
    name = gssapi.Name("socks@localhost", gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=name, creds=creds, usage="initiate",
                                 flags=gssapi.RequirementFlag.mutual_authentication |
                                 gssapi.RequirementFlag.integrity)
    s.sendall(frame(1, ctx.step()))
    ctx.step(read_frame(s))
    assert ctx.complete
    s.sendall(frame(2, ctx.wrap(b"\x01", False).message))
    assert ctx.unwrap(read_frame(s)).message == b"\x01"
    s.close()


def worker(method, port, secs, ccache, krb5_conf, q):
    os.environ["KRB5_CONFIG"] = krb5_conf
    creds = None
    if method == "gssapi":
        import gssapi
        creds = gssapi.Credentials(usage="initiate", store={b"ccache": ccache.encode()})
    fn = auth_gssapi if method == "gssapi" else auth_userpass
    lat = []
    end = time.monotonic() + secs
    while time.monotonic() < end:
        t = time.monotonic()
        fn(port, creds)
        lat.append(time.monotonic() - t)
    q.put(lat)


def cpu_secs(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(method, port, pid, procs, secs, ccache, krb5_conf):
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(method, port, secs, ccache, krb5_conf, q))
          for _ in range(procs)]
    c0 = cpu_secs(pid)
    t0 = time.monotonic()
    for p in ps:
        p.start()
    lat = []
    for _ in ps:
        lat += q.get()
    for p in ps:
        p.join()
    wall = time.monotonic() - t0
    cpu = cpu_secs(pid) - c0
    lat.sort()
    n = len(lat)
    return {"method": method, "auths": n, "rate": n / wall, "p50": lat[n // 2] * 1e3,
            "p99": lat[min(n - 1, int(n * 0.99))] * 1e3, "cpu_us": cpu / n * 1e6}


def sink():
    """A TCP server that reads and discards; returns its port."""
    import threading
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)

    def drain(c):
        while c.recv(1 << 20):
            pass
        c.close()  # our FIN ends stp's connect

    def serve():
        while True:
            c, _ = ls.accept()
            threading.Thread(target=drain, args=(c,), daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    return ls.getsockname()[1]


def bulk(stp, port, realm, mb):
    target = sink()
    rows = []
    data = b"\0" * (1 << 20)
    for level in ("none", "integrity", "confidentiality"):
        url = "socks5+gssapi://127.0.0.1:%d?gss-service=socks@localhost&gss-protection=%s" % (
            port, level)
        t0 = time.monotonic()
        p = subprocess.Popen([stp, "--proxy", url, "connect", "127.0.0.1", str(target)],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             env=realm.user_env("bench"))
        for _ in range(mb):
            p.stdin.write(data)
        p.stdin.close()
        p.wait(120)
        rows.append((level, mb / (time.monotonic() - t0)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stpd", default=os.path.join(HERE, "..", "build", "src", "server", "stpd"))
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--secs", type=float, default=5)
    ap.add_argument("--bulk", type=int, default=200)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="authrate-")
    realm = K.Kdc(work)
    stpd = None
    try:
        realm.add_user("bench", "bench-pw")
        realm.kinit("bench", "bench-pw")
        users = os.path.join(work, "users")
        subprocess.run([a.stpd, "passwd", users, "bench"], input=b"bench-pw\n", check=True,
                       capture_output=True)
        port = services.free_port()
        conf = os.path.join(work, "stpd.conf")
        with open(conf, "w") as f:
            f.write("listen 127.0.0.1:%d\nworkers 2\n"
                    "auth { methods gssapi userpass; users-file %s; }\n"
                    "gssapi { keytab %s; principal %s; }\n"
                    "client pass { from 127.0.0.0/8 }\nrequest pass { }\n"
                    % (port, users, realm.keytab, K.SERVICE))
        log = open(os.path.join(work, "stpd.log"), "wb")
        stpd = subprocess.Popen([a.stpd, "-c", conf], env=realm.env, stdout=log,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not services.tcp_listening(port, stpd.pid):
            if stpd.poll() is not None or time.monotonic() > deadline:
                sys.exit("stpd did not start: see %s" % log.name)
            time.sleep(0.05)
        print("| method | auths | auths/s | p50 ms | p99 ms | stpd CPU per auth (us) |")
        print("|---|---|---|---|---|---|")
        for m in ("userpass", "gssapi"):
            r = run(m, port, stpd.pid, a.procs, a.secs, realm.ccache("bench"), realm.krb5_conf)
            print("| %(method)s | %(auths)d | %(rate).0f | %(p50).2f | %(p99).2f | %(cpu_us).0f |"
                  % r)
        if a.bulk:
            stp = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(a.stpd)))), "src", "cli", "stp")
            print("\n| GSS-API level | upload MB/s (stp connect, %d MB) |" % a.bulk)
            print("|---|---|")
            for level, rate in bulk(stp, port, realm, a.bulk):
                print("| %s | %.0f |" % (level, rate))
    finally:
        if stpd:
            stpd.terminate()
            stpd.wait(20)
        realm.close()


if __name__ == "__main__":
    main()
