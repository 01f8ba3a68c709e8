"""Debian's haproxy (mode tcp) in front of one or more stpd, for the PROXY
protocol tests (test_proxyproto.py) and the fleet (test_fleet.py).

It listens on a free port of 127.0.0.1 and ::1 and balances round robin
over the servers given, each `server` line carrying the options given
(send-proxy, send-proxy-v2, health checks...). Stopped by close().
"""

import os
import subprocess

import services

CONF = """\
global
    maxconn 400
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
%(defaults)sfrontend fe
    bind 127.0.0.1:%(hport)d
    bind [::1]:%(hport)d
    default_backend be
backend be
    balance roundrobin
%(servers)s"""


class Haproxy:
    def __init__(self, workdir, ports, options="send-proxy-v2", defaults=()):
        """ports: the stpd on 127.0.0.1 behind it; options: the rest of each
        server line; defaults: more lines for the defaults section."""
        self.port = services.free_port()
        conf = os.path.join(workdir, "haproxy-%d.cfg" % self.port)
        servers = "".join("    server s%d 127.0.0.1:%d %s\n" % (i, p, options)
                          for i, p in enumerate(ports))
        with open(conf, "w") as f:
            f.write(CONF % {"hport": self.port, "servers": servers,
                            "defaults": "".join("    %s\n" % d for d in defaults)})
        self.log_path = os.path.join(workdir, "haproxy-%d.log" % self.port)
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        try:
            services.wait_until(lambda: self.proc.poll() is not None
                                or services.tcp_listening(self.port, self.proc.pid), 10,
                                what="haproxy")
        finally:
            if self.proc.poll() is not None:
                self.logf.close()
                raise RuntimeError("haproxy exited: " + open(self.log_path).read())

    def close(self):
        services.stop_process(self.proc, 10)
        self.logf.close()
