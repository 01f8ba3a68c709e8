"""The SOCKS server under test: stpd, or microsocks / Dante's danted.

The client-facing tests run against any of them (STP_TEST_SERVER=stpd,
microsocks or danted), so the tests themselves can be checked against known
servers. Tests that need stpd's own behaviour (log lines, rules, config)
call proxy.require("stpd") and skip elsewhere.

Every server runs inside a private mount namespace whose /etc/hosts holds
the test names and whose /etc/resolv.conf points at 127.0.0.1 only: a proxy
that falls back to the system resolver can never query the machine's DNS
server.
"""

import os
import re
import signal
import string
import subprocess
import time

import pytest

import services

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Lines that fail a test whatever it checks: sanitizer reports, and stpd's
# warning that its broker was forked beside another thread (broker.c).
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error", "forked while other threads ran")


def stpd_binary():
    return os.environ.get("STPD") or os.path.join(REPO, "build", "src", "server", "stpd")


_MODULES = {}


def stpd_modules(binary):
    """The modules an stpd binary was built with, from its `-V` line
    "modules: tls core mcast" (meson options ext_tls, ext_mcast)."""
    if binary not in _MODULES:
        out = subprocess.run([binary, "-V"], capture_output=True, text=True,
                             timeout=30).stdout
        line = [l for l in out.splitlines() if l.startswith("modules:")]
        _MODULES[binary] = set(line[0].split()[1:]) if line else set()
    return _MODULES[binary]


def skip_without_module(binary, name):
    """Skips the test when stpd was built without extension `name`; its
    tests are meaningless there (and stpd refuses their configs)."""
    if os.path.exists(binary) and name not in stpd_modules(binary):
        pytest.skip("stpd built without the %s extension (meson -Dext_%s=false)" % (name, name))


def server_kind():
    return os.environ.get("STP_TEST_SERVER", "stpd")


def _isolated(workdir, argv, test_names=True):
    """Wrap argv so it runs with the test /etc/hosts and resolv.conf. The
    wrapper execs, so the pid and the exit status are the server's own.
    test_names=False leaves the test names out of /etc/hosts: stpd must
    find them through its --resolver (the test dnsmasq)."""
    hosts = os.path.join(workdir, "etc-hosts-%s" % ("names" if test_names else "plain"))
    resolv = os.path.join(workdir, "etc-resolv.conf")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
        if test_names:
            f.write(services.hosts_file_text())
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    script = ('mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf '
              '&& shift 2 && exec "$@"')
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
            hosts, resolv] + list(argv)


class Proxy:
    kind = "?"
    caps = frozenset()
    host = "127.0.0.1"

    def __init__(self, workdir, port=None):
        self.workdir = workdir
        self.port = port or services.free_port()
        self.log_path = os.path.join(workdir, "%s-%d.log" % (self.kind, self.port))
        self.proc = None
        self.stopped_rc = None

    # -- capabilities

    def has(self, *caps):
        return all(c in self.caps for c in caps)

    def require(self, *caps):
        missing = [c for c in caps if c not in self.caps]
        if missing:
            pytest.skip("%s lacks %s" % (self.kind, ", ".join(missing)))

    # -- process

    def _spawn(self, argv, env=None, ready_port=None):
        e = dict(os.environ)
        e.update(env or {})
        self.argv = argv
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(_isolated(self.workdir, argv, self.kind != "stpd"), stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=subprocess.STDOUT, env=e,
                                     start_new_session=True)
        port = ready_port or self.port
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s at start:\n%s" % (
                    self.kind, self.proc.returncode, self.log()[-4000:]))
            if services.tcp_listening(port, self.proc.pid):
                return
            time.sleep(0.02)
        raise RuntimeError("%s did not listen on %d within 15 s:\n%s" % (
            self.kind, port, self.log()[-4000:]))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        """SIGTERM, wait; returns the exit status (negative = killed by a
        signal, None = had to be killed after the timeout)."""
        if self.proc is None:
            return None
        if self.stopped_rc is not None:
            return self.stopped_rc
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = None
        self._logf.close()
        self.stopped_rc = rc
        return rc

    # -- log

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """Offset to pass as since= so wait_log only sees later lines."""
        return len(self.log())

    def log_lines(self, pattern, since=0):
        rx = re.compile(pattern)
        return [ln for ln in self.log()[since:].splitlines() if rx.search(ln)]

    def wait_log(self, pattern, timeout=5.0, since=0):
        """The first log line (after offset since) matching the regex, as a
        re.Match; fails the test with the log tail if none appears."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()[since:]
            for ln in text.splitlines():
                m = rx.search(ln)
                if m:
                    return m
            if time.monotonic() > deadline:
                raise AssertionError("no log line matching %r within %.1fs; log tail:\n%s" % (
                    pattern, timeout, text[-3000:]))
            time.sleep(0.05)

    def wait_lines(self, pattern, n, timeout=10.0, since=0):
        """The log lines matching the regex once there are at least n of them.
        A session's line is written when stpd closes it, which can be just
        after the client has seen its last byte; counting right away races."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines(pattern, since)
            if len(lines) >= n or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def sanitizer_report(self):
        text = self.log()
        return [m for m in SANITIZER_MARKS if m in text]


