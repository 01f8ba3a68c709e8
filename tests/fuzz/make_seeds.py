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
    for target in set(KIND_TARGET.values()):
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
