"""A real MIT Kerberos KDC for the GSS-API tests (method X'01', RFC 1961),
started by the tests on loopback: its own realm, database, kdc.conf and
krb5.conf in a temp directory (KRB5_CONFIG / KRB5_KDC_PROFILE), principals
made with kadmin.local, a keytab for stpd, and one credential cache per
user. Nothing reads the machine's /etc/krb5.conf."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import services

REALM = "STP.TEST"
SERVICE = "socks/localhost"          # stpd's principal (in the keytab)
OTHER_SERVICE = "other/localhost"    # a service stpd has no key for
MASTER_PW = "master-pw-for-tests"


class Kdc:
    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "kdc")
        os.makedirs(self.dir, exist_ok=True)
        for tool in ("krb5kdc", "kdb5_util", "kadmin.local", "kinit"):
            if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
                pytest.fail("%s missing (scripts/deps.sh installs krb5-kdc, krb5-admin-server, "
                            "krb5-user)" % tool)
        self.port = services.free_port()
        # What every local user may reach on a real host: krb5.conf (like
        # /etc/krb5.conf, 0644) and the replay cache's directory (like
        # /var/tmp), for stpd's workers, which run as nobody. The keytab
        # stays in the private directory, root's: stpd copies it into
        # memory before it drops (src/ext/gssapi/gss_keytab.c).
        self.pub = tempfile.mkdtemp(prefix="stpkrb")
        os.chmod(self.pub, 0o755)
        self.rcache = os.path.join(self.pub, "rcache")
        os.mkdir(self.rcache)
        os.chmod(self.rcache, 0o1777)
        self.krb5_conf = os.path.join(self.pub, "krb5.conf")
        self.kdc_conf = os.path.join(self.dir, "kdc.conf")
        self.keytab = os.path.join(self.dir, "stpd.keytab")
        self.log_path = os.path.join(self.dir, "krb5kdc.log")
        with open(self.krb5_conf, "w") as f:
            f.write("""[libdefaults]
    default_realm = {realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    clockskew = 2
    udp_preference_limit = 1
[realms]
    {realm} = {{
        kdc = 127.0.0.1:{port}
    }}
[domain_realm]
    localhost = {realm}
""".format(realm=REALM, port=self.port))
        with open(self.kdc_conf, "w") as f:
            f.write("""[kdcdefaults]
    kdc_listen = 127.0.0.1:{port}
    kdc_tcp_listen = 127.0.0.1:{port}
[realms]
    {realm} = {{
        database_name = {d}/principal
        key_stash_file = {d}/stash
        acl_file = {d}/kadm5.acl
        max_life = 1h
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }}
[logging]
    kdc = FILE:{log}
""".format(realm=REALM, port=self.port, d=self.dir, log=self.log_path))
        open(os.path.join(self.dir, "kadm5.acl"), "w").close()
        self.env = dict(os.environ, KRB5_CONFIG=self.krb5_conf, KRB5_KDC_PROFILE=self.kdc_conf,
                        KRB5RCACHEDIR=self.rcache, KRB5_TRACE="/dev/null")
        self._run(["kdb5_util", "create", "-s", "-r", REALM, "-P", MASTER_PW])
        self.proc = subprocess.Popen(["krb5kdc", "-n", "-r", REALM], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while not services.tcp_listening(self.port, self.proc.pid):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail("krb5kdc did not start on 127.0.0.1:%d" % self.port)
            time.sleep(0.05)
        self.service_keytab(SERVICE, self.keytab)

    def _run(self, argv, stdin=None):
        r = subprocess.run(argv, env=self.env, input=stdin, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            pytest.fail("%s failed: %s %s" % (" ".join(argv[:3]), r.stdout, r.stderr))
        return r

    def kadmin(self, query):
        return self._run(["kadmin.local", "-r", REALM, "-q", query])

    def add_user(self, name, password, extra=""):
        self.kadmin("addprinc %s -pw %s %s@%s" % (extra, password, name, REALM))

    def service_keytab(self, principal, keytab):
        self.kadmin("addprinc -randkey %s@%s" % (principal, REALM))
        self.kadmin("ktadd -k %s %s@%s" % (keytab, principal, REALM))

    def ccache(self, user):
        return "FILE:" + os.path.join(self.dir, "cc-" + user)

    def kinit(self, user, password, lifetime=None):
        """Gets user's TGT into their own cache; returns the env to use it."""
        argv = ["kinit", "-c", self.ccache(user)]
        if lifetime:
            argv += ["-l", lifetime]
        self._run(argv + ["%s@%s" % (user, REALM)], stdin=password + "\n")
        return self.user_env(user)

    def user_env(self, user):
        return dict(self.env, KRB5CCNAME=self.ccache(user))

    def close(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(getattr(self, "pub", ""), ignore_errors=True)
