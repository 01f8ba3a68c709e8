#!/usr/bin/python3
"""Writes fuzz seeds into tests/fuzz/corpus/<target>/ from the shared table
of valid wire examples (tests/unit/proto/wire_cases.h), plus a few invalid
and edge inputs per target. Seeds are named seed-*; other files in the
corpus (crashers found by libFuzzer, named crash-*) are left alone.

Run with Debian's python: /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "..", "unit", "proto", "wire_cases.h")
CORPUS = os.path.join(HERE, "corpus")

KIND_TARGET = {
    "GREETING": "greeting", "CHOICE": "greeting",
    "USERPASS": "userpass", "USERPASS_STATUS": "userpass",
    "ADDR": "request", "REQUEST": "request",
    "REPLY": "reply",
    "UDP": "udp",
    "SOCKS4": "socks4", "SOCKS4_REPLY": "socks4",
    "PROXY": "proxyproto",
}

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
# Inputs the table cannot hold: invalid ones and edges worth mutating from.
EXTRA = {
    "greeting": [b"\x04\x01\x00", b"\x05\x02\x00", b"GET / HTTP/1.1\r\n"],
    "userpass": [b"\x02\x01u\x01p", b"\x01\x03a\x00b\x01p", b"\x05\x00"],
    "request": [b"\x05\x01\x00\x02\x00", b"\x05\x01\x00\x03\x00\x00\x50",
                b"\x05\x01\x00\x03\x03a\x00b\x00\x50", b"\x05\x01\x00\x01\x7f"],
    "reply": [b"\x05\x00\x00\x09", b"\x04\x5a\x00\x00\x00\x00\x00\x00"],
    "udp": [b"\x00\x00", b"\x00\x00\x00\x04\x00\x00", b"\x00\x00\x00\x03\x00"],
    "socks4": [b"\x04\x01\x00\x50\x00\x00\x00\x01\x00\x00",
               b"\x04\x01\x00\x50\x01\x02\x03\x04" + b"u" * 256,
               b"\x04\x01\x00\x50\x00\x00\x00\x01\x00" + b"h" * 256],
    "proxyproto": [b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
                   b"PROXY TCP6 1::2::3 ::1 1 2\r\n",
                   b"PROXY UNKNOWN " + b"a" * 100 + b"\r\n",
                   SIG + b"\x21\x31\x00\x00",
                   SIG + b"\x21\x11\x04\xd9",
                   SIG + b"\x21\x11\x04\xd8" + bytes(0x4d8)],
}


def dns_response(an, tc=False):
    """A response to id 0x1234 for "example.com" AAAA with the given
    answer records (compressed names pointing at the question)."""
    hdr = b"\x12\x34" + bytes([0x81 | (0x02 if tc else 0), 0x80]) + \
        b"\x00\x01" + len(an).to_bytes(2, "big") + b"\x00\x00\x00\x00"
    q = b"\x07example\x03com\x00\x00\x1c\x00\x01"
    rr = b""
    for rtype, rdata in an:
        rr += b"\xc0\x0c" + rtype.to_bytes(2, "big") + b"\x00\x01\x00\x00\x0e\x10" + \
            len(rdata).to_bytes(2, "big") + rdata
    return hdr + q + rr


# A query for example.com AAAA (id 0x1234, RD), the same with an EDNS OPT
# (payload 1232, DO), and an NXDOMAIN answer with the zone's SOA (RFC 2308).
DNS_QUERY = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + \
    b"\x07example\x03com\x00\x00\x1c\x00\x01"
DNS_QUERY_EDNS = DNS_QUERY[:11] + b"\x01" + DNS_QUERY[12:] + \
    b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00"
DNS_NXDOMAIN_SOA = b"\x12\x34\x81\x83\x00\x01\x00\x00\x00\x01\x00\x00" + \
    DNS_QUERY[12:] + b"\xc0\x14\x00\x06\x00\x01\x00\x00\x0e\x10\x00\x1a" + \
    b"\x02ns\xc0\x14\x02hm\xc0\x14" + (1).to_bytes(4, "big") + (1200).to_bytes(4, "big") + \
    (120).to_bytes(4, "big") + (604800).to_bytes(4, "big") + (300).to_bytes(4, "big")


# Parsers above the codec (fuzz_noproxy, fuzz_url, fuzz_tlsframe, fuzz_dns,
# fuzz_authline): hand-written seeds, valid and edge cases.
HASH_Y = b"$y$j9T$k2XAnEHBqQ1Ct2aMXFKNa/$5Dhj9CFJAan/x9XCJ10MyOmpce2LDHg//3FMyevTOu3"
HASH_2B = b"$2b$04$KBCwKxOzLha2MUDgW0PjXeHeA6RFjwuQook1qJZxSCCFGf7mJ9Nk."
HASH_6 = (b"$6$rounds=1000$k2XAnEHBqQ1Ct2aM$Huy.Q4gpscj70skMMpP6en2E66FvqNaa8v.kzRPyp"
          b"Oo8iAYR8FG8LLmewRlZkdb3VMFDEWLmyGmCy0j5E0/eC0")
HASH_5 = b"$5$rounds=1000$k2XAnEHBqQ1Ct2aM$Kls6H7lUtpyaEQ3Fmz0/tFC4VrB9BYi3c/5BV/SxLR8"
PARSERS = {
    "noproxy": [b"localhost,127.0.0.1,::1\nlocalhost",
                b".example.com, 10.0.0.0/8\tfe80::/10\nwww.example.com",
                b"*\nanything.test",
                b"[2001:db8::]/32 192.168.1.0/25\n2001:db8::1",
                b"10.0.0.0/33,a:b,good.test\ngood.test",
                b"Example.COM\nWWW.example.com.",
                b"127.0.0.0/8\n::ffff:127.0.0.1",
                b"a.test b.test\tc.test,, d.test"],
    "url": [b"socks5://127.0.0.1:1080", b"socks5h://user:p%40ss@proxy.example:1081/",
            b"socks4a://[::1]:9050", b"socks4://u@h:65535",
            b"socks5s://proxy.example?ca=/etc/ca.pem&sni=proxy.example&udp-naked=1",
            b"socks5+tls://u:p@h:443?cert=/c.pem&key=/k.pem&insecure=true",
            b"socks5hs://[2001:db8::1]/?insecure=0", b"socks5://h:0",
            b"socks5+gssapi://h?gss-service=socks%40h&gss-protection=integrity&gss-mech=spnego",
            b"socks5h+gssapi://u@h:1080/?gss-protection=none&gss-service=rcmd/h@R",
            b"socks5://a:b:c", b"http://x", b"socks5://u%00@h"],
    "tlsframe": [b"\x00\x01\x01\x00\x10", b"\x00\x01\x03\xff\xff",
                 b"\x00\x01\x04\x00\x00", b"\x00\x02\x01\x00\x00",
                 b"\x00\x01\x05\x00\x00", b"\x01\x00", b"\x01\x02\x01\x10",
                 b"\x01\xff" + bytes(range(255))],
    "gssframe": [b"\x01\x01\x00\x06\x60\x81\x05\x06\x09\x2a", b"\x01\x02\x00\x03\x05\x04\x01",
                 b"\x01\x03\x00\x00", b"\x01\xff", b"\x01\xff\x01\x01", b"\x05\x01\x00\x00",
                 b"\x01\x04\x00\x00", b"\x01\x01\x00", b"\x01\x03\xff\xff\x00\x00",
                 b"\x01\x01\x00\x01\xaa\x01\x02\x00\x00"],
    "dns": [b"\x00" + dns_response([(1, b"\xc0\x00\x02\x01"),
                                     (28, b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01")]),
            b"\x00" + dns_response([(5, b"\x03www\xc0\x0c"), (1, b"\x0a\x00\x00\x01")]),
            b"\x00" + dns_response([], tc=True),
            b"\x00" + dns_response([(1, b"\x01\x02\x03")]),
            b"\x01example.com", b"\x01a..b", b"\x01" + b"a" * 64 + b".com",
            b"\x00" + DNS_QUERY[:-3] + b"\x01\x00\x01", b"\x00" + DNS_QUERY_EDNS],
    "dnsq": [b"\x00\x00\x1d" + DNS_QUERY, b"\x00\x00\x0b" + bytes(11), b"\x00\x04\xd0" + bytes(1232),
             b"\x00\x04\xd1", b"\x01\x00\x0c" + bytes(12), b"\x01\xff\xff" + bytes(64),
             b"\x01\x00\x1d" + DNS_QUERY[:20]],
    "dqmsg": [DNS_QUERY, DNS_QUERY_EDNS, dns_response([(28, bytes(15) + b"\x01")]),
              dns_response([(5, b"\x03www\xc0\x0c"), (1, b"\x0a\x00\x00\x01")]),
              DNS_NXDOMAIN_SOA, DNS_NXDOMAIN_SOA[:-3], dns_response([], tc=True),
              dns_response([(16, b"\x02hi")])[:-1]],
    "authline": [b"alice:" + HASH_Y + b":staff,ops\n# comment\n\n  \t",
                 b"bob:" + HASH_2B + b"\ncarol:" + HASH_6 + b":\ndave:" + HASH_5,
                 b"eve:$2y$04$KBCwKxOzLha2MUDgW0PjXeHeA6RFjwuQook1qJZxSCCFGf7mJ9Nk.:g",
                 b"nohash\nx::g\ny:$1$abc$def\nz:" + HASH_Y + b":a,,b\r",
                 b"u:" + HASH_Y + b":" + b",".join(b"g%d" % i for i in range(17))],
    # TRANSPARENT X'04' requests (whole) and the trailer alone
    "ptcl": [b"\x05\x04\x00\x01\x0a\x00\x00\x02\x00\x35\x11\x01\xc0\x00\x02\x07\x14\xb4",
             b"\x05\x04\x00\x04" + b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02\x00\x50\x06\x04" +
             b"\x20\x01\x0d\xb8" + bytes(11) + b"\x07\x9c\x40",
             b"\x05\x04\x00\x03\x0bdns.example\x00\x35\x11\x01\xc0\x00\x02\x07\x14\xb4",
             b"\x05\x04\x00\x01\x0a\x00\x00\x02\x00\x35\x11\x03\x03cli\x14\xb4",
             b"\x05\x04\x00\x01\x0a\x00\x00\x02\x00\x35\x84\x01\xc0\x00\x02\x07\x00\x00",
             b"\x05\x04\x00\x01\x0a\x00\x00\x02\x00\x35\x11\x02\x01\x02",
             b"\x05\x01\x00\x01\x0a\x00\x00\x02\x00\x50\x06\x01",
             b"\x11\x01\xc0\x00\x02\x07\x14\xb4"],
}
# SETUP_UDP_TUNNEL (docs/protocol.md 5.10): X'20' with each CRED, X'21',
# its replies with and without the DTLS token, TLS frames, and broken ones
EXTRA["tunnel"] = [
    b"\x05\x20\x00\x01\xc0\x00\x02\x01\x05\xa3\x01\x01\x01\x03gwa\x06secret"
    b"\x01\x0a\x00\x00\x02\x00\x35",
    b"\x05\x20\x00\x03\x0cstpd.example\x05\xa3\x01\x02\x02\x04" + b"\x20\x01\x0d\xb8" +
    bytes(11) + b"\x02\x13\x8c",
    b"\x05\x20\x00\x01\xc0\x00\x02\x01\x05\xa3\x01\x02\x00\x03\x03dns\x00\x35",
    b"\x05\x21\x00\x01\x0a\x00\x00\x02\x00\x35\x01\x01",
    b"\x05\x00\x00\x01\xc6\x33\x64\x01\x9c\x40" + bytes(range(16)),
    b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00",
    b"\x00\x03abc\x00\x00",
    b"\x05\x20\x00\x01\xc0\x00\x02\x01\x05\xa3\x02",
    b"\x05\x20\x00\x01\xc0\x00\x02\x01\x05\xa3\x01\x01\x01\x00",
]


# Multiplexing (docs/protocol.md 5.11, fuzz_mxauth): byte 0 even, an
# :authority value; odd, HTTP/2 frames after the client preface.
def h2_frame(ftype, flags, sid, payload):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def hpack_literal(name, value):
    """Literal header field without indexing, new name, no Huffman."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def h2_connect(sid, authority, method=b"CONNECT", extra=b""):
    block = hpack_literal(b":method", method) + hpack_literal(b":authority", authority) + extra
    return h2_frame(1, 0x4, sid, block)


