"""Multiplexing (docs/protocol.md 5.11): CMD X'30' switches the SOCKS
connection to HTTP/2 and every CONNECT stream is a flow. The client is
python3-h2, an HTTP/2 implementation independent of nghttp2 (stpd's)."""

import os
import re
import socket
import struct
import threading
import time

import h2.config
import h2.errors
import h2.connection
import h2.events
import h2.exceptions
import hpack
import h2.settings
import pytest

import services
import stpdconf
from tls_fixtures import pki  # noqa: F401  (pki is a fixture)

pytestmark = pytest.mark.stpd_module("mux")


def flood_server(total):
    """A target that sends `total` bytes to whoever connects."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)

    def run():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                c.sendall(b"x" * total)
            except OSError:
                pass
            c.close()
    threading.Thread(target=run, daemon=True).start()
    return ls


class Mux:
    def __init__(self, port, context=None):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        if context:  # a 'tls on' listener: SOCKS and HTTP/2 inside TLS
            self.s = context.wrap_socket(self.s, server_hostname="localhost")
        self.s.sendall(b"\x05\x01\x00" + b"\x05\x30\x00\x01\x00\x00\x00\x00\x00\x00")
        assert self._recv_exact(2) == b"\x05\x00"
        rep = self._recv_exact(10)
        self.rep = rep[1]
        if self.rep != 0:
            return
        self.h = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False))
        self.h.initiate_connection()
        self.flush()
        self.data, self.ended, self.status, self.reset = {}, set(), {}, {}
        self.goaway = None
        self.stalled = set()
        self.pending = {}  # stream -> [bytes still to send, end_stream]

    def _recv_exact(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            assert c, "stpd closed"
            b += c
        return b

    def send_pending(self):
        """Sends queued bodies as far as the windows allow (h2 refuses
        more, as a real client must)."""
        for sid, pe in list(self.pending.items()):
            while pe[0]:
                room = min(self.h.local_flow_control_window(sid),
                           self.h.max_outbound_frame_size)
                if room <= 0:
                    break
                chunk, pe[0] = pe[0][:room], pe[0][room:]
                self.h.send_data(sid, chunk)
            if not pe[0]:
                if pe[1]:
                    self.h.end_stream(sid)
                del self.pending[sid]

    def flush(self):
        out = self.h.data_to_send()
        if out:
            self.s.sendall(out)

    def connect(self, authority, body=b"", end=True):
        sid = self.h.get_next_available_stream_id()
        self.h.send_headers(sid, [(":method", "CONNECT"), (":authority", authority)])
        self.pending[sid] = [body, end]
        self.send_pending()
        self.flush()
        self.data[sid] = b""
        return sid

    def pump(self, until, limit=60):
        import time
        deadline = time.monotonic() + limit
        while not until():
            assert time.monotonic() < deadline, "timed out"
            try:
                b = self.s.recv(65536)
            except socket.timeout:
                continue
            if not b:
                return False
            for ev in self.h.receive_data(b):
                if isinstance(ev, h2.events.ResponseReceived):
                    self.status[ev.stream_id] = dict(ev.headers)[b":status"]
                elif isinstance(ev, h2.events.DataReceived):
                    self.data[ev.stream_id] = self.data.get(ev.stream_id, b"") + ev.data
                    n = ev.flow_controlled_length
                    if ev.stream_id not in self.stalled:
                        self.h.acknowledge_received_data(n, ev.stream_id)
                    elif n:
                        # the connection's window opens, the stream's does not
                        self.h.increment_flow_control_window(n)
                elif isinstance(ev, h2.events.StreamEnded):
                    self.ended.add(ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset):
                    self.reset[ev.stream_id] = ev.error_code
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = ev.error_code
            if self.goaway is None:
                self.send_pending()
                self.flush()
        return True


def test_fifty_streams_one_stalled(proxy_factory, echo):
    p = proxy_factory(conf=stpdconf.conf())
    fl = flood_server(4 << 20)
    m = Mux(p.port)
    assert m.rep == 0
    stalled = m.connect("127.0.0.1:%d" % fl.getsockname()[1], end=False)
    m.stalled.add(stalled)
    sids = [m.connect("127.0.0.1:%d" % echo.port, b"hello %d" % i) for i in range(49)]
    assert m.pump(lambda: all(s in m.ended for s in sids))
    for i, s in enumerate(sids):
        assert m.status[s] == b"200"
        assert m.data[s] == b"hello %d" % i
    # The stalled stream got at most its window (stpd respects it) and is still open.
    assert m.status[stalled] == b"200"
    assert 0 < len(m.data[stalled]) <= 65535
    assert stalled not in m.ended
    fl.close()


def test_reset_one_stream_others_go_on(proxy_factory, echo):
    p = proxy_factory(conf=stpdconf.conf())
    m = Mux(p.port)
    a = m.connect("127.0.0.1:%d" % echo.port, b"one", end=False)
    b = m.connect("127.0.0.1:%d" % echo.port, b"two", end=False)
    assert m.pump(lambda: m.data[a] == b"one" and m.data[b] == b"two")
    m.h.reset_stream(a, error_code=h2.errors.ErrorCodes.CANCEL)
    m.flush()
    m.pending[b] = [b" more", True]
    m.send_pending()
    m.flush()
    assert m.pump(lambda: b in m.ended)
    assert m.data[b] == b"two more"
    p.wait_log(r"flow id=1\.1 .*cmd=connect .*up=3 down=3 .*result=\"stream reset \(CANCEL\)\"",
               timeout=10)
    p.wait_log(r"flow id=1\.2 .*up=8 down=8 .*result=\"stream closed\"", timeout=10)


def test_refused_target_and_bad_authority(proxy_factory, port):
    p = proxy_factory(conf=stpdconf.conf())
    m = Mux(p.port)
    a = m.connect("127.0.0.1:%d" % port)
    b = m.connect("no-port-here")
    assert m.pump(lambda: a in m.status and b in m.status)
    assert m.status[a] == b"502"
    assert m.status[b] == b"400"
    bad = ["host:0", "host:65536", ":80", "[::1:80", "[]:80", "host:8x", "a:b:c", "host:"]
    ids = [m.connect(x) for x in bad]
    assert m.pump(lambda: all(i in m.status for i in ids))
    assert [m.status[i] for i in ids] == [b"400"] * len(bad)


def test_blocked_target_is_403(proxy_factory, echo):
    rules = "request block { command connect; to 127.0.0.1/32; port %d }\nrequest pass { }\n" % echo.port
    p = proxy_factory(conf=stpdconf.conf(request_rules=rules))
    m = Mux(p.port)
    a = m.connect("127.0.0.1:%d" % echo.port)
    assert m.pump(lambda: a in m.status)
    assert m.status[a] == b"403"


def test_max_streams(proxy_factory, echo):
    p = proxy_factory(conf=stpdconf.conf(extra="mux { max-streams 2; }\n"))
    m = Mux(p.port)
    # wait for stpd's SETTINGS to know the limit, then ignore it
    assert m.pump(lambda: m.h.remote_settings.max_concurrent_streams == 2)
    m.h.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 100
    m.h.remote_settings.acknowledge()
    ids = [m.connect("127.0.0.1:%d" % echo.port, b"x", end=False) for _ in range(2)]
    assert m.pump(lambda: all(m.data[i] == b"x" for i in ids))
    # A third stream beyond the acknowledged limit: nghttp2 makes it a
    # connection error (RFC 9113 5.1.2 allows it), GOAWAY PROTOCOL_ERROR.
    m.connect("127.0.0.1:%d" % echo.port, b"x", end=False)
    assert m.pump(lambda: m.goaway is not None)
    assert m.goaway == h2.errors.ErrorCodes.PROTOCOL_ERROR
    p.wait_log(r"session id=1 .*cmd=mux .*result=\"mux: (goaway|protocol error)\"", timeout=10)


def test_mux_refused_by_rule(proxy_factory):
    rules = "request block { command mux; }\nrequest pass { }\n"
    p = proxy_factory(conf=stpdconf.conf(request_rules=rules))
    m = Mux(p.port)
    assert m.rep == 0x0E


def test_garbage_gets_goaway_and_stpd_survives(proxy_factory, echo):
    p = proxy_factory(conf=stpdconf.conf())
    m = Mux(p.port)
    m.s.sendall(b"\x00\x00\x08\x06\x00\x00\x00\x00\x01" + b"\x00" * 8 + b"\xff" * 64)
    assert m.pump(lambda: m.goaway is not None, limit=20)
    assert m.goaway == h2.errors.ErrorCodes.PROTOCOL_ERROR  # PING on a stream
    m2 = Mux(p.port)
    a = m2.connect("127.0.0.1:%d" % echo.port, b"alive")
    assert m2.pump(lambda: a in m2.ended)
    assert m2.data[a] == b"alive"


@pytest.mark.stpd_module("tls")
def test_streams_inside_tls(proxy_factory, echo, pki):
    """The same streams through a 'tls on' listener: one TLS handshake, many
    streams (the conn's filter carries HTTP/2 like any other bytes)."""
    tport = services.free_port()
    conf = ("listen 127.0.0.1:$port\nlisten 127.0.0.1:%d { tls on; }\nresolver $dns\n"
            "tls { cert %s; key %s; }\n" % (tport, pki.path("server.pem"), pki.path("server.key"))
            + stpdconf.LOOPBACK_CLIENTS + "request pass { }\n")
    p = proxy_factory(conf=conf)
    m = Mux(tport, context=pki.client_context())
    assert m.rep == 0
    v6 = m.connect("[::1]:%d" % echo.port, b"six")
    assert m.pump(lambda: v6 in m.ended)
    assert m.status[v6] == b"200" and m.data[v6] == b"six"
    big = bytes(range(256)) * 1024  # 256 KiB: more than one window each way
    sids = [m.connect("127.0.0.1:%d" % echo.port, big) for _ in range(4)]
    assert m.pump(lambda: all(s in m.ended for s in sids))
    for s in sids:
        assert m.data[s] == big


def raw_frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def test_window_overflow_is_reset(proxy_factory, echo):
    """DATA beyond the stream's window (mux { window 16384 }) before stpd
    opened it: RST_STREAM FLOW_CONTROL_ERROR (or GOAWAY), stpd serves on."""
    p = proxy_factory(conf=stpdconf.conf(extra="mux { window 16384; }\n"))
    m = Mux(p.port)
    assert m.pump(lambda: m.h.remote_settings.initial_window_size == 16384)
    m.flush()  # our SETTINGS ACK: stpd's window is in force from here
    sid = m.h.get_next_available_stream_id()
    m.h.send_headers(sid, [(":method", "CONNECT"), (":authority", "127.0.0.1:%d" % echo.port)])
    raw = m.h.data_to_send() + raw_frame(0, 0, sid, b"a" * 16384) + raw_frame(0, 0, sid, b"b" * 8000)
    m.s.sendall(raw)
    m.data[sid] = b""
    try:
        m.pump(lambda: sid in m.reset or m.goaway is not None, limit=20)
    except h2.exceptions.ProtocolError:
        pass  # h2 itself objects to frames after the reset: stpd did reset
    assert (m.reset.get(sid) == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR or
            m.goaway == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR), (m.reset, m.goaway)
    m2 = Mux(p.port)
    a = m2.connect("127.0.0.1:%d" % echo.port, b"alive")
    assert m2.pump(lambda: a in m2.ended)


def test_stream_id_reuse_is_goaway(proxy_factory, echo):
    """HEADERS on a stream id already used and closed: GOAWAY
    PROTOCOL_ERROR, stpd serves on."""
    p = proxy_factory(conf=stpdconf.conf())
    m = Mux(p.port)
    a = m.connect("127.0.0.1:%d" % echo.port, b"one")
    assert m.pump(lambda: a in m.ended)
    block = hpack.Encoder().encode([(":method", "CONNECT"),
                                    (":authority", "127.0.0.1:%d" % echo.port)])
    m.s.sendall(raw_frame(1, 0x4, a, block))  # HEADERS, END_HEADERS, old id
    assert m.pump(lambda: m.goaway is not None, limit=20)
    assert m.goaway in (h2.errors.ErrorCodes.PROTOCOL_ERROR, h2.errors.ErrorCodes.STREAM_CLOSED)
    p.wait_log(r"session id=1 .*cmd=mux .*result=\"mux: (goaway|protocol error)\"", timeout=10)
    m2 = Mux(p.port)
    b = m2.connect("127.0.0.1:%d" % echo.port, b"alive")
    assert m2.pump(lambda: b in m2.ended)


# ---- abuse and limits (nghttp2's protections, set by stpd: mx_ext.c) ----

def fd_count(p):
    return len(os.listdir("/proc/%d/fd" % p.proc.pid))


def wait_fds(p, want, limit=20):
    deadline = time.monotonic() + limit
    while fd_count(p) > want and time.monotonic() < deadline:
        time.sleep(0.05)
    return fd_count(p)


def drain_until_closed(m, limit=20):
    """Reads (feeding h2 when it still can) until stpd closes the
    connection; returns the GOAWAY code seen, or None."""
    deadline = time.monotonic() + limit
    m.s.settimeout(1)
    while time.monotonic() < deadline:
        try:
            b = m.s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return m.goaway
        if not b:
            return m.goaway
        try:
            for ev in m.h.receive_data(b):
                if isinstance(ev, h2.events.ConnectionTerminated):
                    m.goaway = ev.error_code
        except h2.exceptions.ProtocolError:
            pass  # h2 objecting to what follows our own abuse
    raise AssertionError("stpd did not close the abusive connection")


def still_serves(p, echo):
    m = Mux(p.port)
    a = m.connect("127.0.0.1:%d" % echo.port, b"alive")
    assert m.pump(lambda: a in m.ended)
    assert m.data[a] == b"alive"


@pytest.mark.parametrize("frame", ["ping", "settings"])
def test_ack_flood_is_closed(proxy_factory, echo, frame):
    """PING or SETTINGS frames faster than their ACKs leave (the client
    reads none): past 1000 queued ACKs nghttp2 reports a flood and stpd
    closes the connection (session result "mux: flood")."""
    p = proxy_factory(conf=stpdconf.conf())
    m = Mux(p.port)
    one = raw_frame(6, 0, 0, b"12345678") if frame == "ping" else raw_frame(4, 0, 0, b"")
    burst = one * (96 * 1024 // len(one))  # > 5000 frames, one loopback write
    # The whole burst in the socket at once, so stpd reads it in one turn
    # (it writes ACKs only between turns, and stops reading while they wait).
    m.s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    try:
        m.s.sendall(burst)
    except (BrokenPipeError, ConnectionResetError):
        pass
    drain_until_closed(m)
    p.wait_log(r"session id=1 .*cmd=mux .*result=\"mux: flood\"", timeout=10)
    still_serves(p, echo)


def test_too_many_settings_entries_is_goaway(proxy_factory, echo):
    """One SETTINGS frame with 33 entries (the limit is 32): GOAWAY
    ENHANCE_YOUR_CALM."""
    p = proxy_factory(conf=stpdconf.conf())
    m = Mux(p.port)
    entry = struct.pack(">HI", 0x4, 65535)  # INITIAL_WINDOW_SIZE
    m.s.sendall(raw_frame(4, 0, 0, entry * 33))
    assert drain_until_closed(m) == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    p.wait_log(r"session id=1 .*cmd=mux .*result=\"mux: (goaway|protocol error)\"", timeout=10)
    still_serves(p, echo)


def test_rapid_reset_is_goaway(proxy_factory, echo, port):
    """HEADERS then RST_STREAM, over and over ("rapid reset", CVE-2023-44487):
    past the token bucket (1000 at once, 33/s) GOAWAY, and every target
    socket those streams made is closed again."""
    p = proxy_factory(conf=stpdconf.conf())
    m = Mux(p.port)
    assert m.pump(lambda: m.h.remote_settings.max_concurrent_streams == 100)
    m.flush()
    base = fd_count(p)
    enc = hpack.Encoder()
    out = b""
    for i in range(1500):
        sid = 2 * i + 1
        out += raw_frame(1, 0x4, sid, enc.encode([(":method", "CONNECT"),
                                                   (":authority", "127.0.0.1:%d" % port)]))
        out += raw_frame(3, 0, sid, struct.pack(">I", 8))  # RST_STREAM CANCEL
    try:
        m.s.sendall(out)
    except (BrokenPipeError, ConnectionResetError):
        pass
    code = drain_until_closed(m)
    assert code in (h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, h2.errors.ErrorCodes.INTERNAL_ERROR,
                    None), code
    p.wait_log(r"session id=1 .*cmd=mux .*result=\"mux: (goaway|flood|protocol error)\"",
               timeout=10)
    assert wait_fds(p, base - 1) <= base - 1  # the mux connection and every target gone
    still_serves(p, echo)


def test_headers_flood_beyond_max_streams(proxy_factory, echo):
    """500 HEADERS at once on a connection that allows 10 streams: a
    connection error (GOAWAY PROTOCOL_ERROR or REFUSED_STREAM resets), at
    most 10 targets were connected, and none is left open."""
    p = proxy_factory(conf=stpdconf.conf(extra="mux { max-streams 10; }\n"))
    m = Mux(p.port)
    assert m.pump(lambda: m.h.remote_settings.max_concurrent_streams == 10)
    m.flush()
    base = fd_count(p)
    enc = hpack.Encoder()
    out = b"".join(raw_frame(1, 0x4, 2 * i + 1, enc.encode(
        [(":method", "CONNECT"), (":authority", "127.0.0.1:%d" % echo.port)])) for i in range(500))
    try:
        m.s.sendall(out)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert drain_until_closed(m) == h2.errors.ErrorCodes.PROTOCOL_ERROR
    log = p.log()
    assert len(re.findall(r"flow id=1\.\d+ ", log)) <= 10
    assert wait_fds(p, base - 1) <= base - 1
    still_serves(p, echo)


def test_continuation_flood_is_closed(proxy_factory, echo):
    """A HEADERS block spread over more than 8 CONTINUATION frames
    (CVE-2024-27316's shape): the connection is closed."""
    p = proxy_factory(conf=stpdconf.conf())
    m = Mux(p.port)
    block = hpack.Encoder().encode([(":method", "CONNECT"),
                                    (":authority", "127.0.0.1:%d" % echo.port)])
    frames = raw_frame(1, 0, 1, block[:1])
    frames += b"".join(raw_frame(9, 0, 1, block[i:i + 1]) for i in range(1, len(block)))
    frames += b"".join(raw_frame(9, 0, 1, b"") for _ in range(40))
    m.s.sendall(frames)
    drain_until_closed(m)
    p.wait_log(r"session id=1 .*cmd=mux .*result=\"mux: (goaway|protocol error)\"", timeout=10)
    assert not re.search(r"flow id=1\.1 ", p.log())
    still_serves(p, echo)


@pytest.mark.parametrize("sid,inc,code", [
    (0, 0x7fffffff, "FLOW_CONTROL_ERROR"),  # connection window past 2^31-1
    (0, 0, "PROTOCOL_ERROR"),               # increment 0
])
def test_window_update_abuse_is_goaway(proxy_factory, echo, sid, inc, code):
    p = proxy_factory(conf=stpdconf.conf())
    m = Mux(p.port)
    m.s.sendall(raw_frame(8, 0, sid, struct.pack(">I", inc)))
    assert drain_until_closed(m) == getattr(h2.errors.ErrorCodes, code)
    still_serves(p, echo)


def test_stream_window_overflow_by_window_update(proxy_factory, echo):
    """WINDOW_UPDATE that takes one stream's window past 2^31-1:
    RST_STREAM FLOW_CONTROL_ERROR for that stream; the others go on."""
    p = proxy_factory(conf=stpdconf.conf())
    m = Mux(p.port)
    a = m.connect("127.0.0.1:%d" % echo.port, b"one", end=False)
    b = m.connect("127.0.0.1:%d" % echo.port, b"two", end=False)
    assert m.pump(lambda: m.data[a] == b"one" and m.data[b] == b"two")
    m.s.sendall(raw_frame(8, 0, a, struct.pack(">I", 0x7fffffff)))
    try:
        m.pump(lambda: a in m.reset or m.goaway is not None, limit=20)
    except h2.exceptions.ProtocolError:
        pass
    assert m.reset.get(a) == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR, (m.reset, m.goaway)
    m.pending[b] = [b" more", True]
    m.send_pending()
    m.flush()
    assert m.pump(lambda: b in m.ended)
    assert m.data[b] == b"two more"


def test_authority_forms(proxy_factory, echo):
    """Which :authority values open a stream (docs/protocol.md 5.11): a
    bracketed literal is IPv6 only, a bare IPv6 is refused, the port is
    digits only; nghttp2 may refuse some first (RST_STREAM PROTOCOL_ERROR)."""
    p = proxy_factory(conf=stpdconf.conf())
    m = Mux(p.port)
    ok = ["127.0.0.1:%d" % echo.port, "[::1]:%d" % echo.port, "localhost:%d" % echo.port]
    bad = ["[127.0.0.1]:%d" % echo.port, "[localhost]:%d" % echo.port, "::1:%d" % echo.port,
           "localhost:+%d" % echo.port, "user@localhost:%d" % echo.port,
           "localhost:%05d0" % echo.port, "[::1]", "[::1]:%d]" % echo.port]
    good = [m.connect(x, b"hi") for x in ok]
    refused = [m.connect(x) for x in bad]
    assert m.pump(lambda: all(i in m.ended for i in good) and
                  all(i in m.status or i in m.reset for i in refused))
    assert [m.data[i] for i in good] == [b"hi"] * len(good)
    for x, i in zip(bad, refused):
        assert (m.status.get(i) == b"400" or
                m.reset.get(i) == h2.errors.ErrorCodes.PROTOCOL_ERROR), (x, m.status.get(i))


def mux_drive():
    import os
    if os.environ.get("STPD"):
        b = os.path.dirname(os.path.dirname(os.path.dirname(os.environ["STPD"])))
    else:
        b = os.path.join(os.path.dirname(__file__), "..", "..", "build")
    path = os.path.join(b, "tests", "client", "mux_drive")
    if not os.path.exists(path):
        pytest.skip("tests/client/mux_drive not built")
    return path


def test_libstp_fifty_streams_one_stalled(proxy_factory, echo):
    """libstp's stp_mux_*: one connection, one stream whose socket is never
    read while 49 others echo to the end."""
    import subprocess
    p = proxy_factory(conf=stpdconf.conf())
    fl = flood_server(4 << 20)
    r = subprocess.run([mux_drive(), "socks5://127.0.0.1:%d" % p.port, "127.0.0.1",
                        str(echo.port), str(fl.getsockname()[1]), "49"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sum(1 for ln in r.stdout.splitlines() if ln.startswith("ok ")) == 49
    assert "stalled open" in r.stdout
    # one session, fifty flows
    assert len(p.log_lines(r"session id=\d+ .*cmd=mux")) <= 1
    fl.close()
    # the stalled stream moved about one window plus the socketpair's
    # buffer (~400 KiB) of the 4 MiB its target offered, no more
    m = p.wait_log(r"flow id=1\.1 .*up=0 down=(\d+) ", timeout=10)
    assert 0 < int(m.group(1)) < (1 << 20)


def test_libstp_max_streams(proxy_factory, echo):
    """With max-streams 3 and three streams open, a fourth waits (nghttp2
    queues it) and stp_mux_connect times out; nothing else breaks."""
    import subprocess
    p = proxy_factory(conf=stpdconf.conf(extra="mux { max-streams 3; }\n"))
    r = subprocess.run([mux_drive(), "socks5://127.0.0.1:%d" % p.port, "127.0.0.1",
                        str(echo.port), "0", "3", "limit", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("open ")] == \
        ["open 0", "open 1", "open 2"], r.stdout
    assert "extra fail 0 timed out" in r.stdout, r.stdout


def test_stp_connect_mux(proxy_factory, echo):
    """`stp connect --mux`: the bytes go through a stream (a flow of a mux
    session), and a refused target gives the SOCKS reply's exit code."""
    import os
    import subprocess
    stp = os.environ.get("STP_BIN") or os.path.join(
        os.path.dirname(mux_drive()), "..", "..", "src", "cli", "stp")
    p = proxy_factory(conf=stpdconf.conf())
    env = {k: v for k, v in os.environ.items() if not k.startswith("STP")}
    url = "socks5://127.0.0.1:%d" % p.port
    r = subprocess.run([stp, "--proxy", url, "--no-autoconfig", "connect", "--mux",
                        "127.0.0.1", str(echo.port)],
                       input=b"through a stream\n", capture_output=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"through a stream\n"
    p.wait_log(r"session id=1 .*cmd=mux", timeout=10)
    p.wait_log(r"flow id=1\.1 .*cmd=connect .*up=17 down=17 ", timeout=10)
    r = subprocess.run([stp, "--proxy", url, "--no-autoconfig", "connect", "--mux",
                        "127.0.0.1", str(services.free_port())],
                       input=b"", capture_output=True, timeout=30, env=env)
    assert r.returncode == 15, r.stderr  # 10 + X'05' connection refused (socks-rep 5)


@pytest.mark.stpd_module("discovery")
def test_discovery_announces_mux(proxy_factory):
    """Feature discovery lists X'30' with its limits, and not where the
    rules block `mux`."""
    import json
    import os
    import subprocess
    stp = os.environ.get("STP_BIN") or os.path.join(
        os.path.dirname(mux_drive()), "..", "..", "src", "cli", "stp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STP")}
    p = proxy_factory(conf=stpdconf.conf(extra="mux { max-streams 7; }\n"))
    r = subprocess.run([stp, "features", "socks5://127.0.0.1:%d" % p.port, "--json"],
                       capture_output=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert 0x30 in a["commands"]
    assert {"scope": "command", "code": 0x30, "name": "max-streams", "type": "uint",
            "value": 7} in a["entries"]
    q = proxy_factory(conf=stpdconf.conf(request_rules="request block { command mux }\n"
                                                       "request pass { }\n"))
    r = subprocess.run([stp, "features", "socks5://127.0.0.1:%d" % q.port, "--json"],
                       capture_output=True, timeout=30, env=env)
    assert 0x30 not in json.loads(r.stdout)["commands"]
