"""An independent client for SOCKS5 method X'86' ("Secure Sockets Layer for
SOCKS Version 5", seed 004), written from the draft and docs/tls.md only,
with Python's ssl.MemoryBIO: TLS never touches the socket, every byte on
the wire is a frame this module builds or parses itself.

    +-----+-------+-----+----------+
    | VER | STATE | LEN |   DATA   |     VER X'01', LEN MSB first
    +-----+-------+-----+----------+
    |  1  |   1   |  2  | 0-65535  |
    +-----+-------+-----+----------+

STATE: X'01' handshake, X'02' options (and sub-authentication, as stp
decided), X'03' request and data, X'04' closing.

Every frame sent and received is kept in .frames as (direction, state,
data) so tests can check the wire byte for byte.
"""

import socket
import ssl
import struct

VER = 0x01
HANDSHAKE, OPTIONS, DATA, CLOSING = 1, 2, 3, 4
OPT_SUBAUTH, OPT_UDP_NAKED = 0x01, 0x10
METHOD_SSL, METHOD_SSL_IANA = 0x86, 0x06


def client_hello(ctx, server_hostname="localhost"):
    """A TLS client's first flight (its ClientHello) made with CTX in memory,
    for tests that send it alone, cut, or framed wrongly."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class ProtocolError(Exception):
    pass


class Closed(Exception):
    """The server closed the TCP connection."""


def frame(state, data, ver=VER):
    return struct.pack("!BBH", ver, state, len(data)) + data


class X86Client:
    def __init__(self, host, port, context=None, server_hostname=None, timeout=5.0,
                 source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.ctx = context
        self.server_hostname = server_hostname
        self.rbuf = b""
        self.frames = []        # ("out"|"in", state, data)
        self.plain = b""        # decrypted, not yet consumed
        self.plain_states = set()
        self.tls = None
        self.inc = self.out = None
        self.peer_closed = False
        self.held = b""

    # ---- raw socket ----

    def send_raw(self, b):
        self.sock.sendall(b)

    def _recv_exact(self, n):
        while len(self.rbuf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("server closed with %d of %d bytes" % (len(self.rbuf), n))
            self.rbuf += chunk
        b, self.rbuf = self.rbuf[:n], self.rbuf[n:]
        return b

    def read_eof(self, timeout=5.0):
        """Reads until the server closes; returns the bytes (raw)."""
        self.sock.settimeout(timeout)
        data = self.rbuf
        self.rbuf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    # ---- RFC 1928 greeting (cleartext) ----

    def greeting(self, methods=(METHOD_SSL,)):
        self.send_raw(bytes([5, len(methods)]) + bytes(methods))
        ver, method = self._recv_exact(2)
        if ver != 5:
            raise ProtocolError("method choice VER %d" % ver)
        return method

    # ---- frames ----

    def send_frame(self, state, data):
        self.frames.append(("out", state, data))
        self.send_raw(frame(state, data))

    def recv_frame(self):
        hdr = self._recv_exact(4)
        ver, state, length = struct.unpack("!BBH", hdr)
        if ver != VER:
            raise ProtocolError("frame VER %d" % ver)
        if state not in (1, 2, 3, 4):
            raise ProtocolError("frame STATE %d" % state)
        data = self._recv_exact(length)
        self.frames.append(("in", state, data))
        return state, data

    def _flush_tls(self, state):
        """Sends what TLS wrote, in one frame per 65535 bytes."""
        out = self.out.read()
        while out:
            self.send_frame(state, out[:65535])
            out = out[65535:]

    # ---- TLS inside the frames ----

    def handshake(self, pipeline=b"", pipeline_state=OPTIONS, hold=False):
        """Runs the TLS handshake in X'01' frames. pipeline: plaintext sent
        in the same TCP segment as our last flight (option list). hold: our
        last flight is not sent but kept in .held (tests send it later,
        alone or together with other frames)."""
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = self.ctx.wrap_bio(self.inc, self.out, server_side=False,
                                     server_hostname=self.server_hostname)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush_tls(HANDSHAKE)
                state, data = self.recv_frame()
                if state != HANDSHAKE:
                    raise ProtocolError("STATE %d during the handshake" % state)
                self.inc.write(data)
        last = self.out.read()
        wire = frame(HANDSHAKE, last) if last else b""
        if last:
            self.frames.append(("out", HANDSHAKE, last))
        if pipeline:
            self.tls.write(pipeline)
            enc = self.out.read()
            self.frames.append(("out", pipeline_state, enc))
            wire += frame(pipeline_state, enc)
        if hold:
            self.held = wire
        elif wire:
            self.send_raw(wire)  # one sendall: usually one TCP segment
        return self.tls.version(), self.tls.cipher()

    def seal(self, state, data):
        """Encrypts plaintext and returns it framed in STATE state, without
        sending it (tests put frames of any STATE into one write)."""
        self.tls.write(data)
        enc = self.out.read()
        self.frames.append(("out", state, enc))
        return frame(state, enc)

    def seal_close(self, state=CLOSING):
        """Our close_notify, framed in STATE state, not sent."""
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        enc = self.out.read()
        self.frames.append(("out", state, enc))
        return frame(state, enc)

    def send_plain(self, state, data):
        self.tls.write(data)
        self._flush_tls(state)

    def recv_plain(self, n, state):
        """n bytes of plaintext, every frame carrying them in STATE state.
        X'01' frames (TLS 1.3 tickets) are fed but carry no plaintext."""
        while len(self.plain) < n:
            try:
                got = self.tls.read(65536)
                if not got:
                    raise Closed("TLS close_notify")
                self.plain += got
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                raise Closed("TLS close_notify with %d of %d bytes" % (len(self.plain), n))
            st, data = self.recv_frame()
            if st == CLOSING:
                self.inc.write(data)
                continue
            if st != state and st != HANDSHAKE:
                raise ProtocolError("plaintext in STATE %d, want %d" % (st, state))
            self.inc.write(data)
        b, self.plain = self.plain[:n], self.plain[n:]
        return b

    def recv_until_close(self):
        """Plaintext until the server's close_notify (X'04'); returns it."""
        data = self.plain
        self.plain = b""
        while True:
            try:
                got = self.tls.read(65536)
                if not got:  # SSLObject.read gives b"" at close_notify
                    self.peer_closed = True
                    return data
                data += got
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                return data
            st, chunk = self.recv_frame()
            self.inc.write(chunk)

    # ---- the draft's messages ----

    def options(self, opts):
        """X'02': LEN OPTIONS out, the server's subset back."""
        self.send_plain(OPTIONS, bytes([len(opts)]) + bytes(opts))
        n = self.recv_plain(1, OPTIONS)[0]
        return list(self.recv_plain(n, OPTIONS)) if n else []

    def subauth_methods(self, methods):
        """RFC 1928-style list inside TLS (X'02'); returns the choice."""
        self.send_plain(OPTIONS, bytes([5, len(methods)]) + bytes(methods))
        ver, m = self.recv_plain(2, OPTIONS)
        if ver != 5:
            raise ProtocolError("sub-method choice VER %d" % ver)
        return m

    def userpass(self, user, password, state=OPTIONS):
        u, p = user.encode(), password.encode()
        self.send_plain(state, bytes([1, len(u)]) + u + bytes([len(p)]) + p)
        ver, status = self.recv_plain(2, state)
        if ver != 1:
            raise ProtocolError("RFC 1929 status VER %d" % ver)
        return status

    def request(self, cmd, host, port):
        """X'03': the SOCKS request; returns (REP, bound host, bound port)."""
        try:
            a = socket.inet_aton(host)
            addr = b"\x01" + a
        except OSError:
            h = host.encode()
            addr = b"\x03" + bytes([len(h)]) + h
        self.send_plain(DATA, bytes([5, cmd, 0]) + addr + struct.pack("!H", port))
        ver, rep, _, atyp = self.recv_plain(4, DATA)
        if ver != 5:
            raise ProtocolError("reply VER %d" % ver)
        if atyp == 1:
            bnd = socket.inet_ntoa(self.recv_plain(4, DATA))
        elif atyp == 4:
            bnd = socket.inet_ntop(socket.AF_INET6, self.recv_plain(16, DATA))
        else:
            bnd = self.recv_plain(self.recv_plain(1, DATA)[0], DATA).decode()
        bport = struct.unpack("!H", self.recv_plain(2, DATA))[0]
        return rep, bnd, bport

    def connect(self, host, port):
        return self.request(1, host, port)

    def close(self):
        """Orderly closure: our close_notify in X'04', then the server's
        (after any data it still had) until it answers with its own."""
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        self._flush_tls(CLOSING)
        rest = b""
        if not self.peer_closed:
            rest = self.recv_until_close()
        self.sock.close()
        return rest

    def abort(self):
        self.sock.close()