EXTRA["mxauth"] = [
    b"\x00127.0.0.1:80", b"\x00[::1]:443", b"\x00[2001:db8::1]:65535",
    b"\x00example.com:8080", b"\x00" + b"a" * 255 + b":1", b"\x00" + b"a" * 256 + b":1",
    b"\x00host:0", b"\x00host:65536", b"\x00[1.2.3.4]:80", b"\x00[foo]:80", b"\x00::1:80",
    b"\x00host:+80", b"\x00user@host:80", b"\x00[::1]", b"\x00h%41:1", b"\x00h\x00x:1",
    b"\x01" + h2_connect(1, b"127.0.0.1:80") + h2_frame(0, 0, 1, b"hi"),
    b"\x01" + h2_connect(1, b"[::1]:22") + h2_connect(3, b"bad") +
    h2_connect(5, b"x:1", method=b"GET"),
    b"\x01" + h2_frame(1, 0, 1, hpack_literal(b":method", b"CONNECT")) +
    h2_frame(9, 0x4, 1, hpack_literal(b":authority", b"name.test:443")),
    b"\x01" + h2_connect(1, b"a:1", extra=hpack_literal(b":authority", b"b:2")),
    b"\x01" + h2_frame(6, 0, 0, bytes(8)) + h2_frame(3, 0, 1, bytes(4)) +
    h2_frame(8, 0, 0, b"\x00\x01\x00\x00") + h2_connect(1, b"h:9") + h2_frame(3, 0, 1, b"\x00\x00\x00\x08"),
]
EXTRA.update(PARSERS)


