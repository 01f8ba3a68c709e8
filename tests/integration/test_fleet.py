"""A fleet: three stpd behind one haproxy (mode tcp, PROXY protocol v2,
health checks that send the PROXY header too), logging users in against one
slapd started by the test. Clients connect to haproxy from 127.0.0.2 and
stpd's client rules admit only that address, so every session that works
proves stpd took the client from the PROXY header (haproxy itself connects
from 127.0.0.1).

One instance is restarted mid-load (SIGTERM, which closes its listener and
gives its sessions `timeouts { drain }`, then a new stpd on the same port):
its sessions end with an error or EOF at the drain's end, never a hang; the
other instances' sessions move every byte (SHA-256 of each); sessions opened
while it is down go to the others; the new instance takes sessions again.
"""

import hashlib
import re
import shutil
import signal
import socket
import threading
import time

import pytest

import dirservers as D
import services
import socksraw as S
from haproxy import Haproxy
from tls_fixtures import pki  # noqa: F401  (pki is a fixture)

USER, PW = "lalice", "alice-Ldap-1"
CLIENT = "127.0.0.2"
DRAIN = 3

STPD_CONF = """\
listen 127.0.0.1:$port { proxy-protocol on; }
resolver $dns
workers 2
timeouts { drain %(drain)d }
auth { methods userpass; backend ldap; }
ldap {
  uri %(uri)s
  timeout 2
  bind-dn "%(sdn)s"
  bind-password-file %(pwfile)s
  base "ou=people,%(suffix)s"
  filter "(uid=%%u)"
}
client pass { from %(client)s/32 }
request pass { to 127.0.0.1/32; port %(ports)s }
"""

# Health checks send the PROXY header too; a refused connection (the
# instance restarting) goes to another server.
SERVER_OPTIONS = "send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 1"
LB_DEFAULTS = ("retries 3", "option redispatch")

SESSION_RX = r"session id=\d+ client=127\.0\.0\.2:(\d+) .*user=%s cmd=connect" % USER


@pytest.fixture(scope="module")
def slapd(tmp_path_factory, pki):  # noqa: F811
    s = D.Slapd(str(tmp_path_factory.mktemp("slapd")), pki)
    yield s
    s.stop()


def open_session(hport, host, port):
    """Login through haproxy from CLIENT and CONNECT; the socket and the
    client's source port (what stpd logs from the PROXY header)."""
    s = S.dial(hport, timeout=20, source=CLIENT)
    try:
        assert S.negotiate(s, (S.M_USERPASS,)) == S.M_USERPASS
        assert S.userpass(s, USER, PW) == 0
        rep = S.request(s, S.CMD_CONNECT, host, port)
        assert rep.rep == 0, rep
        return s, s.getsockname()[1]
    except BaseException:
        s.close()
        raise


def echo_once(hport, echo):
    s, sport = open_session(hport, "127.0.0.1", echo.port)
    try:
        assert S.echo_roundtrip(s, b"fleet %d" % sport) == b"fleet %d" % sport
    finally:
        s.close()
    return sport


class Stream(threading.Thread):
    """Sends CHUNK every PACE s for `seconds`, half-closes and checks the
    sink's SHA-256 of what arrived. outcome: "ok", or "cut" (an error or EOF
    before the digest) with how long after the start it came."""
    CHUNK = 32 * 1024
    PACE = 0.02

    def __init__(self, hport, sink, seconds):
        super().__init__(daemon=True)
        self.s, self.sport = open_session(hport, "127.0.0.1", sink.port)
        self.seconds = seconds
        self.outcome = None
        self.sent = 0

    def run(self):
        h = hashlib.sha256()
        t0 = time.monotonic()
        try:
            i = 0
            while time.monotonic() - t0 < self.seconds:
                block = bytes([i % 251]) * self.CHUNK
                self.s.sendall(block)
                h.update(block)
                self.sent += len(block)
                i += 1
                time.sleep(self.PACE)
            self.s.shutdown(socket.SHUT_WR)
            line = S.recv_all(self.s, 4096).decode()
            if line == "%s %d\n" % (h.hexdigest(), self.sent):
                self.outcome = ("ok", time.monotonic() - t0)
            else:
                self.outcome = ("cut", time.monotonic() - t0, line)
        except OSError as e:
            self.outcome = ("cut", time.monotonic() - t0, repr(e))
        finally:
            self.s.close()


def ports_in(proxy, since=0):
    return {int(m) for ln in proxy.log_lines(SESSION_RX, since)
            for m in re.findall(r"client=127\.0\.0\.2:(\d+)", ln)[:1]}


