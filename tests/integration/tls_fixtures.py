"""Test PKI and helpers for test_tls.py: certificates made with the openssl
command at test time in a temp dir (nothing checked in), and small tools
(stunnel4, tshark) found or skipped cleanly.

Certificates:
  ca            the test CA (trusted by stpd for client certificates and by
                the clients for the server)
  server        CN=stpd-test, SAN IP:127.0.0.1, DNS:localhost
  alice         client certificate, CN=alice, signed by ca
  expired       client certificate, CN=old, signed by ca, expired in 2020
  stranger      client certificate, CN=mallory, self-signed (untrusted)
"""

import os
import shutil
import ssl
import subprocess

import pytest

OPENSSL_CA_CONF = """\
[ ca ]
default_ca = testca
[ testca ]
dir = %(dir)s
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[ anything ]
commonName = supplied
[ client_ext ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
"""


def _run(args, cwd):
    r = subprocess.run(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(args), r.stderr.decode()))


class Pki:
    def __init__(self, d):
        self.dir = d
        os.makedirs(os.path.join(d, "newcerts"), exist_ok=True)
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(d, "ca.cnf"), "w") as f:
            f.write(OPENSSL_CA_CONF % {"dir": d})
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
              "-subj", "/CN=stp test CA", "-keyout", "ca.key", "-out", "ca.pem",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
        self._leaf("server", "/CN=stpd-test",
                   ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-addext", "extendedKeyUsage=serverAuth"], days=30)
        self._leaf("alice", "/CN=alice", [], days=30, ext="client_ext")
        self._leaf("expired", "/CN=old", [], ext="client_ext",
                   start="20200101000000Z", end="20200201000000Z")
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
              "-subj", "/CN=mallory", "-keyout", "stranger.key", "-out", "stranger.pem"], d)

    def _leaf(self, name, subj, addext, days=None, ext=None, start=None, end=None):
        d = self.dir
        _run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subj,
              "-keyout", name + ".key", "-out", name + ".csr"] + addext, d)
        args = ["openssl", "ca", "-batch", "-config", "ca.cnf", "-notext",
                "-in", name + ".csr", "-out", name + ".pem"]
        if days:
            args += ["-days", str(days)]
        if start:
            args += ["-startdate", start, "-enddate", end]
        if ext:
            args += ["-extensions", ext]
        _run(args, d)

    def path(self, name):
        return os.path.join(self.dir, name)

    def client_context(self, cert=None, min_version=ssl.TLSVersion.TLSv1_2,
                       max_version=None):
        """A client context trusting the test CA, optionally with a client
        certificate (name of a leaf above)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.path("ca.pem"))
        ctx.minimum_version = min_version
        if max_version:
            ctx.maximum_version = max_version
        if cert:
            ctx.load_cert_chain(self.path(cert + ".pem"), self.path(cert + ".key"))
        return ctx


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command")
    return Pki(str(tmp_path_factory.mktemp("pki")))


def need(tool, package):
    path = shutil.which(tool) or (os.path.exists("/usr/bin/" + tool) and "/usr/bin/" + tool)
    if not path:
        pytest.skip("needs %s (Debian package %s)" % (tool, package))
    return path