def feat_entry(scope, code, typ, name, value):
    return bytes([scope, code, typ, len(name)]) + name + bytes([len(value)]) + value


def feat_doc(entries, ver=1, flags=0):
    body = b"".join(entries)
    return bytes([ver, flags]) + len(body).to_bytes(2, "big") + body


# The features document (docs/protocol.md 5.6): stpd's shape, each type,
# unknown scope/type/version, and broken entries.
EXTRA["featdoc"] = [
    feat_doc([]),
    feat_doc([feat_entry(0, 0, 3, b"versions", b"\x04\x05"),
              feat_entry(0, 0, 3, b"methods", b"\x87\x00"),
              feat_entry(0, 0, 3, b"commands", b"\xf3\x01\x02\x03"),
              feat_entry(3, 4, 3, b"commands", b"\x01\x02"),
              feat_entry(0, 0, 1, b"max-sessions", b"\x27\x10"),
              feat_entry(2, 3, 1, b"datagram-max", b"\x01\x00\x00"),
              feat_entry(1, 0x86, 4, b"udp-naked", b""),
              feat_entry(1, 0x86, 3, b"subauth", b"\x02"),
              feat_entry(0, 0, 2, b"user", b"alice")]),
    feat_doc([feat_entry(0, 0, 1, b"big", bytes(range(1, 9)))], flags=1),
    feat_doc([feat_entry(9, 7, 0x7e, b"z", b"\xff\x00")]),
    feat_doc([b"\xde\xad"], ver=2),
    feat_doc([feat_entry(0, 0, 1, b"zero", b"")]),
    feat_doc([feat_entry(0, 0, 4, b"BAD", b"")]),
    b"\x01\x00\x10\x01",
    b"\x01\x00\x00\x09\x00\x00\x04\x01x\x00",
]


