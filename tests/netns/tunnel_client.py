"""A SETUP_UDP_TUNNEL client in Python for the tests (docs/protocol.md
5.10): the X'20' request, and RFC 1928 section 7 headers on datagrams."""

import ipaddress
import socket
import struct

DTLS, TLS = 1, 2
CRED_NONE, CRED_USERPASS, CRED_CERT = 0, 1, 2


def addr(host, port):
    try:
        ip = ipaddress.ip_address(host)
        return (b"\x01" if ip.version == 4 else b"\x04") + ip.packed + struct.pack("!H", port)
    except ValueError:
        h = host.encode()
        return b"\x03" + bytes([len(h)]) + h + struct.pack("!H", port)


def setup_request(remote, far, trans, user=None, password=None, cred=None):
    if cred is None:
        cred = CRED_USERPASS if user else CRED_NONE
    body = bytes([1, trans, cred])
    if cred == CRED_USERPASS:
        body += bytes([len(user)]) + user.encode() + bytes([len(password)]) + password.encode()
    return b"\x05\x20\x00" + addr(*remote) + body + addr(*far)


def _recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def read_reply(s):
    head = _recv_exact(s, 4)
    atyp = head[3]
    if atyp == 1:
        raw = _recv_exact(s, 6)
        host = socket.inet_ntop(socket.AF_INET, raw[:4])
    elif atyp == 4:
        raw = _recv_exact(s, 18)
        host = socket.inet_ntop(socket.AF_INET6, raw[:16])
    else:
        n = _recv_exact(s, 1)[0]
        raw = _recv_exact(s, n + 2)
        host = raw[:n].decode()
    return head[1], host, struct.unpack("!H", raw[-2:])[0]


class Tunnel:
    """A control connection with its tunnel; rep is the reply code."""

    def __init__(self, stpd, remote, far, trans, user=None, password=None, source=None,
                 timeout=30, cred=None):
        self.ctl = socket.create_connection(stpd, timeout=timeout,
                                            source_address=(source, 0) if source else None)
        self.ctl.sendall(b"\x05\x01\x00")
        assert _recv_exact(self.ctl, 2) == b"\x05\x00"
        self.ctl.sendall(setup_request(remote, far, trans, user, password, cred))
        self.rep, host, port = read_reply(self.ctl)
        self.bnd = (host, port)
        self.hdr = b"\x00\x00\x00" + addr(*far)
        self.udp = None
        if self.rep == 0:
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind((source or "0.0.0.0", 0))
            self.udp.connect(self.bnd)
            self.udp.settimeout(timeout)

    def send(self, payload):
        self.udp.send(self.hdr + payload)

    def recv(self):
        d = self.udp.recv(65536)
        assert d[:3] == b"\x00\x00\x00", d[:3]
        return d[len(self.hdr):]

    def close(self):
        for s in (self.udp, self.ctl):
            if s:
                s.close()
        self.udp = self.ctl = None
