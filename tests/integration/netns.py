"""Network namespaces for the end-to-end tests: the shared helper in
tests/netns/netns.py, plus what these tests need on top (a skip when
namespaces cannot be made, and a black-hole route for X'06').

Nothing here touches the machine's own interfaces or routes: every link and
address lives inside the namespace and disappears with it.
"""

import importlib.util
import os

import pytest

_spec = importlib.util.spec_from_file_location(
    "netns_base", os.path.join(os.path.dirname(__file__), "..", "netns", "netns.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


class Netns(_base.Netns):
    def __init__(self):
        try:
            super().__init__("it")
        except (RuntimeError, FileNotFoundError) as e:
            pytest.skip("cannot create a network namespace: %s" % e)

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
