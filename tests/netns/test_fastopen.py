"""TCP Fast Open (RFC 7413) between libstp and stpd, with pipelining
(docs/protocol.md 5.11): stpd's listener has it on by default
(listen { tcp-fastopen }), libstp asks for it on its connection to the
proxy. The kernel's counters in each namespace say whether SYNs carried
data: TCPFastOpenActive on the client's side, TCPFastOpenPassive on
stpd's. net.ipv4.tcp_fastopen=3 (client and server) is set in both
namespaces; the machine's own setting is not touched.

    inside (stpify + python) --> stpd 10.77.2.1:1080 (gateway) --> echo 10.77.1.2
"""

import os
import signal
import subprocess

import pytest

import netns


PORT = 7100
CLIENT = r"""
import socket, sys
for i in range(int(sys.argv[2])):
    s = socket.create_connection((sys.argv[1], %d), timeout=10)
    s.sendall(b"ping %%d\n" %% i)
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(100)
        if not chunk:
            break
        got += chunk
    print(got.decode().strip())
    s.close()
""" % PORT


def _build():
    stpd = os.environ.get("STPD") or "build/src/server/stpd"
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(stpd))))


def stpify_bin():
    return os.environ.get("STPIFY") or os.path.join(_build(), "src", "shim", "stpify")


def stp_bin():
    return os.environ.get("STP_BIN") or os.path.join(_build(), "src", "cli", "stp")


def run_stp(topo, times):
    """`stp connect` once per process: no pipelining (nothing known yet),
    but the kernel's Fast Open cookie outlives the process."""
    for i in range(times):
        p = topo.inside.popen([stp_bin(), "--proxy", "socks5://%s:1080" % topo.GW_IN,
                               "connect", topo.OUT_IP, str(PORT)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=dict(os.environ, STP_MUX="0"))
        out, err = p.communicate(b"stp %d\n" % i, timeout=30)
        assert p.returncode == 0 and out == b"stp %d\n" % i, err.decode()


def counters(ns):
    """TcpExt counters of the namespace, by name."""
    lines = [l.split() for l in ns.read("/proc/net/netstat").splitlines()
             if l.startswith("TcpExt:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def run_client(topo, tmp_path, n, **env):
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    e = {k: v for k, v in os.environ.items()
         if k.upper() not in ("STP_PROXY", "ALL_PROXY", "NO_PROXY", "STP_FASTOPEN",
                              "STP_PIPELINING")}
    # per-connection handshakes are what is measured: no multiplexing
    e.update(STP_PROXY="socks5://%s:1080" % topo.GW_IN, STP_DEBUG="1", STP_MUX="0")
    e.update(env)
    p = topo.inside.popen([stpify_bin(), "python3", str(script), topo.OUT_IP, str(n)], env=e,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode()[-3000:]
    assert out.decode().split("\n")[:n] == ["ping %d" % i for i in range(n)]
    return err.decode()


def conf(fastopen):
    return ("listen %s:1080 { tcp-fastopen %s }\nclient pass { from 10.77.2.0/24 }\n"
            "request pass { }\n" % ("10.77.2.1", "on" if fastopen else "off"))


def prepare(topo):
    for ns in (topo.inside, topo.gateway):
        ns.sysctl("net.ipv4.tcp_fastopen", 3)
    return netns.NsTcpServer(topo.outside, topo.OUT_IP, PORT)


@pytest.mark.stpd_module("discovery")
def test_fastopen_and_pipelining(topo, stpd, tmp_path):
    ls = prepare(topo)
    stpd(conf(True))
    try:
        # stpify pipelines (its connections to the proxy are the program's
        # own sockets, without Fast Open); each stp gets SYN + greeting.
        log = run_client(topo, tmp_path, 5)
        run_stp(topo, 3)
    finally:
        ls.close()
    assert "(pipelined)" in log, log
    active = counters(topo.inside).get("TCPFastOpenActive", 0)
    passive = counters(topo.gateway).get("TCPFastOpenPassive", 0)
    assert active >= 2 and passive >= 2, (active, passive)


def test_fastopen_off_on_listener(topo, stpd, tmp_path):
    ls = prepare(topo)
    stpd(conf(False))
    try:
        run_client(topo, tmp_path, 4)
    finally:
        ls.close()
    assert counters(topo.gateway).get("TCPFastOpenPassive", 0) == 0


def test_fastopen_off_in_client(topo, stpd, tmp_path):
    ls = prepare(topo)
    stpd(conf(True))
    try:
        run_client(topo, tmp_path, 4, STP_FASTOPEN="0")
    finally:
        ls.close()
    c = counters(topo.inside)
    assert c.get("TCPFastOpenActive", 0) == 0 and c.get("TCPFastOpenCookieReqd", 0) == 0, c


def reload(s, text, needle):
    """SIGHUP with a new file; waits for the line the reload must log."""
    with open(s.conf_path, "w") as f:
        f.write(text)
    s.proc.send_signal(signal.SIGHUP)
    s.wait_log(needle, timeout=20)


def test_fastopen_follows_reload(topo, stpd, tmp_path):
    """A reload turns a kept listener's tcp-fastopen on and off (the same
    socket: the kernel takes TCP_FASTOPEN on a listening socket): stp's
    SYNs carry data only while the file says on."""
    ls = prepare(topo)
    s = stpd(conf(False))
    try:
        run_stp(topo, 3)
        assert counters(topo.gateway).get("TCPFastOpenPassive", 0) == 0
        reload(s, conf(True), "listening on 10.77.2.1:1080 (10.77.2.1:1080), "
               "tcp-fastopen on by the reload")
        run_stp(topo, 3)  # the first gets a cookie, the others use it
        on = counters(topo.gateway).get("TCPFastOpenPassive", 0)
        assert on >= 2, on
        reload(s, conf(False), "tcp-fastopen off by the reload")
        run_stp(topo, 3)
        assert counters(topo.gateway).get("TCPFastOpenPassive", 0) == on
    finally:
        ls.close()
