"""SOCKS spoken byte by byte, for tests that must see every field.

RFC 1928 (SOCKS5), RFC 1929 (username/password), SOCKS4 and SOCKS4a.
Readers take exactly the bytes a message has (never "one recv = one
message") and raise EOFError when the server closes early.
"""

import ipaddress
import socket
import struct

VER5 = 0x05
CMD_CONNECT, CMD_BIND, CMD_UDP = 0x01, 0x02, 0x03
ATYP_V4, ATYP_DOMAIN, ATYP_V6 = 0x01, 0x03, 0x04
M_NONE, M_GSSAPI, M_USERPASS, M_NOACCEPT = 0x00, 0x01, 0x02, 0xFF

REP_NAMES = {
    0x00: "succeeded",
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "Network unreachable",
    0x04: "Host unreachable",
    0x05: "Connection refused",
    0x06: "TTL expired",
    0x07: "Command not supported",
    0x08: "Address type not supported",
}


class Reply:
    def __init__(self, ver, rep, atyp, host, port):
        self.ver, self.rep, self.atyp, self.host, self.port = ver, rep, atyp, host, port

    def __repr__(self):
        return "Reply(ver=%d rep=0x%02x %s %s:%d)" % (
            self.ver, self.rep, REP_NAMES.get(self.rep, "?"), self.host, self.port)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise EOFError("server closed after %d of %d bytes" % (len(buf), n))
        buf += d
    return buf


def recv_all(s, limit=1 << 30):
    """Everything until EOF."""
    out = bytearray()
    while len(out) < limit:
        d = s.recv(65536)
        if not d:
            break
        out += d
    return bytes(out)


def closed_by_peer(s, timeout=5.0):
    """True when the peer closed (EOF or reset) within timeout; any bytes
    that arrive first are read and ignored (at most 64 KiB)."""
    s.settimeout(timeout)
    got = 0
    try:
        while got < 65536:
            d = s.recv(4096)
            if not d:
                return True
            got += len(d)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def dial(port, host="127.0.0.1", timeout=10.0, source=None):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    return s


# ---- address field: ATYP ADDR PORT ---------------------------------------
#   +------+----------+----------+
#   | ATYP |   ADDR   |   PORT   |
#   +------+----------+----------+
#   |  1   | Variable |    2     |


def encode_addr(host, port, atyp=None):
    """host: IPv4/IPv6 text, a name, or bytes (raw domain). atyp forces the
    type byte (for malformed requests)."""
    if isinstance(host, bytes):
        body = bytes([len(host)]) + host
        t = ATYP_DOMAIN
    else:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is None:
            h = host.encode()
            body, t = bytes([len(h)]) + h, ATYP_DOMAIN
        elif ip.version == 4:
            body, t = ip.packed, ATYP_V4
        else:
            body, t = ip.packed, ATYP_V6
    return bytes([atyp if atyp is not None else t]) + body + struct.pack(">H", port)


def read_addr(s):
    atyp = recv_exact(s, 1)[0]
    if atyp == ATYP_V4:
        host = str(ipaddress.IPv4Address(recv_exact(s, 4)))
    elif atyp == ATYP_V6:
        host = str(ipaddress.IPv6Address(recv_exact(s, 16)))
    elif atyp == ATYP_DOMAIN:
        n = recv_exact(s, 1)[0]
        host = recv_exact(s, n).decode("latin-1")
    else:
        raise ValueError("reply with unknown ATYP 0x%02x" % atyp)
    port = struct.unpack(">H", recv_exact(s, 2))[0]
    return atyp, host, port


def parse_addr(buf, off=0):
    """-> (atyp, host, port, next_offset) from a bytes buffer."""
    atyp = buf[off]
    off += 1
    if atyp == ATYP_V4:
        host = str(ipaddress.IPv4Address(buf[off:off + 4]))
        off += 4
    elif atyp == ATYP_V6:
        host = str(ipaddress.IPv6Address(buf[off:off + 16]))
        off += 16
    elif atyp == ATYP_DOMAIN:
        n = buf[off]
        host = buf[off + 1:off + 1 + n].decode("latin-1")
        off += 1 + n
    else:
        raise ValueError("unknown ATYP 0x%02x" % atyp)
    port = struct.unpack(">H", buf[off:off + 2])[0]
    return atyp, host, port, off + 2


# ---- method greeting -----------------------------------------------------
#   +----+----------+----------+        +----+--------+
#   |VER | NMETHODS | METHODS  |  --->  |VER | METHOD |
#   +----+----------+----------+        +----+--------+


def greeting(methods=(M_NONE,)):
    return bytes([VER5, len(methods)]) + bytes(methods)


def negotiate(s, methods=(M_NONE,)):
    s.sendall(greeting(methods))
    ver, method = recv_exact(s, 2)
    if ver != VER5:
        raise ValueError("method reply with VER 0x%02x" % ver)
    return method


