"""Privilege separation (issue 19, docs/operations.md "Privilege
separation"): stpd started as root with `user nobody` serves from threads
that are nobody, hold no capability (effective, permitted, bounding), have
NO_NEW_PRIVS and the workers' seccomp filter; a worker that makes a system
call outside the allow-list ends stpd with one log line naming it (exit
status 159), or, with `seccomp off`, the call goes through; the
compartments' broker keeps CAP_SYS_ADMIN (and CAP_DAC_READ_SEARCH) under
its own filter and still makes sockets in a compartment. Without
compartments the broker still runs when stpd drops from root, with
CAP_DAC_READ_SEARCH alone, and opens for a reload the root-only files the
configuration names (users file, TLS certificate and key), and nothing
else, even asked over a channel stolen from stpd.

Each test runs stpd in a namespace it makes, listening on port 80 of the
namespace's loopback (a low port, bound before the drop), and an echo
server on port 7 there. Needs root; the poke helper (tests/netns/
seccomp_poke.so, LD_PRELOADed) is built with the tests.
"""

import ctypes
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

import netns
import services
import socksraw
from tp_topo import build_file

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SYS_TGKILL = 234  # x86_64
EXIT_SECCOMP = 159  # 128 + SIGSYS: src/sandbox/sandbox.h
CAP_SYS_ADMIN = 21
CAP_DAC_READ_SEARCH = 2
CAP_NET_BIND_SERVICE = 10
BROKER_CAPS = 1 << CAP_DAC_READ_SEARCH | 1 << CAP_NET_BIND_SERVICE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _stpd():
    if os.environ.get("STPD"):
        return os.environ["STPD"]
    p = os.path.join(REPO, "build", "src", "server", "stpd")
    if not os.path.exists(p):
        pytest.skip("no stpd binary (set STPD=)")
    return p


def _status(pid, tid=None):
    path = "/proc/%d/task/%s/status" % (pid, tid) if tid else "/proc/%d/status" % pid
    with open(path) as f:
        return dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ":\t" in ln)


def _cap(st, key):
    return int(st[key].strip(), 16)


def echo_server(ns):
    """Echoes every connection on 127.0.0.1:7 inside ns (threads of the test)."""
    return netns.NsTcpServer(ns, "127.0.0.1", 7)


def socks_echo(ns, port=80, payload=b"privsep\n"):
    """A SOCKS5 CONNECT through stpd at 127.0.0.1:port in ns to the echo
    server; returns what came back."""
    def body():
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            s.sendall(b"\x05\x01\x00")
            assert s.recv(2) == b"\x05\x00"
            s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + (7).to_bytes(2, "big"))
            rep = s.recv(10)
            assert rep[:2] == b"\x05\x00", rep
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                b = s.recv(4096)
                if not b:
                    break
                got += b
            return got
        finally:
            s.close()
    return ns.run(body)


class World:
    def __init__(self, tmp):
        self.tmp = tmp
        self.ns = netns.Netns("ps")
        self.echo = echo_server(self.ns)
        self.proc = None
        self.extra_ns = []

    def start(self, conf, env=None, prefix=()):
        # A directory nobody may read: stpd re-reads its file as nobody.
        self.conf_dir = tempfile.mkdtemp(prefix="stpps")
        os.chmod(self.conf_dir, 0o755)
        path = self.conf_path = os.path.join(self.conf_dir, "stpd.conf")
        self.rewrite(conf)
        self.log_path = os.path.join(self.tmp, "stpd.log")
        self.log = open(self.log_path, "w+")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = self.ns.popen(list(prefix) + [_stpd(), "-c", path], stdin=subprocess.DEVNULL,
                                  stdout=self.log, stderr=self.log, env=e)
        self.wait_log("ready")
        return self.proc.pid  # `ip netns exec` execs stpd in place

    def rewrite(self, conf, mode=0o644):
        with open(self.conf_path + ".new", "w") as f:
            f.write(conf)
        os.chmod(self.conf_path + ".new", mode)
        os.replace(self.conf_path + ".new", self.conf_path)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, needle, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.text()
            if needle in t:
                return t
            if self.proc.poll() is not None and needle not in self.text():
                break
            time.sleep(0.05)
        raise AssertionError("no %r in stpd's log:\n%s" % (needle, self.text()[-3000:]))

    def worker_tids(self, pid):
        """Event-loop threads: named like the process, not the main thread."""
        return [int(t) for t in os.listdir("/proc/%d/task" % pid)
                if int(t) != pid and _status(pid, t)["Name"].strip() == "stpd"]

    def close(self):
        if self.proc:
            services.stop_process(self.proc, 15)
            self.log.close()
        self.echo.close()
        self.ns.close()
        for n in self.extra_ns:
            n.close()
        if getattr(self, "conf_dir", None):
            shutil.rmtree(self.conf_dir, ignore_errors=True)