# ---------------------------------------------------------------------------


class Stpd(Proxy):
    kind = "stpd"
    caps = frozenset({"stpd", "socks4", "socks4a", "bind", "udp", "userpass", "ipv6", "domain",
                      "resolver", "logs"})

    def __init__(self, workdir, dns, conf=None, args=(), users=None, resolver=True,
                 listen=True, port=None, env=None, netns=None):
        """conf: config text (string.Template: $port $dns $users $workdir);
        without it, stpd runs from flags (--listen, --resolver, --users).
        netns: run inside that network namespace (ip netns exec)."""
        super().__init__(workdir, port)
        self.dns = dns
        self.binary = stpd_binary()
        if not os.path.exists(self.binary):
            pytest.fail("stpd binary not found at %s (set STPD=)" % self.binary)
        self.users_file = None
        if users:
            self.users_file = os.path.join(workdir, "users-%d" % self.port)
            for u, p in users.items():
                stpd_passwd(self.binary, self.users_file, u, p)
        argv = [self.binary]
        if conf is not None:
            self.conf_path = os.path.join(workdir, "stpd-%d.conf" % self.port)
            self.write_conf(conf)
            argv += ["-c", self.conf_path]
        else:
            self.conf_path = None
            if listen:
                argv += ["--listen", "127.0.0.1:%d" % self.port]
            if resolver:
                argv += ["--resolver", dns.addr]
            if self.users_file:
                argv += ["--users", self.users_file]
        argv += list(args)
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        self._spawn(argv, env)
        self._wait_ready()

    def _wait_ready(self, timeout=30):
        """The port answers before the workers all run (a test that counts
        stpd's fds from here would count a worker still setting up): wait
        for "ready", which follows the last worker's start. A file that
        silences info lines gets no such line; then go on after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            if re.search(r"\bstpd \S+ ready: \d+ workers", self.log()):
                return
            time.sleep(0.01)

    def expand(self, text):
        return string.Template(text).substitute(
            port=self.port, dns=self.dns.addr if self.dns else "127.0.0.1:53",
            users=self.users_file or "", workdir=self.workdir)

    def write_conf(self, text):
        """(Re)writes the config file; SIGHUP makes stpd read it."""
        with open(self.conf_path, "w") as f:
            f.write(self.expand(text))


def stpd_passwd(binary, path, user, password):
    r = subprocess.run([binary, "passwd", path, user], input=(password + "\n").encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("stpd passwd failed (%d): %s" % (
            r.returncode, r.stderr.decode(errors="replace")))
    return r


class Microsocks(Proxy):
    kind = "microsocks"
    caps = frozenset({"userpass", "ipv6", "domain"})

    def __init__(self, workdir, dns, users=None, **kw):
        super().__init__(workdir)
        argv = ["microsocks", "-i", "127.0.0.1", "-p", str(self.port)]
        if users:
            if len(users) != 1:
                pytest.skip("microsocks takes one user only")
            (u, p), = users.items()
            argv += ["-u", u, "-P", p]
        self._spawn(argv)


class Danted(Proxy):
    kind = "danted"
    caps = frozenset({"socks4", "bind", "udp", "ipv6", "domain"})

    def __init__(self, workdir, dns, users=None, **kw):
        super().__init__(workdir)
        if users:
            pytest.skip("danted authenticates system users only")
        conf = os.path.join(workdir, "danted-%d.conf" % self.port)
        with open(conf, "w") as f:
            f.write(DANTED_CONF % {"port": self.port})
        self._spawn(["danted", "-f", conf, "-N", "1",
                     "-p", os.path.join(workdir, "danted-%d.pid" % self.port)])


DANTED_CONF = """\
logoutput: stderr
internal: 127.0.0.1 port = %(port)d
external: 127.0.0.1
external: ::1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
timeout.negotiate: 10
client pass { from: 0/0 to: 0/0 }
socks pass { from: 0/0 to: 0/0 command: bind connect udpassociate bindreply udpreply }
"""

KINDS = {"stpd": Stpd, "microsocks": Microsocks, "danted": Danted}


def start(kind, workdir, dns, conf=None, args=(), **kw):
    if kind != "stpd" and (conf is not None or args):
        pytest.skip("needs stpd configuration (running against %s)" % kind)
    if kind == "stpd":
        return Stpd(workdir, dns, conf=conf, args=args, **kw)
    return KINDS[kind](workdir, dns, **kw)
