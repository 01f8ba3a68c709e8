"""A reference client for stp's multicast extension, written from
docs/mcast.md alone (no code shared with stpd).

    ctl = Control.connect(("10.77.2.1", 1080))
    m = ctl.join("239.1.2.3", 5000)              # -> Membership
    rx = m.receiver(ifindex)                      # intranet group socket
    m.send(b"hello")                              # sealed, to the relay
    m.send_to_group(b"hello", ifindex)            # or to ADDR:PORT (seed 000 5.2)
    origin, src, payload = m.recv(rx, timeout=2)  # opened, replay-checked
    ctl.leave("239.1.2.3", 5000)
    ctl.close()

AEAD comes from python3-cryptography (Debian).
"""

import ipaddress
import select
import socket
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

VER = 5
CMD_JOIN, CMD_LEAVE, CMD_JOIN_FILTER = 0x05, 0x06, 0x85
ATYP_V4, ATYP_DOMAIN, ATYP_V6 = 1, 3, 4
REP_OK, REP_NO_SEND, REP_NO_RECV, REP_NEITHER = 0x00, 0xB0, 0xB1, 0xB2
REP_NOT_GROUP = 0xB6
NOTES = {0xB3: "bandwidth", 0xB4: "time limit", 0xB5: "idle"}
INCLUDE, EXCLUDE = 1, 2
SUITE_NONE, SUITE_AESGCM, SUITE_CHACHA = 0, 1, 2
KEYF_SEND, KEYF_RECV = 1, 2
KIND_MEMBER, KIND_RELAY = 1, 2
FRAME_VER = 1
TAG = 16
WINDOW = 64


class ProtocolError(Exception):
    pass


def encode_addr(host, port):
    ip = ipaddress.ip_address(host)
    atyp = ATYP_V4 if ip.version == 4 else ATYP_V6
    return bytes([atyp]) + ip.packed + struct.pack(">H", port)


def encode_filter(mode, sources):
    out = bytes([mode, len(sources)])
    for s in sources:
        ip = ipaddress.ip_address(s)
        out += bytes([ATYP_V4 if ip.version == 4 else ATYP_V6]) + ip.packed
    return out


def nonce(seq):
    return b"\0\0\0\0" + struct.pack(">Q", seq)


def aead(suite, key):
    if suite == SUITE_AESGCM:
        return AESGCM(key)
    if suite == SUITE_CHACHA:
        return ChaCha20Poly1305(key)
    raise ProtocolError("unknown suite %d" % suite)


class Reply:
    """VER REP RSV ATYP ADDR PORT [LEN KEY]."""

    def __init__(self, rep, host, port, key=None):
        self.rep, self.host, self.port, self.key = rep, host, port, key

    def __repr__(self):
        return "Reply(rep=0x%02x, %s:%d, key=%s)" % (self.rep, self.host, self.port,
                                                    "yes" if self.key else "no")


class KeyBlock:
    """SUITE FLAGS MEMBER_ID [SEND_KEY] [RECV_KEY]."""

    def __init__(self, raw):
        if len(raw) < 6:
            raise ProtocolError("short KEY")
        self.suite, self.flags = raw[0], raw[1]
        (self.member_id,) = struct.unpack(">I", raw[2:6])
        off = 6
        self.send_key = self.recv_key = None
        if self.flags & KEYF_SEND:
            self.send_key = raw[off:off + 32]
            off += 32
        if self.flags & KEYF_RECV:
            self.recv_key = raw[off:off + 32]
            off += 32
        if off != len(raw) or self.flags & ~3 or self.suite not in (1, 2):
            raise ProtocolError("bad KEY block")


class ReplayWindow:
    def __init__(self):
        self.top, self.bits = 0, 0

    def check(self, seq):
        if seq == 0:
            return False
        if seq > self.top:
            return True
        age = self.top - seq
        return age < WINDOW and not (self.bits >> age) & 1

    def update(self, seq):
        if seq > self.top:
            shift = seq - self.top
            self.bits = 0 if shift >= WINDOW else (self.bits << shift) & ((1 << WINDOW) - 1)
            self.bits |= 1
            self.top = seq
        else:
            self.bits |= 1 << (self.top - seq)