@pytest.fixture
def world(tmp_path):
    w = World(str(tmp_path))
    yield w
    w.close()


CONF = """
user nobody
workers 2
listen 127.0.0.1:80
client pass { from 127.0.0.0/8 }
request pass
%s
"""


def test_workers_are_nobody_without_capabilities_under_seccomp(world):
    pid = world.start(CONF % "")
    text = world.wait_log("seccomp: workers' filter installed")
    assert "running as nobody" in text
    # Port 80 was bound before the drop and serves after it.
    assert socks_echo(world.ns) == b"privsep\n"
    tasks = os.listdir("/proc/%d/task" % pid)
    assert len(world.worker_tids(pid)) >= 2, tasks
    for tid in tasks:
        st = _status(pid, tid)
        name = st["Name"].strip()
        assert st["Uid"].split() == ["65534"] * 4, (tid, name, st["Uid"])
        assert st["Gid"].split() == ["65534"] * 4, (tid, name, st["Gid"])
        for key in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
            assert _cap(st, key) == 0, (tid, name, key, st[key])
        assert st["NoNewPrivs"].strip() == "1", (tid, name)
        assert st["Seccomp"].strip() == "2", (tid, name)
    # A reload keeps the filter working: the main thread re-reads the file.
    world.proc.send_signal(signal.SIGHUP)
    world.wait_log("configuration reloaded")
    assert socks_echo(world.ns, payload=b"after reload\n") == b"after reload\n"


def _poke(pid, tid):
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(SYS_TGKILL, pid, tid, signal.SIGUSR2) == 0, ctypes.get_errno()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="tgkill number is x86_64's")
def test_forbidden_system_call_in_a_worker_stops_stpd_with_a_line(world):
    poke = build_file("tests", "netns", "seccomp_poke.so")
    assert poke, "no tests/netns/seccomp_poke.so (build the tests)"
    # ASan wants to come first among the libraries; the helper is harmless.
    env = {"LD_PRELOAD": poke, "ASAN_OPTIONS": "verify_asan_link_order=0:detect_leaks=0"}
    pid = world.start(CONF % "", env)
    assert socks_echo(world.ns) == b"privsep\n"
    tid = world.worker_tids(pid)[0]
    _poke(pid, tid)
    rc = world.proc.wait(15)
    assert rc == EXIT_SECCOMP, (rc, world.text()[-2000:])
    line = "stpd: seccomp: forbidden system call unshare (272) in thread %d" % tid
    assert line in world.text()
    assert "poke: unshare returned" not in world.text()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="tgkill number is x86_64's")
def test_seccomp_off_lets_the_call_through(world):
    poke = build_file("tests", "netns", "seccomp_poke.so")
    assert poke, "no tests/netns/seccomp_poke.so (build the tests)"
    env = {"LD_PRELOAD": poke, "ASAN_OPTIONS": "verify_asan_link_order=0"}
    pid = world.start(CONF % "seccomp off", env)
    world.wait_log("seccomp: no filter (seccomp off)")
    for tid in os.listdir("/proc/%d/task" % pid):
        assert _status(pid, tid)["Seccomp"].strip() == "0"
    tid = world.worker_tids(pid)[0]
    _poke(pid, tid)
    world.wait_log("poke: unshare returned 0 in thread %d" % tid)
    assert world.proc.poll() is None
    assert socks_echo(world.ns) == b"privsep\n"


