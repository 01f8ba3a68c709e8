"""The multiplexed connection over plain TCP (stp_mux_open, libstp's
mux.c) follows the pipelining rules of every other libstp handshake
(docs/client.md): two step-by-step handshakes with a proxy, then feature
discovery, then greeting + RFC 1929 + X'30' in one write; and a pipelined
attempt that the proxy cuts turns pipelining off for that proxy.

A recording relay (test_pipelining.Recorder) in front of stpd keeps what
the client sent on each connection before the proxy's first answer.
"""

import os
import subprocess
import sys

import pytest

import socksraw as S
from test_pipelining import Recorder
from test_tlspipe import M_FEATURES, MUX_CLIENT, MUX_REQ, libstp_path

USER, PASSWORD = "alice", "pw-for-alice"
STEP = S.greeting((S.M_USERPASS,))
WHOLE = STEP + S.userpass_msg(USER, PASSWORD) + MUX_REQ


def run(rec, echo, tmp_path, n):
    script = tmp_path / "mux.py"
    script.write_text(MUX_CLIENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STP")}
    env.update(STP_PROXY_LOOPBACK="1", STP_DEBUG="1", STP_AUTOCONF="0")
    url = "socks5://%s:%s@127.0.0.1:%d" % (USER, PASSWORD, rec.port)
    r = subprocess.run([sys.executable, str(script), libstp_path(), url, str(echo.port), str(n)],
                       env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    return r.stdout.decode().split("\n")[:n], r.stderr.decode()


@pytest.mark.stpd_module("mux")
@pytest.mark.stpd_module("discovery")
def test_plain_mux_connection_pipelines_after_discovery(stpd_factory, echo, tmp_path):
    p = stpd_factory(users={USER: PASSWORD})
    rec = Recorder(p.port)
    try:
        lines, log = run(rec, echo, tmp_path, 4)
    finally:
        rec.close()
    assert lines == ["mux %d" % i for i in range(4)], log[-3000:]
    # two step by step, discovery on a connection of its own, then whole
    assert rec.first == [STEP, STEP, S.greeting((M_FEATURES,)), WHOLE, WHOLE], rec.first
    assert len(p.wait_lines(r"session id=\d+ .*user=alice cmd=mux .*rep=\"succeeded\"", 4)) == 4


@pytest.mark.stpd_module("mux")
@pytest.mark.stpd_module("discovery")
def test_plain_mux_connection_stops_pipelining_when_cut(stpd_factory, echo, tmp_path):
    """The relay closes the first pipelined flight before stpd answers it:
    that stp_mux_open fails; the later ones go step by step, and libstp
    says pipelining to that proxy is off."""
    p = stpd_factory(users={USER: PASSWORD})
    rec = Recorder(p.port, sabotage=WHOLE)
    try:
        lines, log = run(rec, echo, tmp_path, 6)
    finally:
        rec.close()
    assert rec.sabotaged == 1, rec.first
    assert lines == ["mux 0", "mux 1", "failed", "mux 3", "mux 4", "mux 5"], (lines, log[-3000:])
    cut_at = rec.first.index(WHOLE)
    assert rec.first[:cut_at] == [STEP, STEP, S.greeting((M_FEATURES,))], rec.first
    assert rec.first[cut_at + 1:] == [STEP] * 3, rec.first
    assert "pipelining to 127.0.0.1:%d off" % rec.port in log, log[-3000:]
