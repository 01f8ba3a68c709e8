"""Five namespaces for SETUP_UDP_TUNNEL (docs/protocol.md 5.10):

    net A     a0  10.80.1.2/24                      (the application client)
    gw A      gai 10.80.1.1/24  gao 10.80.2.1/24    (stpd A; ip_forward 0)
    transit   ta  10.80.2.2/24  tb  10.80.3.2/24    (a router: the "Internet")
    gw B      gbo 10.80.3.1/24  gbi 10.80.4.1/24    (stpd B; ip_forward 0)
    net B     b0  10.80.4.2/24                      (the application server)

Net A and net B reach each other only through the two stpd. Everything is
removed by close().
"""

from netns import Netns, _addr, _veth


class TunnelTopology:
    A, GA_IN, GA_OUT = "10.80.1.2", "10.80.1.1", "10.80.2.1"
    T_A, T_B = "10.80.2.2", "10.80.3.2"
    GB_OUT, GB_IN, B = "10.80.3.1", "10.80.4.1", "10.80.4.2"

    def __init__(self):
        self.spaces = []
        try:
            self.neta = self._ns("na")
            self.gwa = self._ns("ga")
            self.transit = self._ns("tr")
            self.gwb = self._ns("gb")
            self.netb = self._ns("nb")
            _veth(self.neta, "a0", self.gwa, "gai")
            _veth(self.gwa, "gao", self.transit, "ta")
            _veth(self.transit, "tb", self.gwb, "gbo")
            _veth(self.gwb, "gbi", self.netb, "b0")
            _addr(self.neta, "a0", self.A + "/24")
            _addr(self.gwa, "gai", self.GA_IN + "/24")
            _addr(self.gwa, "gao", self.GA_OUT + "/24")
            _addr(self.transit, "ta", self.T_A + "/24")
            _addr(self.transit, "tb", self.T_B + "/24")
            _addr(self.gwb, "gbo", self.GB_OUT + "/24")
            _addr(self.gwb, "gbi", self.GB_IN + "/24")
            _addr(self.netb, "b0", self.B + "/24")
            self.neta.ip("route", "add", "default", "via", self.GA_IN)
            self.netb.ip("route", "add", "default", "via", self.GB_IN)
            self.gwa.ip("route", "add", "10.80.3.0/24", "via", self.T_A)
            self.gwb.ip("route", "add", "10.80.2.0/24", "via", self.T_B)
            self.transit.sysctl("net.ipv4.ip_forward", 1)
            for gw in (self.gwa, self.gwb):
                gw.sysctl("net.ipv4.ip_forward", 0)
                gw.sysctl("net.ipv6.conf.all.forwarding", 0)
        except BaseException:
            self.close()
            raise

    def _ns(self, role):
        ns = Netns(role)
        self.spaces.append(ns)
        return ns

    def close(self):
        for ns in self.spaces:
            ns.close()
        self.spaces = []
