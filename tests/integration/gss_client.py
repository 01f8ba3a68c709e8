"""An independent RFC 1961 client (method X'01', GSS-API for SOCKS5) for the
tests, written from the RFC with python3-gssapi and raw bytes: nothing of
libstp. Credentials come from an explicit ccache (cred store), so tests can
act as several users in one process; KRB5_CONFIG must name the test KDC's
krb5.conf (the gss_env fixture sets it).

Frames: VER X'01', MTYP (1 context, 2 protection level, 3 data, X'FF'
abort, which has no LEN), LEN (2 octets, MSB first), TOKEN."""

import struct

import gssapi

import socksraw as S

KRB5 = gssapi.OID.from_int_seq("1.2.840.113554.1.2.2")
SPNEGO = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")


class Aborted(Exception):
    """The server sent X'01' X'FF'."""


def frame(mtyp, token):
    return bytes([1, mtyp]) + struct.pack(">H", len(token)) + token


def read_frame(s):
    """(mtyp, token); raises Aborted on X'01' X'FF', EOFError on close."""
    head = S.recv_exact(s, 2)
    assert head[0] == 1, "bad VER %r" % head
    if head[1] == 0xFF:
        raise Aborted()
    (n,) = struct.unpack(">H", S.recv_exact(s, 2))
    return head[1], S.recv_exact(s, n)


class GssSocks:
    """One connection through method X'01'. level: what we ask for (0, 1,
    2, 3); after handshake(), self.level is what the server chose."""

    def __init__(self, sock, ccache, service="socks@localhost", mech=KRB5):
        self.s = sock
        creds = gssapi.Credentials(usage="initiate", store={b"ccache": ccache.encode()})
        name = gssapi.Name(service, gssapi.NameType.hostbased_service)
        flags = (gssapi.RequirementFlag.mutual_authentication |
                 gssapi.RequirementFlag.integrity |
                 gssapi.RequirementFlag.confidentiality)
        self.ctx = gssapi.SecurityContext(name=name, creds=creds, mech=mech, flags=flags,
                                          usage="initiate")
        self.level = None
        self.inbuf = b""

    def greet(self):
        self.s.sendall(b"\x05\x01\x01")
        assert S.recv_exact(self.s, 2) == b"\x05\x01", "server did not choose X'01'"

    def context(self, first_token=None):
        """RFC 1961 section 3: tokens until the context is established."""
        tok = first_token if first_token is not None else self.ctx.step()
        while True:
            self.s.sendall(frame(1, tok))
            if self.ctx.complete:
                return
            mtyp, tok = read_frame(self.s)
            assert mtyp == 1, "MTYP %d during context establishment" % mtyp
            tok = self.ctx.step(tok)
            if self.ctx.complete and not tok:
                return

    def negotiate(self, level, unwrapped=False):
        """RFC 1961 section 4: returns the server's level."""
        if unwrapped:
            self.s.sendall(frame(2, bytes([level])))
        else:
            self.s.sendall(frame(2, self.ctx.wrap(bytes([level]), False).message))
        mtyp, tok = read_frame(self.s)
        assert mtyp == 2
        self.level = tok[0] if unwrapped else self.ctx.unwrap(tok).message[0]
        return self.level

    def handshake(self, level):
        self.greet()
        self.context()
        return self.negotiate(level)

    # -- data (RFC 1961 section 5), or clear at level 0

    def send(self, data):
        if self.level == 0:
            self.s.sendall(data)
            return
        for off in range(0, len(data), 32768):
            w = self.ctx.wrap(data[off:off + 32768], self.level == 2)
            assert w.encrypted == (self.level == 2)
            self.s.sendall(frame(3, w.message))

    def recv_exact(self, n):
        if self.level == 0:
            return S.recv_exact(self.s, n)
        while len(self.inbuf) < n:
            mtyp, tok = read_frame(self.s)
            assert mtyp == 3, "MTYP %d during data flow" % mtyp
            u = self.ctx.unwrap(tok)
            assert u.encrypted == (self.level == 2), "protection differs from the level"
            self.inbuf += u.message
        out, self.inbuf = self.inbuf[:n], self.inbuf[n:]
        return out

    def connect(self, host, port):
        """CONNECT through the protection; returns the REP code."""
        self.send(S.request_msg(S.CMD_CONNECT, host, port))
        head = self.recv_exact(4)
        alen = {1: 4, 4: 16}.get(head[3])
        if alen is None:
            alen = self.recv_exact(1)[0]
        self.recv_exact(alen + 2)
        return head[1]
