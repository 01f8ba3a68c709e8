"""TRANSPARENT's engines through their C interface (tp_engine_ops), driven
by tests/netns/tp_drive: the kernel engine in-process (stpd's table
stpd_tp), and the remote engine (tp_remote.c) talking N2 to stp-relayd
over a Unix socket and over mutual TLS from another namespace, standing in
for another host (seed 003's "different domains")."""

import os
import select
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from test_tp_relayd import (assert_gone, conntrack, nft_table, recv_or_none,  # noqa: E402,F401
                            relayd, tcp_connect, tcp_listen, topo, udp_sock)
from tp_topo import build_file  # noqa: E402


class Drive:
    """tp_drive in a namespace: send(line), expect(word) -> fields."""

    def __init__(self, ns, *args):
        binary = build_file("tests", "netns", "tp_drive")
        assert binary, "no tp_drive (build the tests)"
        self.proc = ns.popen([binary] + list(args), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf = b""
        self.expect("ready")

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def expect(self, word, timeout=10):
        deadline = time.time() + timeout
        while True:
            if b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                f = line.decode().split()
                if word is None:  # any line: all its fields
                    return f
                assert f and f[0] == word, "want %s, got %r (stderr %s)" % (
                    word, line, self.stderr())
                return f[1:]
            left = deadline - time.time()
            r, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not r:
                raise AssertionError("no %r from tp_drive; stderr:\n%s" % (word, self.stderr()))
            d = os.read(self.proc.stdout.fileno(), 4096)
            if not d:
                raise AssertionError("tp_drive exited; stderr:\n%s" % self.stderr())
            self.buf += d

    def open(self, id_, ptcl, src, dst, bnd, fin=1, idle=0):
        self.send("open %d %d %s %s %s %d %d" % (id_, ptcl, src, dst, bnd, fin, idle))
        f = self.expect("opened")
        assert f[0] == str(id_) and f[1] == "0", f
        host, port = f[2].rsplit(":", 1)
        return host.strip("[]"), int(port)

    def counters(self, word, id_):
        self.send("%s %d" % ("close" if word == "closed" else word, id_))
        f = self.expect(word)
        assert f[0] == str(id_)
        return [int(x) for x in f[1:]]

    def stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")

    def quit(self):
        if self.proc.poll() is None:
            self.send("quit")
            self.proc.wait(10)
        return self.proc.returncode


def udp_roundtrip(topo, bnd, src, tport):
    tgt = udp_sock(topo.target, topo.T if ":" not in src[0] else topo.T6, tport)
    cli = udp_sock(topo.client, src[0], src[1])
    cli.sendto(b"hello", bnd)
    data, peer = tgt.recvfrom(100)
    assert data == b"hello"
    tgt.sendto(b"world", peer)
    assert cli.recvfrom(100)[0] == b"world"
    return cli, tgt


def test_kernel_engine_in_process(topo):
    d = Drive(topo.relay, "kernel")
    bnd = d.open(1, 17, "%s:43001" % topo.C1, "%s:7001" % topo.T, "%s:0" % topo.R1)
    cli, tgt = udp_roundtrip(topo, bnd, (topo.C1, 43001), 7001)
    t = topo.relay.sh("nft", "list", "table", "inet", "stpd_tp")
    assert "udp . 10.78.1.2 . 43001 . 10.78.1.1 . %d : goto r" % bnd[1] in t, t
    assert d.counters("counters", 1) == [1, 33, 1, 33]
    assert d.counters("closed", 1) == [1, 33, 1, 33]
    cli.sendto(b"late", bnd)
    assert recv_or_none(tgt) is None
    t = topo.relay.sh("nft", "list", "table", "inet", "stpd_tp")
    assert str(bnd[1]) not in t and "goto r" not in t, t
    # a refusal is synchronous: NULL and errno, no callback
    d.send("open 2 132 %s:1 %s:1 %s:0 0 0" % (topo.C1, topo.T, topo.R1))
    assert d.expect("refused") == ["2", "EPROTONOSUPPORT"]
    d.send("open 3 17 %s:1 [%s]:1 %s:0 0 0" % (topo.C1, topo.T6, topo.R1))
    assert d.expect("refused") == ["3", "EAFNOSUPPORT"]
    assert d.quit() == 0


def test_kernel_engine_fin(topo):
    d = Drive(topo.relay, "kernel")
    lst = tcp_listen(topo.target, topo.T, 8090)
    bnd = d.open(1, 6, "%s:43002" % topo.C1, "%s:8090" % topo.T, "%s:0" % topo.R1, fin=1)
    cli = tcp_connect(topo.client, (topo.C1, 43002), bnd)
    srv, _ = lst.accept()
    srv.close()
    f = d.expect("ended")
    assert f[:2] == ["1", "fin"], f
    cli.close()
    assert d.quit() == 0


@pytest.fixture
def unix_relay(topo, relayd, tmp_path):
    path = str(tmp_path / "relay.sock")
    return relayd("-l", "unix:" + path), path


def test_remote_engine_unix(topo, unix_relay):
    daemon, path = unix_relay
    d = Drive(topo.relay, "remote", "unix:" + path)
    bnd = d.open(1, 17, "%s:43003" % topo.C1, "%s:7002" % topo.T, "%s:0" % topo.R1)
    cli, tgt = udp_roundtrip(topo, bnd, (topo.C1, 43003), 7002)
    d.counters("counters", 1)  # asks; the answer refreshes the cache
    deadline = time.time() + 5
    while d.counters("counters", 1) != [1, 33, 1, 33]:
        assert time.time() < deadline
        time.sleep(0.05)
    assert d.counters("closed", 1) == [1, 33, 1, 33]  # close() waits for CLOSED
    cli.sendto(b"late", bnd)
    assert recv_or_none(tgt) is None
    assert_gone(topo, bnd[1], 43003)
    # refused by the relay: OPENED with the REP
    d.send("open 2 132 %s:1 %s:1 %s:0 0 0" % (topo.C1, topo.T, topo.R1))
    assert d.expect("opened")[:2] == ["2", "9"]
    assert d.quit() == 0
    daemon.wait_log("closed (closed by the control side), 0 relays closed with it")


def test_remote_engine_relay_lost(topo, unix_relay):
    daemon, path = unix_relay
    d = Drive(topo.relay, "remote", "unix:" + path)
    d.open(1, 17, "%s:43004" % topo.C1, "%s:7003" % topo.T, "%s:0" % topo.R1)
    d.open(2, 17, "%s:43005" % topo.C1, "%s:7003" % topo.T, "%s:0" % topo.R1)
    daemon.kill()
    ended = sorted([d.expect("ended")[:2], d.expect("ended")[:2]])
    assert ended == [["1", "relay-lost"], ["2", "relay-lost"]]
    # no relay to connect to: refused at once
    d.send("open 3 17 %s:43006 %s:7003 %s:0 0 0" % (topo.C1, topo.T, topo.R1))
    assert d.expect("refused") == ["3", "ECONNREFUSED"]
    assert d.quit() == 0


def _openssl(d, *args):
    subprocess.run(["openssl"] + list(args), cwd=d, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d, relay_ip):
    """A CA, the relay's certificate for its address, a control side's
    client certificate, and a stranger signed by another CA."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other"):
        _openssl(d, "req", "-x509", *ec, "-days", "2", "-subj", "/CN=%s" % ca,
                 "-keyout", ca + ".key", "-out", ca + ".pem")
    for name, ca, ext in (("relay", "ca", "subjectAltName=IP:%s" % relay_ip),
                          ("control", "ca", "extendedKeyUsage=clientAuth"),
                          ("stranger", "other", "extendedKeyUsage=clientAuth")):
        _openssl(d, "req", "-new", *ec, "-subj", "/CN=" + name, "-keyout", name + ".key",
                 "-out", name + ".csr")
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext + "\n")
        _openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey",
                 ca + ".key", "-CAcreateserial", "-days", "2", "-extfile", name + ".ext",
                 "-out", name + ".pem")
    return lambda n: os.path.join(d, n)


def test_remote_engine_tls_other_host(topo, relayd, tmp_path):
    """stp-relayd in the relay namespace serves N2 over TLS; the control
    side runs in the control namespace and must show a certificate."""
    p = make_pki(str(tmp_path), topo.RK)
    daemon = relayd("-l", "%s:7443" % topo.RK, "--cert", p("relay.pem"), "--key",
                    p("relay.key"), "--ca", p("ca.pem"))
    relay = "%s:7443" % topo.RK
    d = Drive(topo.control, "remote", relay, p("ca.pem"), p("control.pem"), p("control.key"))
    bnd = d.open(1, 17, "%s:43007" % topo.C1, "%s:7004" % topo.T, "%s:0" % topo.R1)
    cli, tgt = udp_roundtrip(topo, bnd, (topo.C1, 43007), 7004)
    assert d.counters("closed", 1) == [1, 33, 1, 33]
    assert_gone(topo, bnd[1], 43007)
    daemon.wait_log("TLS from 10.78.4.2")
    assert d.quit() == 0
    # a certificate from another CA: no N2 connection, the open is refused
    s = Drive(topo.control, "remote", relay, p("ca.pem"), p("stranger.pem"), p("stranger.key"))
    s.send("open 1 17 %s:43008 %s:7004 %s:0 0 0" % (topo.C1, topo.T, topo.R1))
    assert s.expect("refused") == ["1", "ECONNREFUSED"]
    assert s.quit() == 0
    daemon.wait_log("TLS handshake failed")
    # the relay's certificate must name the address dialled
    w = Drive(topo.relay, "remote", "%s:7443" % topo.R1, p("ca.pem"), p("control.pem"),
              p("control.key"))
    w.send("open 1 17 %s:43008 %s:7004 %s:0 0 0" % (topo.C1, topo.T, topo.R1))
    assert w.expect("refused") == ["1", "ECONNREFUSED"]
    assert w.quit() == 0
    assert "goto r" not in nft_table(topo.relay)


def test_kernel_engine_sigkill_then_restart(topo):
    """The in-process engine's crash limit: a killed process leaves its
    pinhole until the next engine resets the table."""
    d = Drive(topo.relay, "kernel")
    bnd = d.open(1, 17, "%s:43009" % topo.C1, "%s:7005" % topo.T, "%s:0" % topo.R1)
    cli, tgt = udp_roundtrip(topo, bnd, (topo.C1, 43009), 7005)
    d.proc.kill()
    d.proc.wait(10)
    assert "goto r" in topo.relay.sh("nft", "list", "table", "inet", "stpd_tp")
    again = Drive(topo.relay, "kernel")
    cli.sendto(b"after restart", bnd)
    assert recv_or_none(tgt) is None
    t = topo.relay.sh("nft", "list", "table", "inet", "stpd_tp")
    assert "goto r" not in t and str(bnd[1]) not in t, t
    # the killed run's translated conntrack entry went with its table
    for line in conntrack(topo.relay, "-p", "udp", "--orig-port-src", "43009").splitlines():
        assert "mark=0 " in line and "src=%s " % topo.T not in line, line
    assert again.quit() == 0
