"""A root-only Kerberos keytab after the privilege drop (docs/operations.md
"Privilege separation", src/ext/gssapi/gss_keytab.c): stpd started as root
with `user nobody` reads its 0600 root keytab at start, and again through
the broker on SIGHUP, into a MEMORY: keytab its sessions use. The test
rotates the service key (kadmin ktadd: a new kvno, the keytab holds only
the new key): a client with a ticket for the new key is refused until the
reload and authenticates after it. A real MIT KDC on loopback (kdc.py)."""

import os
import shutil
import tempfile

import pytest

import gss_client as G
import kdc as K
import services
import socksraw as S
from rootstpd import Stpd, status

gssapi = pytest.importorskip("gssapi")

pytestmark = [pytest.mark.stpd_module("gssapi"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

CONF = """
user nobody
workers 2
listen 127.0.0.1:%d
auth { methods gssapi; }
gssapi { keytab %s; principal %s; }
client pass { from 127.0.0.0/8 }
request pass
"""


@pytest.fixture
def world(tmp_path, stpd_factory):
    """(the realm with alice's TGT, stpd not started yet, its port)."""
    del stpd_factory  # only its skip against other servers
    realm = K.Kdc(str(tmp_path))
    old = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = realm.krb5_conf  # python-gssapi here
    d = tempfile.mkdtemp(prefix="stpgss")
    os.chmod(d, 0o755)
    w = Stpd(os.environ.get("STPD") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build", "src", "server", "stpd"),
        d, str(tmp_path / "stpd.log"))
    try:
        realm.add_user("alice", "alice-pw")
        realm.kinit("alice", "alice-pw")
        # stpd (nobody) reads krb5.conf and keeps its replay cache here.
        shutil.copy(realm.krb5_conf, os.path.join(d, "krb5.conf"))
        os.chmod(os.path.join(d, "krb5.conf"), 0o644)
        os.mkdir(os.path.join(d, "rc"))
        os.chmod(os.path.join(d, "rc"), 0o1777)
        w.keytab = os.path.join(d, "stpd.keytab")
        w.env = dict(os.environ, KRB5_CONFIG=os.path.join(d, "krb5.conf"),
                     KRB5RCACHEDIR=os.path.join(d, "rc"))
        w.port = services.free_port()
        yield realm, w
    finally:
        rc = w.close()
        realm.close()
        shutil.rmtree(d, ignore_errors=True)
        if old is None:
            os.environ.pop("KRB5_CONFIG", None)
        else:
            os.environ["KRB5_CONFIG"] = old
    assert rc == 0, "stpd exited with %s:\n%s" % (rc, w.text()[-3000:])
    assert not w.sanitizer_report(), w.text()[-6000:]


def new_key(realm, keytab):
    """A new random key for stpd's principal (kvno + 1), alone in keytab,
    root's and 0600."""
    tmp = keytab + ".new"
    if os.path.exists(tmp):
        os.unlink(tmp)
    realm.kadmin("ktadd -k %s %s@%s" % (tmp, K.SERVICE, K.REALM))
    os.chmod(tmp, 0o600)
    os.replace(tmp, keytab)


def authenticate(realm, w, echo):
    """Method X'01' with a fresh service ticket, then a CONNECT to echo at
    level 0; True when it relayed, False when stpd refused the ticket."""
    realm.kinit("alice", "alice-pw")  # a new cache: the ticket is for the current kvno
    g = G.GssSocks(S.dial(w.port), realm.ccache("alice"))
    try:
        try:
            g.handshake(0)
        except (G.Aborted, EOFError, ConnectionError):
            return False
        assert g.connect("127.0.0.1", echo.port) == 0
        g.send(b"keytab\n")
        assert g.recv_exact(7) == b"keytab\n"
        return True
    finally:
        g.s.close()


def test_rotated_root_only_keytab_is_read_through_the_broker(world, echo):
    realm, w = world
    new_key(realm, w.keytab)
    w.write_conf(CONF % (w.port, w.keytab, K.SERVICE))
    text = w.start(env=w.env)
    assert "gssapi: keytab %s read (" % w.keytab in text, text[-3000:]
    assert status(w.proc.pid)["Uid"].split() == ["65534"] * 4
    assert authenticate(realm, w, echo)

    # The administrator rotates the key: stpd keeps the keys it read.
    new_key(realm, w.keytab)
    assert not authenticate(realm, w, echo)
    w.wait_log("GSS-API refused")
    text = w.reload()
    assert "broker: opened %s for a reload" % w.keytab in text, text[-3000:]
    assert text.count("gssapi: keytab %s read (" % w.keytab) == 2, text[-3000:]
    assert authenticate(realm, w, echo)
    assert w.proc.poll() is None


def test_default_keytab_is_copied_at_start(world, echo):
    """No `keytab` key: the sessions use Kerberos's default keytab (here
    KRB5_KTNAME, a root-only file), which stpd's user cannot open. stpd
    copies it at start, as root, like a named one, and a reload keeps that
    copy (the broker opens only what the file names)."""
    realm, w = world
    new_key(realm, w.keytab)
    w.write_conf((CONF % (w.port, "-", K.SERVICE)).replace("keytab -; ", ""))
    env = dict(w.env, KRB5_KTNAME="FILE:" + w.keytab)
    text = w.start(env=env)
    assert "gssapi: Kerberos's default keytab %s read (" % w.keytab in text, text[-3000:]
    assert status(w.proc.pid)["Uid"].split() == ["65534"] * 4
    assert authenticate(realm, w, echo)
    text = w.reload()
    assert "keeping the copy of the default keytab %s read at start" % w.keytab in text, \
        text[-3000:]
    assert authenticate(realm, w, echo)
    assert w.proc.poll() is None
