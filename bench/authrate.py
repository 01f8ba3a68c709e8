#!/usr/bin/python3
"""Authentications per second through stpd, every backend in one run, with
the ratio to the password file (issue 18's "GSS-API, RADIUS and LDAP
against the password file, in one run"):

  file      RFC 1929 against the users file (`stpd passwd`, yescrypt)
  ldap      RFC 1929, slapd over ldap://: search-then-bind + group search
  ldaps     RFC 1929, slapd over ldaps://: bind as the user + memberOf
  radius    RFC 1929, FreeRADIUS, PAP
  radius-chap  the same with CHAP-Password
  gssapi    method X'01' (RFC 1961): Kerberos AP-REQ/AP-REP with mutual
            authentication, then the wrapped protection-level exchange
            (level 1); the KDC is not asked per authentication (the
            client's service ticket is cached)

slapd, freeradius (tests/integration/dirservers.py) and an MIT KDC
(tests/integration/kdc.py) run on loopback ports in a temp dir; one stpd
binary (--stpd), one stpd process per row (the configs differ), 2 workers.
Each RFC 1929 backend runs with the cache off and on (60 s; every client
logs in as the same user, so with the cache on every login after the first
is a cache hit); GSS-API has no cache.

Clients: --clients processes, each doing complete authentications on fresh
connections for --seconds; a failed one fails the run. Columns: rate, ratio
to the password file with the same cache setting, the client's p50, and
stpd's own CPU time (utime+stime, pool threads included) per
authentication, which does not depend on how fast the Python clients are.

At the end the same rates side by side, one column per backend, one row
without the cache and one of cache hits, and the load average before and
after the run (the rates only compare within one run on a shared machine).

--bulk MB (default 0: off) adds what the GSS-API protection costs after the
handshake: MB/s of one `stp connect` upload per level, and stpd's CPU time
per MB (level 0 is spliced: session_drop_filter).

Run as root with Debian's python3 (pytest for the fixtures' imports):
    /usr/bin/python3 bench/authrate.py [--stpd build/src/server/stpd]
        [--seconds 5] [--clients 8] [--only NAME[,NAME]] [--bulk MB] [--stp PATH]
        [--system-cas]
"""

import argparse
import multiprocessing
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import dirservers as D  # noqa: E402
import kdc as K  # noqa: E402
import services  # noqa: E402
import tls_fixtures  # noqa: E402

FILE_USER, FILE_PW = "bench", "bench-Secret-1"
GSS_USER, GSS_PW = "bench", "bench-Krb-1"


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("closed after %d of %d" % (len(b), n))
        b += d
    return b


def login_userpass(port, cred):
    user, pw = cred
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        u, p = user.encode(), pw.encode()
        s.sendall(b"\x05\x01\x02" + bytes([1, len(u)]) + u + bytes([len(p)]) + p)
        return recv_exact(s, 4) == b"\x05\x02\x01\x00"
    except (OSError, EOFError):
        return False
    finally:
        s.close()


def gss_frame(mtyp, tok):
    return bytes([1, mtyp]) + struct.pack(">H", len(tok)) + tok


def gss_read_frame(s):
    h = recv_exact(s, 2)
    if h[1] == 0xFF:
        raise EOFError("refused (X'01' X'FF')")
    (n,) = struct.unpack(">H", recv_exact(s, 2))
    return recv_exact(s, n)


def login_gssapi(port, creds):
    import gssapi
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(b"\x05\x01\x01")
        if recv_exact(s, 2) != b"\x05\x01":
            return False
        name = gssapi.Name("socks@localhost", gssapi.NameType.hostbased_service)
        ctx = gssapi.SecurityContext(name=name, creds=creds, usage="initiate",
                                     flags=gssapi.RequirementFlag.mutual_authentication |
                                     gssapi.RequirementFlag.integrity)
        s.sendall(gss_frame(1, ctx.step()))
        ctx.step(gss_read_frame(s))
        if not ctx.complete:
            return False
        s.sendall(gss_frame(2, ctx.wrap(b"\x01", False).message))
        return ctx.unwrap(gss_read_frame(s)).message == b"\x01"
    except (OSError, EOFError, gssapi.exceptions.GSSError):
        return False
    finally:
        s.close()


def worker(kind, port, cred, secs, env, q):
    os.environ.update(env)
    fn = login_userpass
    if kind == "gssapi":
        import gssapi
        cred = gssapi.Credentials(usage="initiate", store={b"ccache": cred.encode()})
        fn = login_gssapi
    lat, bad = [], 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        t = time.monotonic()
        if fn(port, cred):
            lat.append(time.monotonic() - t)
        else:
            bad += 1
    q.put((lat, bad))