def test_broker_keeps_sys_admin_alone_under_its_filter(world):
    other = netns.Netns("psc")
    world.extra_ns.append(other)
    echo = echo_server(other)
    try:
        conf = CONF % ("compartments { compartment c1 netns %s }\n"
                       "listen 127.0.0.1:1080 { name c1-l; compartment c1 }\n" % other.name)
        pid = world.start(conf)
        text = world.wait_log("broker: seccomp filter installed")
        broker = int(re.search(r"broker started \(pid (\d+)\)", text).group(1))
        st = _status(broker)
        # uid nobody like stpd (`user nobody`), CAP_SYS_ADMIN alone.
        assert st["Uid"].split() == ["65534"] * 4
        assert st["Gid"].split() == ["65534"] * 4
        assert ("broker: running as nobody with CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH and "
                "CAP_NET_BIND_SERVICE only" in text)
        for key in ("CapEff", "CapPrm"):
            assert _cap(st, key) == (1 << CAP_SYS_ADMIN | BROKER_CAPS), (key, st[key])
        # stpd emptied the bounding set before forking it (user nobody).
        assert _cap(st, "CapBnd") == 0
        assert st["NoNewPrivs"].strip() == "1"
        assert st["Seccomp"].strip() == "2"
        # A session arriving in c1 goes out in c1: a socket the broker made
        # there (setns under its filter) carries the bytes.
        assert socks_echo(other, port=1080, payload=b"via broker\n") == b"via broker\n"
        assert _status(pid)["Seccomp"].strip() == "2"
        # The broker re-reads the file under its filter on reload.
        world.proc.send_signal(signal.SIGHUP)
        world.wait_log("broker: policy reloaded")
        assert socks_echo(other, port=1080, payload=b"again\n") == b"again\n"
        assert _status(broker)["Seccomp"].strip() == "2"
    finally:
        echo.close()


def _stpd_passwd(path, user, password):
    r = subprocess.run([_stpd(), "passwd", path, user], input=(password + "\n").encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 0, r.stderr
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)


def socks_userpass(ns, user, password, port=80):
    """RFC 1929 through stpd in ns, then an echo CONNECT (socksraw)."""
    return ns.run(lambda: socksraw.userpass_echo(port, user, password, b"pw\n"))


def _reload(world):
    n = world.text().count("configuration reloaded")
    world.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while world.text().count("configuration reloaded") <= n:
        assert time.monotonic() < deadline, world.text()[-3000:]
        assert "reload refused" not in world.text(), world.text()[-3000:]
        time.sleep(0.05)


def _private_dir():
    d = tempfile.mkdtemp(prefix="stppsk")
    os.chmod(d, 0o755)  # the files in it are 0600 root
    return d


def test_root_only_users_file_is_reread_through_the_broker(world):
    d = _private_dir()
    try:
        users = os.path.join(d, "users")
        _stpd_passwd(users, "alice", "old-secret")
        conf = CONF.replace("client pass { from 127.0.0.0/8 }",
                            "auth { methods userpass; backend file; users-file %s; }\n"
                            "client pass { from 127.0.0.0/8 }" % users)
        world.start(conf % "")
        text = world.wait_log("broker: seccomp filter installed")
        broker = int(re.search(r"broker started \(pid (\d+)\)", text).group(1))
        # No compartments: no CAP_SYS_ADMIN for the broker.
        assert ("broker: running as nobody with CAP_DAC_READ_SEARCH and CAP_NET_BIND_SERVICE "
                "only" in text)
        st = _status(broker)
        assert st["Uid"].split() == ["65534"] * 4
        for key in ("CapEff", "CapPrm"):
            assert _cap(st, key) == BROKER_CAPS, (key, st[key])
        assert _cap(st, "CapBnd") == 0 and st["Seccomp"].strip() == "2"
        assert socks_userpass(world.ns, "alice", "old-secret") == (0, b"pw\n")
        # The administrator changes the password; stpd (nobody) cannot read
        # the file, the broker opens it for the reload.
        _stpd_passwd(users, "alice", "new-secret")
        _reload(world)
        assert "broker: opened %s for a reload" % users in world.text()
        assert socks_userpass(world.ns, "alice", "new-secret") == (0, b"pw\n")
        assert socks_userpass(world.ns, "alice", "old-secret")[0] != 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _self_signed(d, name, cn):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=" + cn, "-keyout", os.path.join(d, name + ".key"),
                    "-out", os.path.join(d, name + ".pem")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def _install(src, dst):
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.chown(tmp, 0, 0)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dst)


def _server_cert_der(ns, port):
    def body():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with ctx.wrap_socket(raw) as s:
            return s.getpeercert(binary_form=True)
    return ns.run(body)


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_root_only_tls_key_is_rotated_through_the_broker(world):
    gen, d = tempfile.mkdtemp(prefix="stppsg"), _private_dir()
    try:
        _self_signed(gen, "one", "stpd-one")
        _self_signed(gen, "two", "stpd-two")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        _install(os.path.join(gen, "one.pem"), cert)
        _install(os.path.join(gen, "one.key"), key)
        world.start(CONF % ("listen 127.0.0.1:443 { name tlsl; tls on; }\n"
                            "tls { cert %s; key %s; }\n" % (cert, key)))
        der = lambda n: ssl.PEM_cert_to_DER_cert(open(os.path.join(gen, n + ".pem")).read())
        assert _server_cert_der(world.ns, 443) == der("one")
        _install(os.path.join(gen, "two.pem"), cert)
        _install(os.path.join(gen, "two.key"), key)
        _reload(world)
        assert _server_cert_der(world.ns, 443) == der("two")
        assert "broker: opened %s for a reload" % key in world.text()
        assert socks_echo(world.ns, payload=b"still\n") == b"still\n"
    finally:
        shutil.rmtree(gen, ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)


