/*
 * wire_cases.h - valid wire examples for every parser in src/proto.
 *
 * The unit tests run each one through every-cut, byte-at-a-time, trailing
 * and corruption checks, and tests/fuzz/make_seeds.py turns the same table
 * into fuzz corpus seeds. For make_seeds.py, keep to this shape: one WC()
 * per line, bytes as adjacent string literals or WC_* string macros, and
 * a "\xNN" escape never followed directly by a hex digit in one literal.
 *
 * code, atyp, port: the fields a parser must report for the case.
 *   code = nmethods | method | ulen | status | cmd | rep | frag | family
 */
#ifndef STP_TESTS_WIRE_CASES_H
#define STP_TESTS_WIRE_CASES_H

#include <stddef.h>
#include <stdint.h>

enum wire_kind {
	WC_GREETING,
	WC_CHOICE,
	WC_USERPASS,
	WC_USERPASS_STATUS,
	WC_ADDR,
	WC_REQUEST,
	WC_REPLY,
	WC_UDP,
	WC_SOCKS4,
	WC_SOCKS4_REPLY,
	WC_PROXY,
};

struct wire_case {
	enum wire_kind kind;
	const char *name;
	unsigned code, atyp, port;
	const uint8_t *bytes;
	size_t len;
};

/* 255-byte domain name and 255-byte USERID / credentials. */
#define WC_S10 "abcdefghi."
#define WC_S50 WC_S10 WC_S10 WC_S10 WC_S10 WC_S10
#define WC_NAME255 WC_S50 WC_S50 WC_S50 WC_S50 WC_S50 "local"
/* 255 method codes 0x00..0x0E, seventeen times. */
#define WC_M15 "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e"
#define WC_M255 WC_M15 WC_M15 WC_M15 WC_M15 WC_M15 WC_M15 WC_M15 WC_M15 WC_M15 \
	WC_M15 WC_M15 WC_M15 WC_M15 WC_M15 WC_M15 WC_M15 WC_M15
/* "ffff:" x7 + "ffff": the longest IPv6 text. */
#define WC_V6MAX "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
#define WC_PP2SIG "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"

