#!/usr/bin/python3
"""Authentications per second through stpd's RFC 1929 backends, in one run:
the password file (yescrypt), LDAP (slapd: search-then-bind + group search
over ldap://, and bind as the user + memberOf over ldaps://) and RADIUS
(FreeRADIUS, PAP), each with the cache off and on.

slapd and freeradius are started on loopback ports in a temp dir by the
test fixtures (tests/integration/dirservers.py); one stpd per setting.
Clients: --clients threads, each looping connect / greeting / RFC 1929 /
close for --seconds; a login counts when the status is 0 (any other
status is an error and fails the run). Every client logs in as the same
user, so with the cache on each login after the first is a cache hit.

Run as root with Debian's python3 (pytest for the fixtures' imports):
    /usr/bin/python3 bench/authrate.py [--stpd build/src/server/stpd]
        [--seconds 5] [--clients 16]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import dirservers as D  # noqa: E402
import services  # noqa: E402
import tls_fixtures  # noqa: E402

FILE_USER, FILE_PW = "bench", "bench-Secret-1"


def one_login(port, user, pw):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        u, p = user.encode(), pw.encode()
        s.sendall(b"\x05\x01\x02" + bytes([1, len(u)]) + u + bytes([len(p)]) + p)
        got = b""
        while len(got) < 4:
            chunk = s.recv(4 - len(got))
            if not chunk:
                break
            got += chunk
        return got == b"\x05\x02\x01\x00"
    finally:
        s.close()


def rate(port, user, pw, seconds, clients):
    ok, bad = [0], [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run():
        n = m = 0
        while time.monotonic() < stop:
            if one_login(port, user, pw):
                n += 1
            else:
                m += 1
        with lock:
            ok[0] += n
            bad[0] += m

    t0 = time.monotonic()
    ts = [threading.Thread(target=run) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return ok[0] / (time.monotonic() - t0), bad[0]


def start_stpd(binary, d, name, auth, blocks):
    port = services.free_port()
    conf = os.path.join(d, name + ".conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:%d\nworkers 2\n%s\n%s\n"
                "client pass { from 127.0.0.0/8 }\nrequest pass { }\n"
                "log { level notice }\n" % (port, auth, blocks))
    log = open(os.path.join(d, name + ".log"), "ab")
    p = subprocess.Popen([binary, "-c", conf], stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    deadline = time.monotonic() + 15
    while not services.tcp_listening(port, p.pid):
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("stpd %s did not start; see %s" % (name, log.name))
        time.sleep(0.05)
    return p, port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stpd", default=os.path.join(HERE, "..", "build", "src", "server",
                                                   "stpd"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--only", help="one backend: file, ldap, ldaps or radius")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="authrate-")
    pki = tls_fixtures.Pki(os.path.join(d, "pki"))
    slapd = D.Slapd(d, pki)
    radius = D.FreeRadius(d)
    procs = []
    failed = []
    try:
        users = os.path.join(d, "users")
        subprocess.run([a.stpd, "passwd", users, FILE_USER], input=(FILE_PW + "\n").encode(),
                       check=True, capture_output=True)
        with open(os.path.join(d, "ldap-pw"), "w") as f:
            f.write(D.SERVICE_PW + "\n")
        with open(os.path.join(d, "radius-secret"), "w") as f:
            f.write(D.RADIUS_SECRET + "\n")
        ldap = ('ldap { uri %s; bind-dn "%s"; bind-password-file %s/ldap-pw; '
                'base "ou=people,%s"; group-base "ou=groups,%s"; '
                'group-filter "(member=%%d)"; }' % (slapd.uri, D.SERVICE_DN, d, D.SUFFIX,
                                                   D.SUFFIX))
        ldaps = ('ldap { uri %s; ca-file %s; user-dn "uid=%%u,ou=people,%s"; '
                 'group-attribute memberOf; }' % (slapd.ldaps_uri, pki.path("ca.pem"), D.SUFFIX))
        rad = ("radius { server 127.0.0.1:%d; secret-file %s/radius-secret; timeout 3; }"
               % (radius.port, d))
        cases = [
            ("file", "file", "users-file %s;" % users, "", FILE_USER, FILE_PW),
            ("ldap", "ldap", "", ldap, "lalice", D.LDAP_USERS["lalice"][0]),
            ("ldaps", "ldap", "", ldaps, "lalice", D.LDAP_USERS["lalice"][0]),
            ("radius", "radius", "", rad, "ralice", D.RADIUS_USERS["ralice"]),
        ]
        print("| backend | cache | logins/s | errors |")
        print("|---|---|---|---|")
        for name, backend, extra, blocks, user, pw in cases:
            if a.only and name != a.only:
                continue
            for cache in (0, 60):
                auth = "auth { methods userpass; backend %s; %s cache-ttl %d; }" % (
                    backend, extra, cache)
                p, port = start_stpd(a.stpd, d, "%s-%d" % (name, cache), auth, blocks)
                procs.append(p)
                r, bad = rate(port, user, pw, a.seconds, a.clients)
                p.terminate()
                p.wait(15)
                print("| %s | %s | %.0f | %d |" % (name, "on" if cache else "off", r, bad),
                      flush=True)
                if bad:
                    failed.append(name)
                    print("%d failed logins against %s: see %s/%s-%d.log" % (
                        bad, name, d, name, cache), file=sys.stderr)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        slapd.stop()
        radius.stop()
        if not failed:
            shutil.rmtree(d, ignore_errors=True)
    if failed:
        raise SystemExit("failed logins against %s" % ", ".join(failed))


if __name__ == "__main__":
    main()
