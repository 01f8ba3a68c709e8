"""Network namespaces a test creates and removes itself.

Nothing here touches the machine's own interfaces or routes: every link and
address lives inside the namespace and disappears with it.
"""

import ctypes
import itertools
import os
import subprocess
import threading

import pytest

CLONE_NEWNET = 0x40000000
_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args):
    r = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    if r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.decode().strip()))


class Netns:
    def __init__(self):
        self.name = "stpit-%d-%d" % (os.getpid(), next(_counter))
        try:
            _ip("netns", "add", self.name)
        except (RuntimeError, FileNotFoundError) as e:
            pytest.skip("cannot create a network namespace: %s" % e)
        _ip("-n", self.name, "link", "set", "lo", "up")

    def ip(self, *args):
        _ip("-n", self.name, *args)

    def add_blackhole(self, prefix="10.231.0", target_last=66):
        """A veth pair inside the namespace; packets to PREFIX.TARGET leave
        through one end towards a MAC nobody has and are silently dropped
        by the other end. Returns the unanswered address."""
        self.ip("link", "add", "bh0", "type", "veth", "peer", "name", "bh1")
        self.ip("link", "set", "bh0", "up")
        self.ip("link", "set", "bh1", "up")
        self.ip("addr", "add", "%s.1/24" % prefix, "dev", "bh0")
        target = "%s.%d" % (prefix, target_last)
        self.ip("neigh", "add", target, "lladdr", "02:00:00:00:00:01", "dev", "bh0",
                "nud", "permanent")
        return target

    def run(self, fn, *args):
        """Calls fn(*args) on a thread that has entered the namespace;
        sockets it creates stay in the namespace. Returns fn's result or
        raises its exception."""
        box = {}

        def body():
            try:
                fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
                box["v"] = fn(*args)
            except BaseException as e:  # handed to the caller
                box["e"] = e

        t = threading.Thread(target=body, daemon=True)
        t.start()
        t.join(120)
        if t.is_alive():
            raise TimeoutError("netns call did not finish")
        if "e" in box:
            raise box["e"]
        return box["v"]

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10)