# ---- RFC 1929 ------------------------------------------------------------
#   +----+------+----------+------+----------+      +----+--------+
#   |VER | ULEN |  UNAME   | PLEN |  PASSWD  | ---> |VER | STATUS |
#   +----+------+----------+------+----------+      +----+--------+


def userpass_msg(user, password):
    u, p = user.encode(), password.encode()
    return bytes([0x01, len(u)]) + u + bytes([len(p)]) + p


def userpass(s, user, password):
    s.sendall(userpass_msg(user, password))
    ver, status = recv_exact(s, 2)
    if ver != 0x01:
        raise ValueError("userpass reply with VER 0x%02x" % ver)
    return status


def userpass_echo(port, user, password, probe):
    """RFC 1929 to stpd on 127.0.0.1:port, then, when accepted, a CONNECT
    to the echo service on 127.0.0.1:7 carrying probe: (status, what came
    back); status is RFC 1929's (0 = accepted, else b"")."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x05\x01\x02")
        assert recv_exact(s, 2) == b"\x05\x02"
        status = userpass(s, user, password)
        if status != 0:
            return status, b""
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + (7).to_bytes(2, "big"))
        assert recv_exact(s, 10)[:2] == b"\x05\x00"
        s.sendall(probe)
        return 0, s.recv(16)


# ---- request and reply ---------------------------------------------------
#   +----+-----+-------+------+----------+----------+
#   |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
#   +----+-----+-------+------+----------+----------+
#   +----+-----+-------+------+----------+----------+
#   |VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |
#   +----+-----+-------+------+----------+----------+


def request_msg(cmd, host, port, atyp=None):
    return bytes([VER5, cmd, 0x00]) + encode_addr(host, port, atyp)


def read_reply(s):
    ver, rep, rsv = recv_exact(s, 3)
    if ver != VER5:
        raise ValueError("reply with VER 0x%02x" % ver)
    atyp, host, port = read_addr(s)
    return Reply(ver, rep, atyp, host, port)


def request(s, cmd, host, port, atyp=None):
    s.sendall(request_msg(cmd, host, port, atyp))
    return read_reply(s)


def open_connect(proxy_port, host, port, auth=None, proxy_host="127.0.0.1", timeout=10.0):
    """Greeting (+ auth) + CONNECT. Returns (socket, reply); the socket is
    ready for data when reply.rep == 0."""
    s = dial(proxy_port, proxy_host, timeout)
    try:
        if auth:
            m = negotiate(s, (M_USERPASS,))
            if m != M_USERPASS:
                raise ValueError("server chose method 0x%02x, not userpass" % m)
            st = userpass(s, *auth)
            if st != 0:
                raise PermissionError("userpass status 0x%02x" % st)
        else:
            m = negotiate(s, (M_NONE,))
            if m != M_NONE:
                raise ValueError("server chose method 0x%02x, not none" % m)
        return s, request(s, CMD_CONNECT, host, port)
    except BaseException:
        s.close()
        raise


# ---- UDP request header --------------------------------------------------
#   +----+------+------+----------+----------+----------+
#   |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
#   +----+------+------+----------+----------+----------+


def udp_packet(host, port, data, frag=0):
    return b"\x00\x00" + bytes([frag]) + encode_addr(host, port) + data


def udp_parse(pkt):
    """-> (frag, atyp, host, port, data)"""
    if len(pkt) < 4 or pkt[0:2] != b"\x00\x00":
        raise ValueError("bad UDP header %r" % pkt[:8])
    frag = pkt[2]
    atyp, host, port, off = parse_addr(pkt, 3)
    return frag, atyp, host, port, pkt[off:]


# ---- SOCKS4 / SOCKS4a ----------------------------------------------------
#   +----+----+----+----+----+----+----+----+----+----+....+----+
#   | VN | CD | DSTPORT |      DSTIP        | USERID       |NULL|
#   +----+----+----+----+----+----+----+----+----+----+....+----+
#   SOCKS4a: DSTIP 0.0.0.x (x != 0), then HOSTNAME NULL after USERID.
#   reply: VN=0 CD=90 granted, 91 rejected, 92/93 identd.


def socks4_msg(cmd, ip, port, userid=b"", host=None):
    if host is not None:
        ip = "0.0.0.1"
    m = bytes([0x04, cmd]) + struct.pack(">H", port) + ipaddress.IPv4Address(ip).packed
    m += userid + b"\x00"
    if host is not None:
        m += host.encode() + b"\x00"
    return m


def socks4_reply(s):
    """-> (vn, cd, port, ip)"""
    d = recv_exact(s, 8)
    return d[0], d[1], struct.unpack(">H", d[2:4])[0], str(ipaddress.IPv4Address(d[4:8]))


def echo_roundtrip(s, payload):
    """Send payload, read back the same number of bytes."""
    s.sendall(payload)
    return recv_exact(s, len(payload))
