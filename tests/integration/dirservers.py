"""Directory servers started by the tests for stpd's LDAP and RADIUS
backends (docs/config.md "Backends"): an OpenLDAP slapd with its own
slapd.conf and mdb database in a temp dir, on ldap:// and ldaps:// loopback
ports, and a FreeRADIUS with its own raddb copied into a temp dir, on a
loopback port. Both log what they are asked, so tests can count requests.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import services

SUFFIX = "dc=stp,dc=test"
ADMIN_DN = "cn=admin," + SUFFIX
ADMIN_PW = "admin-Secret-1"
# uid -> (password, groups); groups are groupOfNames under ou=groups.
LDAP_USERS = {
    "lalice": ("alice-Ldap-1", ["staff", "web"]),
    "lbob": ("bob-Ldap-2", ["ops"]),
    "lcarol": ("carol-Ldap-3", []),
    "l,tricky": ("tricky-Ldap-4", ["staff"]),  # a DN special character
    # group names a config must quote (rules: group "Domain Admins")
    "ldan": ("dan-Ldap-5", ["Domain Admins", 'R&D "core"']),
}
SERVICE_DN = "cn=stpd,ou=services," + SUFFIX
SERVICE_PW = "service-Secret-5"

RADIUS_SECRET = "radius-Shared-6"
# user -> password (Cleartext-Password: both PAP and CHAP work).
RADIUS_USERS = {"ralice": "alice-Radius-1", "rbob": "bob-Radius-2"}
# user -> reply attributes of the Access-Accept (stpd's radius
# `group-attribute` reads Class and/or Filter-Id as groups).
RADIUS_REPLY = {"ralice": [("Class", "web"), ("Class", "Domain Admins"), ("Filter-Id", "ops")]}


def dn_escape(v):
    """An RDN value escaped as RFC 4514 wants it."""
    return "".join("\\" + c if c in '\\,+"<>;=' else c for c in v)


def need(binary, package):
    if not shutil.which(binary) and not os.path.exists(binary):
        pytest.skip("needs %s (Debian package %s)" % (binary, package))


def _wait_port(proc, port, what, log, udp=False):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s:\n%s" % (what, proc.returncode, log()[-4000:]))
        if (services.udp_bound(port) if udp else services.tcp_listening(port, proc.pid)):
            return
        time.sleep(0.05)
    raise RuntimeError("%s did not listen on %d within 30 s:\n%s" % (what, port, log()[-4000:]))


class _Server:
    def __init__(self, d, name):
        self.dir = d
        self.log_path = os.path.join(d, name + ".log")
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))

    def pause(self):
        """SIGSTOP: the kernel still accepts connections (or takes
        datagrams), nobody answers: a slow, hung server."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        services.stop_process(self.proc, 15)


SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile %(dir)s/slapd.pid
TLSCACertificateFile %(ca)s
TLSCertificateFile %(cert)s
TLSCertificateKeyFile %(key)s
database mdb
maxsize 16777216
suffix "%(suffix)s"
rootdn "%(admin)s"
rootpw %(adminpw)s
directory %(dir)s/db
overlay memberof
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
"""


class Slapd(_Server):
    def __init__(self, d, pki):
        need("/usr/sbin/slapd", "slapd")
        need("ldapadd", "ldap-utils")
        super().__init__(d, "slapd")
        os.makedirs(os.path.join(d, "db"), exist_ok=True)
        self.port = services.free_port()
        self.tls_port = services.free_port()
        conf = os.path.join(d, "slapd.conf")
        with open(conf, "w") as f:
            f.write(SLAPD_CONF % {"dir": d, "ca": pki.path("ca.pem"),
                                  "cert": pki.path("server.pem"),
                                  "key": pki.path("server.key"), "suffix": SUFFIX,
                                  "admin": ADMIN_DN, "adminpw": ADMIN_PW})
        self.uri = "ldap://127.0.0.1:%d" % self.port
        self.ldaps_uri = "ldaps://127.0.0.1:%d" % self.tls_port
        logf = open(self.log_path, "ab")
        # -d stats: one line per operation (BIND, SRCH), in the foreground.
        self.proc = subprocess.Popen(
            ["/usr/sbin/slapd", "-f", conf, "-h", "%s/ %s/" % (self.uri, self.ldaps_uri),
             "-d", "stats"], stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True)
        logf.close()
        _wait_port(self.proc, self.port, "slapd", self.log)
        _wait_port(self.proc, self.tls_port, "slapd", self.log)
        self._load()

    def _load(self):
        ents = ["dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: stp\ndc: stp\n"
                % SUFFIX]
        for ou in ("people", "groups", "services"):
            ents.append("dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n"
                        % (ou, SUFFIX, ou))
        ents.append("dn: %s\nobjectClass: person\nobjectClass: simpleSecurityObject\n"
                    "cn: stpd\nsn: stpd\nuserPassword: %s\n" % (SERVICE_DN, SERVICE_PW))
        groups = {}
        for uid, (pw, gs) in LDAP_USERS.items():
            ents.append("dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\n"
                        "userPassword: %s\n" % (self.user_dn(uid), uid, uid, uid, pw))
            for g in gs:
                groups.setdefault(g, []).append(self.user_dn(uid))
        for g, members in groups.items():
            ents.append("dn: cn=%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: %s\n" % (
                dn_escape(g), SUFFIX, g) + "".join("member: %s\n" % m for m in members))
        r = subprocess.run(["ldapadd", "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PW],
                           input="\n".join(ents).encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("ldapadd failed: %s" % r.stdout.decode(errors="replace"))

    @staticmethod
    def user_dn(uid):
        return "uid=%s,ou=people,%s" % (dn_escape(uid), SUFFIX)

    def binds(self, dn_part):
        """How many BIND requests named a DN containing dn_part (slapd logs
        each request as it arrives, "method=128" for a simple bind)."""
        return self.count(r'BIND dn="[^"]*%s[^"]*" method=' % re.escape(dn_part))


class FreeRadius(_Server):
    def __init__(self, d):
        need("/usr/sbin/freeradius", "freeradius")
        super().__init__(d, "radiusd")
        self.raddb = os.path.join(d, "raddb")
        shutil.copytree("/etc/freeradius/3.0", self.raddb, symlinks=True)
        self.port = services.free_port()
        # Stay root (the temp dir is not the freerad user's) and keep logs,
        # pid file and run dir in the temp dir.
        conf = os.path.join(self.raddb, "radiusd.conf")
        with open(conf) as f:
            text = f.read()
        text = re.sub(r"(?m)^\s*(user|group) = freerad$", "", text)
        text = re.sub(r"(?m)^logdir = .*$", "logdir = %s" % d, text)
        # Answer refusals at once (the default delays them by 1 s).
        text = re.sub(r"(?m)^(\s*)reject_delay = .*$", r"\1reject_delay = 0", text)
        text = re.sub(r"(?m)^run_dir = .*$", "run_dir = %s" % d, text)
        with open(conf, "w") as f:
            f.write(text)
        for sub in ("mods-enabled", "sites-enabled"):
            p = os.path.join(self.raddb, sub)
            for name in os.listdir(p):
                os.unlink(os.path.join(p, name))
        # The least a PAP/CHAP server needs: the files module (users file),
        # pap, chap, and one site listening on our port.
        for m in ("always", "pap", "chap", "files", "expr", "preprocess"):
            os.symlink("../mods-available/" + m, os.path.join(self.raddb, "mods-enabled", m))
        with open(os.path.join(self.raddb, "sites-enabled", "stp"), "w") as f:
            f.write("""server stp {
listen {
	type = auth
	ipaddr = 127.0.0.1
	port = %d
}
authorize {
	preprocess
	chap
	files
	pap
}
authenticate {
	Auth-Type PAP {
		pap
	}
	Auth-Type CHAP {
		chap
	}
}
post-auth {
	ok
}
}
""" % self.port)
        with open(os.path.join(self.raddb, "clients.conf"), "w") as f:
            f.write("client lo {\n\tipaddr = 127.0.0.1\n\tsecret = %s\n"
                    "\trequire_message_authenticator = no\n}\n" % RADIUS_SECRET)
        with open(os.path.join(self.raddb, "mods-config", "files", "authorize"), "w") as f:
            for u, p in RADIUS_USERS.items():
                f.write('%s Cleartext-Password := "%s"\n' % (u, p))
                reply = RADIUS_REPLY.get(u, [])
                if reply:
                    f.write("\t%s\n" % ",\n\t".join('%s += "%s"' % a for a in reply))
        logf = open(self.log_path, "ab")
        # -X: foreground, one line per request ("Received Access-Request").
        self.proc = subprocess.Popen(
            ["/usr/sbin/freeradius", "-X", "-d", self.raddb, "-n", "radiusd"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True)
        logf.close()
        _wait_port(self.proc, self.port, "freeradius", self.log, udp=True)
        deadline = time.monotonic() + 30
        while "Ready to process requests" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("freeradius did not start:\n%s" % self.log()[-4000:])
            time.sleep(0.05)

    def requests(self, user):
        return self.count(r'User-Name = "%s"' % re.escape(user))
