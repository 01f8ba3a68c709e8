"""The TRANSPARENT topology: two client hosts, a relay, a target and a
control host, each a namespace with veths to the relay, all removed by
close(). Both clients and the target route through the relay (so only the
relay's forward chain stands between them), and the relay forwards.

    client   c0  10.78.1.2 10.78.1.3 fd78:1::2  -- relay rc1 10.78.1.1 fd78:1::1
    client2  c0  10.78.3.2 fd78:3::2            -- relay rc2 10.78.3.1 fd78:3::1
    target   t0  10.78.2.2 fd78:2::2            -- relay rt  10.78.2.1 fd78:2::1
    control  k0  10.78.4.2                      -- relay rk  10.78.4.1
"""

import os
import signal
import subprocess
import time

import netns
import services

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def build_file(*parts):
    """A built file, from $STP_BUILD (a build directory), else the build
    directory of $STPD (BUILD/src/server/stpd, as scripts/test.sh sets it),
    else build/."""
    if os.environ.get("STP_BUILD"):
        dirs = [os.environ["STP_BUILD"]]
    elif os.environ.get("STPD"):
        dirs = [os.path.dirname(os.path.dirname(os.path.dirname(os.environ["STPD"])))]
    else:
        dirs = ["build"]
    for b in dirs:
        p = os.path.join(REPO, b, *parts)
        if os.path.exists(p):
            return p
    return None


class TpTopology:
    C1, C1B, C1_6 = "10.78.1.2", "10.78.1.3", "fd78:1::2"
    R1, R1_6 = "10.78.1.1", "fd78:1::1"
    C2, C2_6 = "10.78.3.2", "fd78:3::2"
    R2 = "10.78.3.1"
    T, T6 = "10.78.2.2", "fd78:2::2"
    RT, RT6 = "10.78.2.1", "fd78:2::1"
    K, RK = "10.78.4.2", "10.78.4.1"

    def __init__(self):
        self.spaces = []
        try:
            self.client = self._ns("c1")
            self.client2 = self._ns("c2")
            self.relay = self._ns("rl")
            self.target = self._ns("tg")
            self.control = self._ns("ct")
            self._link(self.client, "c0", ["10.78.1.2/24", "10.78.1.3/24", "fd78:1::2/64"],
                       "rc1", ["10.78.1.1/24", "fd78:1::1/64"], "10.78.1.1", "fd78:1::1")
            self._link(self.client2, "c0", ["10.78.3.2/24", "fd78:3::2/64"],
                       "rc2", ["10.78.3.1/24", "fd78:3::1/64"], "10.78.3.1", "fd78:3::1")
            self._link(self.target, "t0", ["10.78.2.2/24", "fd78:2::2/64"],
                       "rt", ["10.78.2.1/24", "fd78:2::1/64"], "10.78.2.1", "fd78:2::1")
            self._link(self.control, "k0", ["10.78.4.2/24"], "rk", ["10.78.4.1/24"],
                       "10.78.4.1", None)
            self.relay.sysctl("net.ipv4.ip_forward", 1)
            self.relay.sysctl("net.ipv6.conf.all.forwarding", 1)
        except BaseException:
            self.close()
            raise

    def _ns(self, role):
        ns = netns.Netns(role)
        self.spaces.append(ns)
        return ns

    def _link(self, ns, dev, addrs, rdev, raddrs, gw4, gw6):
        self.relay.ip("link", "add", rdev, "type", "veth", "peer", "name", dev, "netns", ns.name)
        self.relay.ip("link", "set", rdev, "up")
        ns.ip("link", "set", dev, "up")
        for a in addrs:
            ns.ip("addr", "add", a, "dev", dev, *(["nodad"] if ":" in a else []))
        for a in raddrs:
            self.relay.ip("addr", "add", a, "dev", rdev, *(["nodad"] if ":" in a else []))
        ns.ip("route", "add", "default", "via", gw4)
        if gw6:
            ns.ip("-6", "route", "add", "default", "via", gw6)

    def close(self):
        for ns in self.spaces:
            ns.close()
        self.spaces = []


class Relayd:
    """stp-relayd in the relay namespace; args are its listeners etc."""

    def __init__(self, topo, workdir, args, name="relayd"):
        binary = os.environ.get("STP_RELAYD") or build_file("src", "relayd", "stp-relayd")
        assert binary, "no stp-relayd binary (build it or set STP_RELAYD=)"
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "a+")
        self.proc = topo.relay.popen([binary, "-d"] + list(args), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        self.wait_log(": ready")

    def text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, needle, timeout=10.0, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            t = self.text()
            if t.count(needle) >= count:
                return t
            if self.proc.poll() is not None:
                raise AssertionError("stp-relayd exited %d:\n%s" % (self.proc.returncode, t))
            time.sleep(0.05)
        raise AssertionError("%r not in stp-relayd log:\n%s" % (needle, self.text()))

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        rc = services.stop_process(self.proc, 10)
        self.log.close()
        return rc
