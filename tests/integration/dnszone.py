"""A dnsmasq with MX, TXT, SRV, PTR, A and AAAA records, authoritative for
example.test (so that negative answers carry the SOA that RFC 2308
negative caching needs), on 127.0.0.1 and an ephemeral port: the resolver
stpd asks in the DNS QUERY X'F2' tests. It never forwards anywhere
(--no-resolv, names outside the zone are REFUSED)."""

import os
import random
import socket
import struct

import services

ZONE = "example.test"
SOA_MINIMUM = 300
# CAA 0 issue "letsencrypt.org" (RFC 8659), and a DNSKEY (flags 257, protocol
# 3, algorithm 13, a made-up key: only carried, never checked)
CAA_RDATA = b"\x00\x05issue" + b"letsencrypt.org"
DNSKEY_RDATA = b"\x01\x01\x03\x0d" + bytes(range(64))


class Zone:
    def __init__(self, workdir):
        self.log_path = os.path.join(workdir, "dnszone.log")
        self.proc, self.port, self.log = services.start_dnsmasq(self.log_path, "127.0.0.1", [
            "--auth-server=ns.%s,127.0.0.1" % ZONE,
            "--auth-zone=%s,127.0.0.0/24,::1/128" % ZONE, "--auth-ttl=%d" % SOA_MINIMUM,
            "--auth-soa=1,hostmaster.%s,1200,120,604800" % ZONE,
            "--host-record=web.%s,127.0.0.1,::1" % ZONE,
            "--host-record=ptr.%s,127.0.0.77" % ZONE,
            "--mx-host=%s,mail.%s,10" % (ZONE, ZONE),
            "--txt-record=%s,v=spf1 -all,second string" % ZONE,
            "--txt-record=big.%s,%s" % (ZONE, ",".join(["x" * 250] * 8)),
            "--srv-host=_sip._tcp.%s,sip.%s,5060,1,2" % (ZONE, ZONE),
            "--dns-rr=%s,257,%s" % (ZONE, CAA_RDATA.hex()),
            "--dns-rr=%s,48,%s" % (ZONE, DNSKEY_RDATA.hex())], log_mode="ab")

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def queries(self, name):
        """How many queries for name dnsmasq logged so far."""
        self.log.flush()
        with open(self.log_path) as f:
            return sum(1 for ln in f if ("query[" in ln or "auth[" in ln) and (" %s from" % name) in ln)

    def close(self):
        services.stop_process(self.proc, 5)
        self.log.close()


# ---- a DNS message codec for the tests only (RFC 1035 4.1) ---------------

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
         "AAAA": 28, "SRV": 33, "OPT": 41, "DNSKEY": 48, "CAA": 257}


def query(name, qtype, qid=None, rd=True, edns=None, do=False):
    """A query message; edns: None, or the UDP payload size of an OPT RR
    (with the DO bit when do)."""
    qid = random.randrange(65536) if qid is None else qid
    hdr = struct.pack(">HHHHHH", qid, 0x0100 if rd else 0, 1, 0, 0, 1 if edns else 0)
    q = b""
    for label in name.rstrip(".").split("."):
        if label:
            q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", TYPES.get(qtype, qtype) if isinstance(qtype, str)
                             else qtype, 1)
    if edns:
        q += b"\0" + struct.pack(">HHIH", 41, edns, 0x8000 if do else 0, 0)
    return hdr + q


def _name(m, off):
    labels, jumped, end = [], False, None
    while True:
        n = m[off]
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = off + 2
            off, jumped = ((n & 0x3F) << 8) | m[off + 1], True
            continue
        if n == 0:
            return ".".join(labels), (end if jumped else off + 1)
        labels.append(m[off + 1:off + 1 + n].decode())
        off += 1 + n


def parse(m):
    """(id, flags, rcode, [(section, name, type, ttl, rdata)])."""
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", m[:12])
    off = 12
    for _ in range(qd):
        _, off = _name(m, off)
        off += 4
    rrs = []
    for sec, count in ((0, an), (1, ns), (2, ar)):
        for _ in range(count):
            name, off = _name(m, off)
            t, _c, ttl, rdlen = struct.unpack(">HHIH", m[off:off + 10])
            rrs.append((sec, name, t, ttl, m[off + 10:off + 10 + rdlen]))
            off += 10 + rdlen
    return qid, flags, flags & 0xF, rrs


# ---- a static answerer: fixed RCODEs and a signed record set -------------

RRSIG = 46
SIGNED = "signed.%s" % ZONE
SIGNED_A = bytes([192, 0, 2, 1])
# RRSIG over SIGNED's A (RFC 4034 3.1): type covered A, algorithm 13,
# 3 labels, original TTL 300, expiration, inception, key tag, the signer,
# then a 64-byte signature (made up: carried, never checked).
RRSIG_RDATA = (struct.pack(">HBBIIIH", 1, 13, 3, 300, 0x70000000, 0x60000000, 4242)
               + b"\x07example\x04test\x00" + bytes(range(64, 128)))


def _rr(name_off, rtype, ttl, rdata):
    return struct.pack(">HHHIH", 0xC000 | name_off, rtype, 1, ttl, len(rdata)) + rdata


class Fixed:
    """A DNS server over UDP on 127.0.0.1 answering from a fixed table, for
    what dnsmasq cannot do: answer SERVFAIL or NOTIMP for a name, and serve
    a record set with its RRSIG (only when the query has EDNS with DO, as a
    signing server does). Names: servfail.ZONE (RCODE 2), notimp.ZONE (4),
    SIGNED (A + RRSIG); anything else REFUSED (5)."""

    RCODES = {"servfail.%s" % ZONE: 2, "notimp.%s" % ZONE: 4}

    def __init__(self):
        import threading
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.asked = []
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def answer(self, q):
        qid, flags = struct.unpack(">HH", q[:4])
        name, off = _name(q, 12)
        qtype = struct.unpack(">H", q[off:off + 2])[0]
        question = q[12:off + 4]
        do = False
        if struct.unpack(">H", q[10:12])[0]:  # an OPT: its TTL field holds DO
            do = bool(struct.unpack(">I", q[off + 4 + 5:off + 4 + 9])[0] & 0x8000)
        self.asked.append((name, qtype, do))
        rcode, rrs = self.RCODES.get(name, 5), []
        if name == SIGNED:
            rcode = 0
            if qtype == 1:
                rrs.append(_rr(12, 1, 300, SIGNED_A))
                if do:
                    rrs.append(_rr(12, RRSIG, 300, RRSIG_RDATA))
        opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000 if do else 0, 0) \
            if struct.unpack(">H", q[10:12])[0] else b""
        hdr = struct.pack(">HHHHHH", qid, 0x8400 | (flags & 0x0110) | rcode, 1, len(rrs), 0,
                          1 if opt else 0)
        return hdr + question + b"".join(rrs) + opt

    def _serve(self):
        while not self.stop:
            try:
                q, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self.sock.sendto(self.answer(q), peer)
            except (IndexError, struct.error):
                pass  # not a query this table knows how to read: no answer

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()
