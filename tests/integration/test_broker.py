"""The privileged broker is part of stpd's core (docs/operations.md
"Privilege separation", src/server/broker*.c): in every build, the
no-extension one too (scripts/test.sh runs this file against it), stpd
started as root with `user nobody` forks the broker before any of its
threads exists, and a reload re-reads a root-only 0600 users file and
binds a port below 1024 through it.

stpd runs in a network namespace the test makes, with an echo server
there on port 7; needs root.
"""

import os
import shutil
import socket
import tempfile
import threading

import pytest

import netns
import socksraw
from rootstpd import Stpd, status

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CAP_DAC_READ_SEARCH = 2
CAP_NET_BIND_SERVICE = 10

CONF = """
user nobody
workers 2
listen 127.0.0.1:80
%s
auth { methods userpass; backend file; users-file %s; }
client pass { from 127.0.0.0/8 }
request pass
"""


def _echo(ns):
    """Echoes every connection on 127.0.0.1:7 in ns; returns the socket."""
    def open_():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 7))
        s.listen(16)
        return s

    def one(c):
        with c:
            c.settimeout(10)
            try:
                while (b := c.recv(4096)):
                    c.sendall(b)
            except OSError:
                pass

    def loop(s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=one, args=(c,), daemon=True).start()

    s = ns.run(open_)
    threading.Thread(target=loop, args=(s,), daemon=True).start()
    return s


def _userpass(ns, port, user, password):
    """RFC 1929 through stpd in ns, then an echo CONNECT (socksraw)."""
    return ns.run(lambda: socksraw.userpass_echo(port, user, password, b"broker\n"))


@pytest.fixture
def world(stpd_path, tmp_path):
    ns = netns.Netns()
    echo = _echo(ns)
    d = tempfile.mkdtemp(prefix="stpbrk")
    os.chmod(d, 0o755)  # the files in it are root's, 0600
    w = Stpd(stpd_path, d, str(tmp_path / "stpd.log"), ns)
    w.users = os.path.join(d, "users")
    yield w
    rc = w.close()
    echo.close()
    ns.close()
    shutil.rmtree(d, ignore_errors=True)
    assert rc == 0, "stpd exited with %s" % rc
    assert not w.sanitizer_report(), w.text()[-6000:]


@pytest.fixture
def stpd_path():
    p = os.environ.get("STPD") or os.path.join(os.path.dirname(__file__), "..", "..", "build",
                                               "src", "server", "stpd")
    if not os.path.exists(p):
        pytest.skip("no stpd binary (set STPD=)")
    return os.path.abspath(p)


def test_reload_reads_root_only_users_file_and_binds_low_port_through_the_broker(world):
    world.passwd(world.users, "alice", "old-secret")
    world.write_conf(CONF % ("", world.users))
    text = world.start()
    pid = world.proc.pid
    broker = world.broker_pid()
    assert "broker: running as nobody with CAP_DAC_READ_SEARCH and CAP_NET_BIND_SERVICE only" \
        in text, text
    st = status(broker)
    assert st["Uid"].split() == ["65534"] * 4
    caps = 1 << CAP_DAC_READ_SEARCH | 1 << CAP_NET_BIND_SERVICE
    assert int(st["CapEff"], 16) == caps and int(st["CapPrm"], 16) == caps, st
    assert st["NoNewPrivs"].strip() == "1"
    # Forked before any thread: every thread of stpd but the main one
    # (authentication lanes, workers) got its id after the broker's pid.
    tids = [int(t) for t in os.listdir("/proc/%d/task" % pid) if int(t) != pid]
    assert len(tids) >= 3, tids
    assert all(t > broker for t in tids), (broker, tids)
    # stpd itself is nobody and reads neither file any more.
    assert status(pid)["Uid"].split() == ["65534"] * 4
    assert _userpass(world.ns, 80, "alice", "old-secret") == (0, b"broker\n")

    # The administrator changes the password and adds port 81.
    world.passwd(world.users, "alice", "new-secret")
    world.write_conf(CONF % ("listen 127.0.0.1:81", world.users))
    text = world.reload()
    assert "broker: opened %s for a reload" % world.conf in text, text[-3000:]
    assert "broker: opened %s for a reload" % world.users in text, text[-3000:]
    assert "broker: bound 127.0.0.1:81 for a reload" in text, text[-3000:]
    assert _userpass(world.ns, 80, "alice", "new-secret") == (0, b"broker\n")
    assert _userpass(world.ns, 80, "alice", "old-secret")[0] != 0
    assert _userpass(world.ns, 81, "alice", "new-secret") == (0, b"broker\n")
    assert world.proc.poll() is None