class Membership:
    """One granted JOIN: where to send, where to listen, and the keys."""

    def __init__(self, ctl, rep, group, port, reply):
        self.ctl, self.rep, self.group, self.port = ctl, rep, group, port
        self.intranet = (reply.host, reply.port)
        self.relay = (ctl.server[0], reply.port)  # docs/mcast.md: server address, PORT
        self.key = KeyBlock(reply.key) if reply.key else None
        self.suite = self.key.suite if self.key else SUITE_NONE
        self.member_id = self.key.member_id if self.key else 0
        self.seq = 0
        self.window = ReplayWindow()
        fam = socket.AF_INET6 if ":" in ctl.server[0] else socket.AF_INET
        self.usock = socket.socket(fam, socket.SOCK_DGRAM)
        self.usock.bind((ctl.local[0], 0))
        self.gsock = None

    @property
    def can_send(self):
        return self.rep in (REP_OK, REP_NO_RECV)

    @property
    def can_receive(self):
        return self.rep in (REP_OK, REP_NO_SEND)

    # ---- member -> relay ----
    def frame(self, payload, seq=None, member_id=None, key=None):
        """A member frame; the optional arguments exist to forge one."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        mid = self.member_id if member_id is None else member_id
        hdr = struct.pack(">BBIQ", FRAME_VER, KIND_MEMBER, mid, seq)
        if self.suite == SUITE_NONE:
            return hdr + payload
        k = key if key is not None else (self.key.send_key or bytes(32))
        return hdr + aead(self.suite, k).encrypt(nonce(seq), payload, hdr)

    def send(self, payload):
        self.usock.sendto(self.frame(payload), self.relay)

    def send_raw(self, data):
        self.usock.sendto(data, self.relay)

    def group_socket(self, ifindex):
        """For sending to ADDR:PORT of the reply, the intranet group (seed
        000 5.2: "the client must use this address and port to send and
        receive data"): from the control connection's address (the relay
        knows members by it, so the group must have its family), out of
        the inside interface ifindex."""
        if self.gsock is not None:
            return self.gsock
        v6 = ":" in self.intranet[0]
        if v6 != (":" in self.ctl.local[0]):
            raise ProtocolError("sending to the group needs a control connection of its family")
        if v6:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            mreqn = bytes(8) + struct.pack("@i", ifindex)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        s.bind((self.ctl.local[0], 0))
        self.gsock = s
        return s

    def send_to_group(self, payload, ifindex):
        self.send_raw_to_group(self.frame(payload), ifindex)

    def send_raw_to_group(self, data, ifindex):
        self.group_socket(ifindex).sendto(data, self.intranet)

    # ---- intranet group -> member ----
    def receiver(self, ifindex, group=None, port=None):
        """A socket joined to the intranet group (or another group) on ifindex."""
        return open_group_socket(group or self.intranet[0], port or self.intranet[1], ifindex)

    def open_frame(self, data, recv_key=None):
        """(origin, (src_host, src_port), payload) or None if it does not
        authenticate, is malformed, or is a replay."""
        if len(data) < 14 or data[0] != FRAME_VER or data[1] != KIND_RELAY:
            return None
        origin, seq = struct.unpack(">IQ", data[2:14])
        atyp = data[14] if len(data) > 14 else 0
        alen = 4 if atyp == ATYP_V4 else 16 if atyp == ATYP_V6 else 0
        if not alen or len(data) < 15 + alen + 2:
            return None
        src = (str(ipaddress.ip_address(data[15:15 + alen])),
               struct.unpack(">H", data[15 + alen:17 + alen])[0])
        hlen = 17 + alen
        if not self.window.check(seq):
            return None
        if self.suite == SUITE_NONE:
            payload = data[hlen:]
        else:
            k = recv_key if recv_key is not None else (self.key.recv_key if self.key else None)
            if k is None:
                return None
            try:
                payload = aead(self.suite, k).decrypt(nonce(seq), data[hlen:], data[:hlen])
            except InvalidTag:
                return None
        self.window.update(seq)
        return origin, src, payload

    def recv(self, sock, timeout=2.0, skip_own=True):
        """Next payload that opens, or None after timeout."""
        while True:
            r, _, _ = select.select([sock], [], [], timeout)
            if not r:
                return None
            data = sock.recv(65536)
            got = self.open_frame(data)
            if got is None:
                continue
            if skip_own and got[0] == self.member_id and self.member_id:
                continue
            return got

    def close(self):
        self.usock.close()
        if self.gsock is not None:
            self.gsock.close()


def open_group_socket(group, port, ifindex):
    ip = ipaddress.ip_address(group)
    if ip.version == 4:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((group, port))
        mreqn = ip.packed + b"\0\0\0\0" + struct.pack("@i", ifindex)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((group, port, 0, ifindex))
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                     ip.packed + struct.pack("@I", ifindex))
    return s


class Control:
    """The TCP control connection: greeting, then JOIN/LEAVE requests."""

    def __init__(self, sock):
        self.sock = sock
        self.server = sock.getpeername()[:2]
        self.local = sock.getsockname()[:2]
        self.buf = b""

    @classmethod
    def connect(cls, server, user=None, password=None, timeout=5.0, source=None):
        fam = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect(server)
        c = cls(s)
        c.greet(user, password)
        return c

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("control connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def greet(self, user, password):
        if user is None:
            self.sock.sendall(bytes([VER, 1, 0]))
            if self._read(2) != bytes([VER, 0]):
                raise ProtocolError("method refused")
            return
        self.sock.sendall(bytes([VER, 1, 2]))
        if self._read(2) != bytes([VER, 2]):
            raise ProtocolError("userpass refused")
        u, p = user.encode(), password.encode()
        self.sock.sendall(bytes([1, len(u)]) + u + bytes([len(p)]) + p)
        if self._read(2)[1] != 0:
            raise ProtocolError("authentication failed")

    def read_reply(self, cmd):
        ver, rep, _rsv, atyp = self._read(4)
        if ver != VER:
            raise ProtocolError("bad reply version")
        if atyp == ATYP_V4:
            host = str(ipaddress.ip_address(self._read(4)))
        elif atyp == ATYP_V6:
            host = str(ipaddress.ip_address(self._read(16)))
        elif atyp == ATYP_DOMAIN:
            host = self._read(self._read(1)[0]).decode()
        else:
            raise ProtocolError("bad ATYP")
        (port,) = struct.unpack(">H", self._read(2))
        key = None
        if cmd in (CMD_JOIN, CMD_JOIN_FILTER) and rep in (REP_OK, REP_NO_SEND, REP_NO_RECV,
                                                          REP_NEITHER):
            key = self._read(self._read(1)[0]) or None
        return Reply(rep, host, port, key)

    def request(self, cmd, group, port, fmode=None, sources=()):
        msg = bytes([VER, cmd, 0]) + encode_addr(group, port)
        if cmd == CMD_JOIN_FILTER:
            msg += encode_filter(fmode, sources)
        self.sock.sendall(msg)
        return self.read_reply(cmd)

    def join(self, group, port, mode=None, sources=()):
        """A Membership when granted (REP 00, B0 or B1); else the Reply."""
        cmd = CMD_JOIN_FILTER if mode else CMD_JOIN
        r = self.request(cmd, group, port, mode, list(sources))
        if r.rep in (REP_OK, REP_NO_SEND, REP_NO_RECV):
            return Membership(self, r.rep, group, port, r)
        return r

    def leave(self, group, port):
        return self.request(CMD_LEAVE, group, port)

    def read_notice(self, timeout=5.0):
        """Waits for an unsolicited notice; (code, group, port) or None on EOF."""
        self.sock.settimeout(timeout)
        try:
            r = self.read_reply(CMD_LEAVE)
        except EOFError:
            return None
        return r.rep, r.host, r.port

    def close(self):
        self.sock.close()
