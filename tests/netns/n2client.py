"""A small N2 client (docs/protocol.md, "N2: control server to relay
proxy") for driving stp-relayd from the tests, written from the spec
rather than from src/proto/n2.c so the two check each other."""

import ipaddress
import socket
import struct
import time

HELLO, OPEN, OPENED, COUNTERS, COUNTS, CLOSE, CLOSED, ENDED = range(1, 9)
NAMES = {1: "HELLO", 2: "OPEN", 3: "OPENED", 4: "COUNTERS", 5: "COUNTS", 6: "CLOSE",
         7: "CLOSED", 8: "ENDED"}
TCP, UDP = 6, 17


def addr(host, port):
    ip = ipaddress.ip_address(host)
    return bytes([1 if ip.version == 4 else 4]) + ip.packed + struct.pack(">H", port)


def parse_addr(b, off):
    atyp = b[off]
    n = 4 if atyp == 1 else 16
    ip = ipaddress.ip_address(b[off + 1:off + 1 + n])
    port = struct.unpack(">H", b[off + 1 + n:off + 3 + n])[0]
    return (str(ip), port), off + 3 + n


def counters(b):
    pu, bu, pd, bd = struct.unpack(">QQQQ", b)
    return {"pkts_up": pu, "bytes_up": bu, "pkts_down": pd, "bytes_down": bd}


class Msg:
    def __init__(self, type_, id_, body):
        self.type, self.id, self.body = type_, id_, body
        self.rep = self.bnd = self.why = self.counters = None
        if type_ == OPENED:
            self.rep = body[0]
            self.bnd, _ = parse_addr(body, 1)
        elif type_ in (COUNTS, CLOSED):
            self.counters = counters(body)
        elif type_ == ENDED:
            n = body[0]
            self.why = body[1:1 + n].decode()
            self.counters = counters(body[1 + n:])

    def __repr__(self):
        return "<%s id=%d rep=%s bnd=%s why=%s c=%s>" % (NAMES.get(self.type), self.id, self.rep,
                                                         self.bnd, self.why, self.counters)


class N2:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.sock.settimeout(10)
        self.send(HELLO, 0, b"\x01")
        m = self.recv()
        assert m.type == HELLO and m.body == b"\x01", m

    @classmethod
    def unix(cls, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return cls(s)

    def send(self, type_, id_, body=b""):
        self.sock.sendall(struct.pack(">BIH", type_, id_, len(body)) + body)

    def open(self, id_, ptcl, src, dst, bnd, fin=True, idle_ms=0):
        body = struct.pack(">BBI", ptcl, 1 if fin else 0, idle_ms)
        body += addr(*src) + addr(*dst) + addr(*bnd)
        self.send(OPEN, id_, body)

    def recv(self, timeout=10):
        deadline = time.time() + timeout
        while True:
            if len(self.buf) >= 7:
                t, i, n = struct.unpack(">BIH", self.buf[:7])
                if len(self.buf) >= 7 + n:
                    body, self.buf = self.buf[7:7 + n], self.buf[7 + n:]
                    return Msg(t, i, body)
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no N2 message")
            self.sock.settimeout(left)
            d = self.sock.recv(4096)
            if not d:
                raise EOFError("relay closed the N2 connection")
            self.buf += d

    def expect(self, type_, id_, timeout=10):
        m = self.recv(timeout)
        assert m.type == type_ and m.id == id_, "want %s %d, got %r" % (NAMES[type_], id_, m)
        return m

    def opened(self, id_, *a, **kw):
        """OPEN then OPENED X'00': BND (host, port)."""
        self.open(id_, *a, **kw)
        m = self.expect(OPENED, id_)
        assert m.rep == 0, m
        return m.bnd

    def counters(self, id_):
        self.send(COUNTERS, id_)
        return self.expect(COUNTS, id_).counters

    def close(self, id_):
        self.send(CLOSE, id_)
        return self.expect(CLOSED, id_).counters

    def shutdown(self):
        self.sock.close()