def cpu_secs(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(kind, port, pid, cred, a, env):
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(kind, port, cred, a.seconds, env, q))
          for _ in range(a.clients)]
    c0 = cpu_secs(pid)
    t0 = time.monotonic()
    for p in ps:
        p.start()
    lat, bad = [], 0
    for _ in ps:
        lt, b = q.get()
        lat += lt
        bad += b
    for p in ps:
        p.join()
    wall = time.monotonic() - t0
    cpu = cpu_secs(pid) - c0
    lat.sort()
    n = len(lat)
    return {"n": n, "rate": n / wall, "p50": lat[n // 2] * 1e3 if n else 0.0,
            "cpu_us": cpu / n * 1e6 if n else 0.0, "bad": bad}


def start_stpd(binary, d, name, auth, blocks, env):
    port = services.free_port()
    conf = os.path.join(d, name + ".conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:%d\nworkers 2\n%s\n%s\n"
                "client pass { from 127.0.0.0/8 }\nrequest pass { }\n"
                "log { level notice }\n" % (port, auth, blocks))
    log = open(os.path.join(d, name + ".log"), "ab")
    p = subprocess.Popen([binary, "-c", conf], stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, env=env)
    deadline = time.monotonic() + 15
    while not services.tcp_listening(port, p.pid):
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("stpd %s did not start; see %s" % (name, log.name))
        time.sleep(0.05)
    return p, port


def sink():
    """A TCP server that reads and discards; returns its port."""
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


def bulk(stp, port, pid, realm, mb):
    """(level, MB/s, stpd CPU ms per MB) for each level."""
    target = sink()
    data = b"\0" * (1 << 20)
    rows = []
    for level in ("none", "integrity", "confidentiality"):
        url = "socks5+gssapi://127.0.0.1:%d?gss-service=socks@localhost&gss-protection=%s" % (
            port, level)
        t0, c0 = time.monotonic(), cpu_secs(pid)
        p = subprocess.Popen([stp, "--proxy", url, "connect", "127.0.0.1", str(target)],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             env=realm.user_env(GSS_USER))
        for _ in range(mb):
            p.stdin.write(data)
        p.stdin.close()
        p.wait(120)
        rows.append((level, mb / (time.monotonic() - t0), (cpu_secs(pid) - c0) * 1e3 / mb))
    return rows


def cases(d, slapd, radius, realm, ca, users):
    """(name, kind, auth block, other blocks, credential, has cache)."""
    ldap = ('ldap { uri %s; bind-dn "%s"; bind-password-file %s/ldap-pw; '
            'base "ou=people,%s"; group-base "ou=groups,%s"; '
            'group-filter "(member=%%d)"; }' % (slapd.uri, D.SERVICE_DN, d, D.SUFFIX, D.SUFFIX))
    ldaps = ('ldap { uri %s; ca-file %s; user-dn "uid=%%u,ou=people,%s"; '
             'group-attribute memberOf; }' % (slapd.ldaps_uri, ca, D.SUFFIX))
    rad = ("radius { server 127.0.0.1:%d; secret-file %s/radius-secret; timeout 3; method %%s; }"
           % (radius.port, d))
    lalice = ("lalice", D.LDAP_USERS["lalice"][0])
    ralice = ("ralice", D.RADIUS_USERS["ralice"])
    return [
        ("file", "userpass", "backend file; users-file %s;" % users, "", (FILE_USER, FILE_PW),
         True),
        ("ldap", "userpass", "backend ldap;", ldap, lalice, True),
        ("ldaps", "userpass", "backend ldap;", ldaps, lalice, True),
        ("radius", "userpass", "backend radius;", rad % "pap", ralice, True),
        ("radius-chap", "userpass", "backend radius;", rad % "chap", ralice, True),
        ("gssapi", "gssapi", "", "gssapi { keytab %s; principal %s; }" % (realm.keytab,
                                                                          K.SERVICE),
         realm.ccache(GSS_USER), False),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stpd", default=os.path.join(HERE, "..", "build", "src", "server",
                                                   "stpd"))
    ap.add_argument("--stp", default=os.path.join(HERE, "..", "build", "src", "cli", "stp"),
                    help="the client for --bulk")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--only", help="comma-separated rows: file, ldap, ldaps, radius, "
                    "radius-chap, gssapi (file is always run: it is the reference)")
    ap.add_argument("--bulk", type=int, default=0, help="MB per GSS-API level (0: skip)")
    ap.add_argument("--system-cas", action="store_true",
                    help="ldaps trusts the system CA bundle plus the test CA")
    a = ap.parse_args()
    only = set(a.only.split(",")) | {"file"} if a.only else None
    d = tempfile.mkdtemp(prefix="authrate-")
    pki = tls_fixtures.Pki(os.path.join(d, "pki"))
    slapd = D.Slapd(d, pki)
    radius = D.FreeRadius(d)
    realm = K.Kdc(d)
    procs = []
    failed = []
    try:
        realm.add_user(GSS_USER, GSS_PW)
        realm.kinit(GSS_USER, GSS_PW)
        users = os.path.join(d, "users")
        subprocess.run([a.stpd, "passwd", users, FILE_USER], input=(FILE_PW + "\n").encode(),
                       check=True, capture_output=True)
        with open(os.path.join(d, "ldap-pw"), "w") as f:
            f.write(D.SERVICE_PW + "\n")
        with open(os.path.join(d, "radius-secret"), "w") as f:
            f.write(D.RADIUS_SECRET + "\n")
        load0 = os.getloadavg()
        print("stpd %s, %d client processes x %.0f s per row, load average %.2f %.2f %.2f" % (
            (os.path.realpath(a.stpd), a.clients, a.seconds) + load0))
        side = {}  # (name, cache on) -> auths/s
        print("| backend | cache | auths/s | x file | p50 ms | stpd CPU/auth (us) | errors |")
        print("|---|---|---|---|---|---|---|")
        ref = {}
        ca = pki.path("ca.pem")
        if a.system_cas:
            # A CA file the size of a real deployment's: the system bundle
            # plus the test CA (what ldaps:// parses per TLS context).
            ca = os.path.join(d, "ldaps-ca.pem")
            with open(ca, "w") as out:
                for src in ("/etc/ssl/certs/ca-certificates.crt", pki.path("ca.pem")):
                    with open(src) as f:
                        out.write(f.read())
        for name, kind, auth, blocks, cred, has_cache in cases(d, slapd, radius, realm, ca,
                                                                users):
            if only and name not in only:
                continue
            for cache in ((0, 60) if has_cache else (None,)):
                method = "gssapi" if kind == "gssapi" else "userpass"
                block = "auth { methods %s; %s %s }" % (
                    method, auth, "cache-ttl %d;" % cache if cache is not None else "")
                tag = "%s-%s" % (name, cache)
                p, port = start_stpd(a.stpd, d, tag, block, blocks, realm.env)
                procs.append(p)
                r = measure(kind, port, p.pid, cred, a, {"KRB5_CONFIG": realm.krb5_conf})
                if name == "file":
                    ref[cache] = r["rate"]
                ratio = r["rate"] / ref.get(cache or 0, r["rate"] or 1)
                if a.bulk and kind == "gssapi":
                    bulk_rows = bulk(a.stp, port, p.pid, realm, a.bulk)
                p.terminate()
                p.wait(15)
                print("| %s | %s | %.0f | %.1f | %.2f | %.0f | %d |" % (
                    name, "-" if cache is None else "on" if cache else "off", r["rate"], ratio,
                    r["p50"], r["cpu_us"], r["bad"]), flush=True)
                side[(name, bool(cache))] = r["rate"]
                if r["bad"]:
                    failed.append(name)
                    print("%d failed logins against %s: see %s/%s.log" % (
                        r["bad"], name, d, tag), file=sys.stderr)
        names = [c[0] for c in cases(d, slapd, radius, realm, ca, users)
                 if (c[0], False) in side or (c[0], True) in side]
        print("\nauthentications/s side by side (one run; load average %.2f %.2f %.2f -> "
              "%.2f %.2f %.2f):" % (load0 + os.getloadavg()))
        print("| | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for label, hit in (("no cache", False), ("cache hit", True)):
            print("| %s | " % label + " | ".join(
                "%.0f" % side[(n, hit)] if (n, hit) in side else "-" for n in names) + " |")
        if a.bulk and (not only or "gssapi" in only):
            print("\n| GSS-API level | upload MB/s (stp connect, %d MB) | stpd CPU ms per MB |"
                  % a.bulk)
            print("|---|---|---|")
            for level, mbs, cpu in bulk_rows:
                print("| %s | %.0f | %.2f |" % (level, mbs, cpu))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        slapd.stop()
        radius.stop()
        realm.close()
        if not failed:
            shutil.rmtree(d, ignore_errors=True)
    if failed:
        raise SystemExit("failed logins against %s" % ", ".join(failed))


if __name__ == "__main__":
    main()
