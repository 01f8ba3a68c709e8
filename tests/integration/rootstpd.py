"""stpd started as root with `user nobody` from a directory of root-only
files (0600 in a 0755 directory the test made), for the tests of the
privileged broker (test_broker.py, test_gssapi_privsep.py): its log, SIGHUP
reloads, and /proc status of its threads and of the broker."""

import os
import re
import signal
import subprocess
import time

import services
from servers import SANITIZER_MARKS


def status(pid, tid=None):
    """/proc status of a process (or one of its threads) as a dict."""
    path = "/proc/%d/task/%s/status" % (pid, tid) if tid else "/proc/%d/status" % pid
    with open(path) as f:
        return dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ":\t" in ln)


class Stpd:
    def __init__(self, stpd, conf_dir, log_path, ns=None):
        self.stpd, self.dir, self.log_path, self.ns = stpd, conf_dir, log_path, ns
        self.conf = os.path.join(conf_dir, "stpd.conf")
        self.proc = None

    def write_root_only(self, path, text):
        with open(path + ".new", "w") as f:
            f.write(text)
        os.chmod(path + ".new", 0o600)
        os.replace(path + ".new", path)

    def write_conf(self, text):
        self.write_root_only(self.conf, text)

    def passwd(self, users, user, password):
        r = subprocess.run([self.stpd, "passwd", users, user],
                           input=(password + "\n").encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == 0, r.stderr
        os.chmod(users, 0o600)

    def start(self, env=None):
        """Starts stpd and waits for "ready"; returns its log."""
        self.log = open(self.log_path, "w+")
        argv = [self.stpd, "-c", self.conf]
        kw = dict(stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env)
        # `ip netns exec` execs stpd in place: the pid is stpd's
        self.proc = self.ns.popen(argv, **kw) if self.ns else subprocess.Popen(argv, **kw)
        return self.wait_log("ready")

    def broker_pid(self):
        m = re.search(r"broker started \(pid (\d+)\)", self.text())
        assert m, self.text()[-3000:]
        return int(m.group(1))

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, needle, count=1, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.text()
            if t.count(needle) >= count:
                return t
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("no %r in stpd's log:\n%s" % (needle, self.text()[-3000:]))

    def reload(self):
        """SIGHUP; waits for the reload to be taken, returns the log."""
        n = self.text().count("configuration reloaded")
        self.proc.send_signal(signal.SIGHUP)
        text = self.wait_log("configuration reloaded", n + 1)
        assert "reload refused" not in text, text[-3000:]
        return text

    def sanitizer_report(self):
        text = self.text()
        return [m for m in SANITIZER_MARKS if m in text]

    def close(self):
        """SIGTERM; stpd's exit status (it must be 0, and its log free of
        sanitizer reports: sanitizer_report())."""
        if not self.proc:
            return None
        rc = services.stop_process(self.proc, 15)
        self.log.close()
        return rc