def test_reload_adds_a_low_port_listener_bound_by_the_broker(world):
    world.start(CONF % "")
    world.wait_log("broker: seccomp filter installed")
    assert socks_echo(world.ns) == b"privsep\n"
    # stpd is nobody now: port 81 (and 8081) are bound for it on reload,
    # and the file itself, now root's 0600, is opened by the broker.
    world.rewrite(CONF.replace("listen 127.0.0.1:80",
                               "listen 127.0.0.1:80\nlisten 127.0.0.1:81\n"
                               "listen 127.0.0.1:8081") % "", mode=0o600)
    _reload(world)
    text = world.text()
    assert "broker: opened %s for a reload" % world.conf_path in text
    assert "broker: bound 127.0.0.1:81 for a reload" in text, text
    assert "listening on 127.0.0.1:81" in text and "added by the reload" in text
    assert "broker: bound 127.0.0.1:8081" not in text  # nobody may bind that one
    for _ in range(4):  # every worker took its socket
        assert socks_echo(world.ns, port=81, payload=b"low\n") == b"low\n"
        assert socks_echo(world.ns, port=8081, payload=b"high\n") == b"high\n"
    assert socks_echo(world.ns, payload=b"old\n") == b"old\n"
    # A second reload drops them: every worker closes its sockets before
    # "configuration reloaded"; port 80 (bound as root at start) stays.
    world.rewrite(CONF % "")
    _reload(world)
    text = world.text()
    assert "stopped listening on 127.0.0.1:81 (127.0.0.1:81): removed by the reload" in text
    for port in (81, 8081):
        for _ in range(4):
            assert _refused(world.ns, port)
    assert socks_echo(world.ns, payload=b"kept\n") == b"kept\n"


def _refused(ns, port):
    """True when a connect to 127.0.0.1:port in ns is refused."""
    def body():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        except ConnectionRefusedError:
            return True
        return False
    return ns.run(body)