#define WC(kind, name, code, atyp, port, bytes) \
	{WC_##kind, name, code, atyp, port, (const uint8_t *)(bytes), sizeof(bytes) - 1}

static const struct wire_case wire_cases[] = {
	WC(GREETING, "one method", 1, 0, 0, "\x05\x01\x00"),
	WC(GREETING, "none+userpass", 2, 0, 0, "\x05\x02\x00\x02"),
	WC(GREETING, "zero methods", 0, 0, 0, "\x05\x00"),
	WC(GREETING, "255 methods", 255, 0, 0, "\x05\xff" WC_M255),
	WC(GREETING, "ssl both codes", 3, 0, 0, "\x05\x03\x86\x06\x02"),

	WC(CHOICE, "none", 0x00, 0, 0, "\x05\x00"),
	WC(CHOICE, "userpass", 0x02, 0, 0, "\x05\x02"),
	WC(CHOICE, "no acceptable", 0xff, 0, 0, "\x05\xff"),

	WC(USERPASS, "alice", 5, 0, 0, "\x01\x05" "alice" "\x06" "secret"),
	WC(USERPASS, "empty both", 0, 0, 0, "\x01\x00\x00"),
	WC(USERPASS, "one byte each", 1, 0, 0, "\x01\x01" "u" "\x01" "p"),
	WC(USERPASS, "255 each", 255, 0, 0, "\x01\xff" WC_NAME255 "\xff" WC_NAME255),
	WC(USERPASS, "binary password", 3, 0, 0, "\x01\x03" "bob" "\x04\xff\x80\x01\x7f"),

	WC(USERPASS_STATUS, "success", 0, 0, 0, "\x01\x00"),
	WC(USERPASS_STATUS, "failure", 1, 0, 0, "\x01\x01"),

	WC(ADDR, "ipv4", 0, 1, 80, "\x01\x7f\x00\x00\x01\x00\x50"),
	WC(ADDR, "ipv6", 0, 4, 443,
	   "\x04\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01\xbb"),
	WC(ADDR, "domain len 1", 0, 3, 53, "\x03\x01" "a" "\x00\x35"),
	WC(ADDR, "domain len 255", 0, 3, 65535, "\x03\xff" WC_NAME255 "\xff\xff"),
	WC(ADDR, "domain utf8 bytes", 0, 3, 1, "\x03\x04\xc3\xa9\xc3\xa9\x00\x01"),

	WC(REQUEST, "connect ipv4", 1, 1, 80, "\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"),
	WC(REQUEST, "bind ipv6", 2, 4, 8080,
	   "\x05\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
	   "\x1f\x90"),
	WC(REQUEST, "udp associate any", 3, 1, 0, "\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00"),
	WC(REQUEST, "connect domain len 1", 1, 3, 443, "\x05\x01\x00\x03\x01" "a" "\x01\xbb"),
	WC(REQUEST, "connect domain len 255", 1, 3, 65535,
	   "\x05\x01\x00\x03\xff" WC_NAME255 "\xff\xff"),
	WC(REQUEST, "transparent", 4, 1, 7, "\x05\x04\x00\x01\x0a\x00\x00\x01\x00\x07"),
	WC(REQUEST, "mcast join", 5, 1, 5000, "\x05\x05\x00\x01\xe0\x00\x00\x01\x13\x88"),
	WC(REQUEST, "unassigned cmd", 0x7f, 3, 80, "\x05\x7f\x00\x03\x07" "example" "\x00\x50"),

	WC(REPLY, "succeeded ipv4", 0, 1, 1080, "\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"),
	WC(REPLY, "refused any", 5, 1, 0, "\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00"),
	WC(REPLY, "bind ipv6", 0, 4, 40000,
	   "\x05\x00\x00\x04\xfe\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
	   "\x9c\x40"),
	WC(REPLY, "domain", 0, 3, 80, "\x05\x00\x00\x03\x0b" "example.org" "\x00\x50"),
	WC(REPLY, "mcast no send", 0xb0, 1, 0, "\x05\xb0\x00\x01\xe0\x00\x00\x01\x00\x00"),

	WC(UDP, "ipv4 with data", 0, 1, 53, "\x00\x00\x00\x01\x7f\x00\x00\x01\x00\x35" "hello"),
	WC(UDP, "ipv6 no data", 0, 4, 9,
	   "\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
	   "\x00\x09"),
	WC(UDP, "domain len 1", 0, 3, 7, "\x00\x00\x00\x03\x01" "x" "\x00\x07" "data"),
	WC(UDP, "domain len 255", 0, 3, 1, "\x00\x00\x00\x03\xff" WC_NAME255 "\x00\x01" "z"),
	WC(UDP, "fragment 1", 1, 1, 9, "\x00\x00\x01\x01\x0a\x00\x00\x02\x00\x09" "frag"),

	WC(SOCKS4, "connect with userid", 1, 1, 80, "\x04\x01\x00\x50\x01\x02\x03\x04" "bob" "\x00"),
	WC(SOCKS4, "empty userid", 1, 1, 22, "\x04\x01\x00\x16\x7f\x00\x00\x01\x00"),
	WC(SOCKS4, "bind", 2, 1, 0, "\x04\x02\x00\x00\x00\x00\x00\x00" "u" "\x00"),
	WC(SOCKS4, "4a domain", 1, 3, 443,
	   "\x04\x01\x01\xbb\x00\x00\x00\x01\x00" "example.com" "\x00"),
	WC(SOCKS4, "4a domain len 1", 1, 3, 80, "\x04\x01\x00\x50\x00\x00\x00\x01" "id" "\x00" "h" "\x00"),
	WC(SOCKS4, "4a 255 userid 255 host", 1, 3, 8080,
	   "\x04\x01\x1f\x90\x00\x00\x00\x01" WC_NAME255 "\x00" WC_NAME255 "\x00"),
	WC(SOCKS4, "userid 255", 1, 1, 80,
	   "\x04\x01\x00\x50\x0a\x00\x00\x01" WC_NAME255 "\x00"),

	WC(SOCKS4_REPLY, "granted", 90, 0, 1080, "\x00\x5a\x04\x38\x7f\x00\x00\x01"),
	WC(SOCKS4_REPLY, "rejected", 91, 0, 0, "\x00\x5b\x00\x00\x00\x00\x00\x00"),

	WC(PROXY, "v1 tcp4", 4, 0, 56324, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
	WC(PROXY, "v1 tcp6", 6, 0, 1, "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 1 65535\r\n"),
	WC(PROXY, "v1 tcp6 longest", 6, 0, 65535,
	   "PROXY TCP6 " WC_V6MAX " " WC_V6MAX " 65535 65535\r\n"),
	WC(PROXY, "v1 unknown", 0, 0, 0, "PROXY UNKNOWN\r\n"),
	WC(PROXY, "v1 unknown 107", 0, 0, 0,
	   "PROXY UNKNOWN " WC_V6MAX " " WC_V6MAX " 65535 65535\r\n"),
	WC(PROXY, "v2 local", 0, 0, 0, WC_PP2SIG "\x20\x00\x00\x00"),
	WC(PROXY, "v2 tcp4", 4, 0, 1234,
	   WC_PP2SIG "\x21\x11\x00\x0c\x0a\x00\x00\x01\x0a\x00\x00\x02\x04\xd2\x00\x50"),
	WC(PROXY, "v2 udp6", 6, 0, 53,
	   WC_PP2SIG "\x21\x22\x00\x24"
	   "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
	   "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
	   "\x00\x35\x00\x35"),
	WC(PROXY, "v2 tcp4 with tlvs", 4, 0, 80,
	   WC_PP2SIG "\x21\x11\x00\x17\x7f\x00\x00\x01\x7f\x00\x00\x01\x00\x50\x01\xbb"
	   "\x04\x00\x08" "abcdefgh"),
	WC(PROXY, "v2 proxy unspec", 0, 0, 0, WC_PP2SIG "\x21\x00\x00\x03" "abc"),
};

#define WIRE_CASES_N (sizeof(wire_cases) / sizeof(wire_cases[0]))

#endif
