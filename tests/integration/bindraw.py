"""The bind extension's wire (docs/protocol.md section 5.9) spoken from
Python, for the tests: LISTEN X'10', the control messages, ACCEPT X'11'."""

import socket
import struct

import socksraw as S

CMD_LISTEN = 0x10
CMD_ACCEPT = 0x11
REP_NO_ARRIVAL = 0x0A
REP_LIMIT = 0x0B
REP_PEER_GONE = 0x05  # CLOSED: the peer left before its ACCEPT
TCP, UDP = 0x01, 0x02
MSG_ARRIVAL, MSG_CLOSED, MSG_REFUSE = 0x01, 0x02, 0x03


def listen_msg(binds, peers=("0.0.0.0", 0)):
    """binds: [(kind, port, arg)]."""
    body = bytes([len(binds)]) + b"".join(struct.pack(">BHH", k, p, a) for k, p, a in binds)
    return S.request_msg(CMD_LISTEN, peers[0], peers[1]) + body


def listen(proxy_port, binds, peers=("0.0.0.0", 0), auth=None, host="127.0.0.1"):
    """-> (control socket, rep, [(kind, (host, port), relay or None)])."""
    s = S.dial(proxy_port, host)
    if auth:
        assert S.negotiate(s, (S.M_USERPASS,)) == S.M_USERPASS
        assert S.userpass(s, *auth) == 0
    else:
        assert S.negotiate(s) == S.M_NONE
    s.sendall(listen_msg(binds, peers))
    return (s,) + read_listen_reply(s)


def read_listen_reply(s):
    head = S.recv_exact(s, 3)
    assert head[0] == 5
    S.read_addr(s)
    if head[1] != 0:
        return head[1], []
    n = S.recv_exact(s, 1)[0]
    out = []
    for _ in range(n):
        kind = S.recv_exact(s, 1)[0]
        _, h, p = S.read_addr(s)
        relay = None
        if kind == UDP:
            _, rh, rp = S.read_addr(s)
            relay = (rh, rp)
        out.append((kind, (h, p), relay))
    return head[1], out


def read_msg(s):
    """-> ("arrival", bind, id, (host, port)) | ("closed", id, rep)."""
    t = S.recv_exact(s, 1)[0]
    if t == MSG_ARRIVAL:
        b = S.recv_exact(s, 1)[0]
        ident = S.recv_exact(s, 8)
        _, h, p = S.read_addr(s)
        return ("arrival", b, ident, (h, p))
    if t == MSG_CLOSED:
        ident = S.recv_exact(s, 8)
        return ("closed", ident, S.recv_exact(s, 1)[0])
    raise AssertionError("unknown control message 0x%02x" % t)


def refuse(s, ident):
    s.sendall(bytes([MSG_REFUSE]) + ident)


def accept(proxy_port, ident, peer, auth=None, host="127.0.0.1"):
    """A data connection taking one arrival -> (socket, rep)."""
    d = S.dial(proxy_port, host)
    if auth:
        assert S.negotiate(d, (S.M_USERPASS,)) == S.M_USERPASS
        assert S.userpass(d, *auth) == 0
    else:
        assert S.negotiate(d) == S.M_NONE
    d.sendall(S.request_msg(CMD_ACCEPT, peer[0], peer[1]) + ident)
    head = S.recv_exact(d, 3)
    S.read_addr(d)
    return d, head[1]


def connect_peer(addr, timeout=10):
    return socket.create_connection(addr, timeout=timeout)