def test_broker_opens_only_files_its_configuration_names(world):
    from test_compartments import _broker_call, _steal_channels
    d = _private_dir()
    try:
        users = os.path.join(d, "users")
        _stpd_passwd(users, "alice", "secret")
        other = os.path.join(d, "other")
        shutil.copyfile(users, other)
        os.chmod(other, 0o600)
        conf = CONF.replace("client pass { from 127.0.0.0/8 }",
                            "auth { methods userpass; backend file; users-file %s; }\n"
                            "client pass { from 127.0.0.0/8 }" % users)
        pid = world.start(conf % "")
        world.wait_log("broker: seccomp filter installed")
        chans = _steal_channels(pid)
        assert len(chans) == 3, chans  # two workers' and the main thread's

        def ask(ch, path):
            p = path.encode()
            ch.settimeout(5)
            msg, fds = _broker_call(ch, bytes([1, 3, len(p) >> 8, len(p) & 255]) + p)
            got = None
            for fd in fds:
                with os.fdopen(fd, "rb") as f:
                    got = f.read()
            return msg, got

        refused = (bytes([1, 1, 0, 0]), None)
        # LISTEN: port 81 is not a listen address of the configuration.
        for ch in chans:
            got = _broker_call(ch, bytes([1, 4, 4, 0, 81, 127, 0, 0, 1, 0]))
            assert got == (bytes([1, 1, 0, 0]), []), got
        for ch in chans:
            # Not in the configuration: refused on every channel, whoever asks.
            assert ask(ch, "/etc/shadow") == refused
            assert ask(ch, other) == refused
            assert ask(ch, "/proc/self/../self/environ") == refused
        # The users file: only over the main thread's channel (reloads).
        answers = [ask(ch, users) for ch in chans]
        content = open(users, "rb").read()
        assert answers.count(refused) == 2, answers
        assert (bytes([1, 0, 0, 0]), content) in answers
        # Garbage is answered BAD.
        chans[0].send(b"\x01\x03\x00\x05rel/x")
        assert chans[0].recv(16) == bytes([1, 3, 0, 0])
        for c in chans:
            c.close()
        world.wait_log("broker: refused to open /etc/shadow (not named in the configuration)")
        world.wait_log("broker: refused to bind 127.0.0.1:81 (not a listen address")
        assert socks_userpass(world.ns, "alice", "secret") == (0, b"pw\n")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _default_account():
    """The account stpd drops to without `user` (CONF_USER_DEFAULTS in
    src/policy/conf.h): stpd when it exists, else nobody."""
    import pwd
    for name in ("stpd", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("neither stpd nor nobody exists")


def test_started_as_root_without_user_drops_to_the_default(world):
    pw = _default_account()
    pid = world.start(CONF.replace("user nobody\n", "") % "")
    text = world.wait_log("seccomp: workers' filter installed")
    why = ("the account made for stpd" if pw.pw_name == "stpd"
           else "there is no account stpd")
    assert re.search(r"info: running as %s: the default without `user`, %s \(`user root` "
                     r"keeps root\)" % (pw.pw_name, why), text), text
    assert "warning" not in text, text
    assert socks_echo(world.ns) == b"privsep\n"
    ids = [str(pw.pw_uid)] * 4
    for tid in os.listdir("/proc/%d/task" % pid):
        st = _status(pid, tid)
        assert st["Uid"].split() == ids, (tid, st["Uid"])
        assert st["Gid"].split() == [str(pw.pw_gid)] * 4, (tid, st["Gid"])
        for key in ("CapEff", "CapPrm", "CapBnd"):
            assert _cap(st, key) == 0, (tid, key, st[key])
    # The broker is there, as that account, with its two capabilities.
    broker = int(re.search(r"broker started \(pid (\d+)\)", text).group(1))
    st = _status(broker)
    assert st["Uid"].split() == ids
    assert _cap(st, "CapEff") == BROKER_CAPS and _cap(st, "CapBnd") == 0
    assert "broker: running as %s with CAP_DAC_READ_SEARCH and CAP_NET_BIND_SERVICE only" \
        % pw.pw_name in text


def test_user_root_keeps_root_with_a_warning(world):
    pid = world.start(CONF.replace("user nobody", "user root") % "")
    text = world.wait_log("ready")
    assert ("warning: running as root (`user root`): every thread keeps every capability, "
            "without privilege separation") in text, text
    assert "running as nobody" not in text and "broker started" not in text, text
    assert socks_echo(world.ns) == b"privsep\n"
    for tid in os.listdir("/proc/%d/task" % pid):
        st = _status(pid, tid)
        assert st["Uid"].split() == ["0"] * 4, (tid, st["Uid"])
        # Root keeps its capabilities (only the bounding set of this test's
        # shell limits them).
        assert _cap(st, "CapEff") & (1 << CAP_NET_BIND_SERVICE), (tid, st["CapEff"])


def test_unknown_user_stops_stpd(world):
    conf = CONF.replace("user nobody", "user no-such-account-here") % ""
    world.conf_dir = tempfile.mkdtemp(prefix="stpps")
    world.conf_path = os.path.join(world.conf_dir, "stpd.conf")
    world.rewrite(conf)
    p = world.ns.popen([_stpd(), "-c", world.conf_path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.communicate(timeout=20)[0].decode()
    assert p.returncode != 0 and "user no-such-account-here: no such user" in out, out


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_not_started_as_root_stays_as_started(world):
    """Started as nobody (a unit with User=): no drop, no line about it, no
    broker; a `user` naming another account cannot be reached and stops
    stpd."""
    conf = CONF.replace("user nobody\n", "").replace(":80", ":1080") % ""
    pid = world.start(conf, prefix=AS_NOBODY)
    text = world.wait_log("ready")
    assert "running as" not in text and "broker started" not in text, text
    assert socks_echo(world.ns, port=1080) == b"privsep\n"
    for tid in os.listdir("/proc/%d/task" % pid):
        assert _status(pid, tid)["Uid"].split() == ["65534"] * 4
    world.proc.terminate()
    world.proc.wait(15)
    world.rewrite("user daemon\n" + conf)
    p = world.ns.popen(AS_NOBODY + [_stpd(), "-c", world.conf_path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.communicate(timeout=20)[0].decode()
    assert p.returncode != 0, out
    assert "user daemon: stpd was started as uid 65534, not root, and cannot become it" in out