def c_unescape(body):
    """Bytes of one C string literal body (the escapes wire_cases.h uses)."""
    out = bytearray()
    i = 0
    simple = {"n": 10, "r": 13, "t": 9, "0": 0, "\\": 92, '"': 34, "'": 39}
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "x":
            m = re.match(r"[0-9a-fA-F]+", body[i + 2:])
            out.append(int(m.group(0), 16) & 0xFF)
            i += 2 + len(m.group(0))
        elif nxt in simple:
            out.append(simple[nxt])
            i += 2
        else:
            sys.exit("make_seeds: unsupported escape \\%s" % nxt)
    return bytes(out)


TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_]*))')


def expand(text, macros):
    """Concatenates adjacent string literals and string macros."""
    out = b""
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            sys.exit("make_seeds: cannot parse %r" % text[pos:])
        if m.group(1) is not None:
            out += c_unescape(m.group(1))
        else:
            out += macros[m.group(2)]
        pos = m.end()
    return out


def load_cases():
    src = open(CASES, encoding="utf-8").read().replace("\\\n", " ")
    macros = {}
    for m in re.finditer(r"^#define (WC_[A-Z0-9_]+) (\".*|WC_.*)$", src, re.M):
        macros[m.group(1)] = expand(m.group(2), macros)
    cases = []
    # WC(KIND, "name", code, atyp, port, bytes...),  possibly over several lines
    for m in re.finditer(r'\bWC\((\w+), "([^"]*)", [^,]+, [^,]+, [^,]+,(.*?)\),\s*$',
                         src, re.M | re.S):
        cases.append((m.group(1), m.group(2), expand(m.group(3), macros)))
    if len(cases) < 40:
        sys.exit("make_seeds: only %d cases parsed" % len(cases))
    return cases


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def main():
    counts = {}
    for target in set(KIND_TARGET.values()) | set(EXTRA):
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.remove(os.path.join(d, f))
    for kind, name, data in load_cases():
        target = KIND_TARGET[kind]
        path = os.path.join(CORPUS, target, "seed-%s-%s" % (kind.lower(), slug(name)))
        with open(path, "wb") as f:
            f.write(data)
        counts[target] = counts.get(target, 0) + 1
    for target, inputs in EXTRA.items():
        for i, data in enumerate(inputs):
            with open(os.path.join(CORPUS, target, "seed-extra-%d" % i), "wb") as f:
                f.write(data)
            counts[target] = counts.get(target, 0) + 1
    for target in sorted(counts):
        print("%-11s %d seeds" % (target, counts[target]))


if __name__ == "__main__":
    main()