def wait_sessions(proxies, want, timeout=20):
    """Until the session lines of `want` client ports are all written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = set()
        for p, since in proxies:
            seen |= ports_in(p, since)
        if want <= seen:
            return
        time.sleep(0.1)
    raise AssertionError("session lines missing for ports %s" % sorted(want - seen))


def test_fleet_spread_and_restart(stpd_factory, slapd, echo, tmp_path):
    if not shutil.which("haproxy"):
        pytest.fail("haproxy missing (scripts/deps.sh)")
    sink = services.ShaSink()
    pwfile = tmp_path / "ldap-pw"
    pwfile.write_text(D.SERVICE_PW + "\n")
    conf = STPD_CONF % {"drain": DRAIN, "uri": slapd.uri, "sdn": D.SERVICE_DN,
                        "pwfile": pwfile, "suffix": D.SUFFIX, "client": CLIENT,
                        "ports": "%d %d" % (echo.port, sink.port)}
    fleet = [stpd_factory(conf=conf) for _ in range(3)]
    h = Haproxy(str(tmp_path), [p.port for p in fleet], SERVER_OPTIONS, LB_DEFAULTS)
    try:
        binds0 = slapd.binds("uid=%s,ou=people" % USER)

        # 1. Sessions spread over every instance, each logging the real client.
        ports = {echo_once(h.port, echo) for _ in range(18)}
        wait_sessions([(p, 0) for p in fleet], ports)
        per = [ports_in(p) for p in fleet]
        assert all(len(x) >= 3 for x in per), [len(x) for x in per]
        assert set().union(*per) == ports
        # one directory behind all of them: each instance asked it
        assert slapd.binds("uid=%s,ou=people" % USER) >= binds0 + 3

        # 2. Restart instance 0 while streams run on all three.
        streams = [Stream(h.port, sink, 8.0) for _ in range(9)]
        for st in streams:
            st.start()
        time.sleep(1.5)
        victim = fleet[0]
        mark = victim.log_mark()
        t_stop = time.monotonic()
        victim.signal(signal.SIGTERM)
        victim.wait_log(r"draining \d+ sessions for up to %d s" % DRAIN, timeout=10, since=mark)
        # The workers close their listeners just after that line: a
        # connection haproxy makes before then lands in a backlog and is
        # reset with it (CI ASan stage: EOF before the method reply).
        services.wait_until(lambda: not services.tcp_listening(victim.port, victim.proc.pid), 5,
                            what="the victim's listeners to close")
        # while it drains and is down, new sessions go to the others
        during = {echo_once(h.port, echo) for _ in range(6)}
        assert victim.stop(timeout=DRAIN + 15) == 0
        gone_after = time.monotonic() - t_stop
        assert gone_after < DRAIN + 10, gone_after
        for st in streams:
            st.join(60)
            assert not st.is_alive(), "a stream hung"
        # its replacement on the same port
        again = stpd_factory(conf=conf, port=victim.port)

        on_victim = ports_in(victim, 0)
        cut = {st.sport for st in streams if st.outcome[0] == "cut"}
        ok = {st.sport for st in streams if st.outcome[0] == "ok"}
        stream_ports = {st.sport for st in streams}
        assert cut, [st.outcome for st in streams]
        assert cut <= on_victim, (cut, on_victim)  # only the restarted one's sessions broke
        assert len(ok) >= 6, [st.outcome for st in streams]
        wait_sessions([(p, 0) for p in fleet[1:]], ok)
        assert not (during & on_victim)
        wait_sessions([(p, 0) for p in fleet[1:]], during)
        # the victim ended them at the drain's end, with its reason
        assert len(victim.log_lines(r'result="server shutting down"', mark)) >= len(cut)
        assert (stream_ports & on_victim) == cut

        # 3. The new instance takes sessions again (after haproxy's check).
        since = again.log_mark()
        later = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (later & ports_in(again, since)):
            later |= {echo_once(h.port, echo) for _ in range(3)}
            time.sleep(0.3)
        assert later & ports_in(again, since)
    finally:
        h.close()
        sink.close()


def test_drain_time_and_second_signal(stpd_factory, echo):
    """timeouts { drain } holds an open session after SIGTERM; a second
    SIGTERM closes it at once and stpd exits 0."""
    p = stpd_factory(conf="listen 127.0.0.1:$port\nresolver $dns\ntimeouts { drain 60 }\n"
                          "client pass { from 127.0.0.1/32 }\nrequest pass { }\n")
    s, rep = S.open_connect(p.port, "127.0.0.1", echo.port)
    assert rep.rep == 0
    p.signal(signal.SIGTERM)
    p.wait_log(r"draining 1 sessions for up to 60 s", timeout=10)
    # still relaying during the drain; the listener is closed
    assert S.echo_roundtrip(s, b"draining") == b"draining"
    with pytest.raises(OSError):
        S.dial(p.port, timeout=2)
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    assert p.stop(timeout=10) == 0
    assert time.monotonic() - t0 < 5
    assert p.log_lines(r"signal 15 again: closing 1 sessions now")
    assert p.log_lines(r'session id=\d+ .*cmd=connect .*result="server shutting down"')
    assert S.closed_by_peer(s, timeout=5)
    s.close()
