/*
 * fuzz_mxauth.c - what stpd's multiplexing reads from a stream's HEADERS
 * (src/ext/mux/mx_req.c, docs/protocol.md 5.11).
 *
 * Byte 0 even: the rest is one `:authority` value for mx_authority_parse.
 * Checks: an accepted value has no NUL, fits MX_AUTHORITY_MAX, gives port
 * 1-65535 and a known ATYP (a name of 1-255 octets with neither ':' nor
 * brackets); written back (dotted quad, [IPv6], name) it parses to the
 * same address; a bracketed value is only ever IPv6.
 *
 * Byte 0 odd: the rest is what a client sends after the HTTP/2 preface,
 * fed to an nghttp2 server session whose header callbacks are stpd's
 * (mx_req_header, mx_req_target), as in mx_ext.c: HPACK, CONTINUATION
 * and every frame type on the way to the same checks for each request.
 */
#include <arpa/inet.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext/mux/mx_req.h"
#include "fuzz_check.h"

static void check_addr(const char *in, size_t n, const struct socks_addr *a)
{
	FUZZ_CHECK(n <= MX_AUTHORITY_MAX && memchr(in, '\0', n) == NULL);
	FUZZ_CHECK(a->port >= 1);
	char back[MX_AUTHORITY_MAX + 8], ip[INET6_ADDRSTRLEN];
	switch (a->atyp) {
	case SOCKS_ATYP_IPV4:
		FUZZ_CHECK(in[0] != '[');
		inet_ntop(AF_INET, a->u.v4, ip, sizeof(ip));
		snprintf(back, sizeof(back), "%s:%u", ip, a->port);
		break;
	case SOCKS_ATYP_IPV6:
		FUZZ_CHECK(in[0] == '[');
		inet_ntop(AF_INET6, a->u.v6, ip, sizeof(ip));
		snprintf(back, sizeof(back), "[%s]:%u", ip, a->port);
		break;
	case SOCKS_ATYP_DOMAIN:
		FUZZ_CHECK(a->namelen >= 1 && strlen(a->u.name) == a->namelen);
		FUZZ_CHECK(strpbrk(a->u.name, ":[]@/ ") == NULL);
		snprintf(back, sizeof(back), "%s:%u", a->u.name, a->port);
		break;
	default:
		FUZZ_CHECK(!"unknown ATYP");
	}
	struct socks_addr again;
	FUZZ_CHECK(mx_authority_parse(back, strlen(back), &again) == 0);
	FUZZ_CHECK(memcmp(&again, a, sizeof(again)) == 0);
}

static void one_authority(const uint8_t *data, size_t size)
{
	char *in = malloc(size ? size : 1); /* exactly size bytes for ASan */
	FUZZ_CHECK(in != NULL);
	memcpy(in, data, size);
	struct socks_addr a;
	if (mx_authority_parse(in, size, &a) == 0)
		check_addr(in, size, &a);
	free(in);
}

/* ---- through nghttp2, as stpd reads a stream's HEADERS ---- */

struct fz_stream {
	struct mx_req req;
	struct fz_stream *prev, *next; /* every one not yet closed */
};

static struct fz_stream *open_streams;

static void fz_free(struct fz_stream *st)
{
	if (st->prev)
		st->prev->next = st->next;
	else
		open_streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	free(st);
}

static int cb_begin(nghttp2_session *h2, const nghttp2_frame *fr, void *user)
{
	(void)user;
	if (fr->hd.type != NGHTTP2_HEADERS || fr->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct fz_stream *st = calloc(1, sizeof(*st));
	FUZZ_CHECK(st != NULL);
	if (nghttp2_session_set_stream_user_data(h2, fr->hd.stream_id, st) != 0) {
		free(st);
		return 0;
	}
	st->next = open_streams;
	if (open_streams)
		open_streams->prev = st;
	open_streams = st;
	return 0;
}

static int cb_header(nghttp2_session *h2, const nghttp2_frame *fr, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	(void)flags;
	(void)user;
	struct fz_stream *st = nghttp2_session_get_stream_user_data(h2, fr->hd.stream_id);
	if (fr->hd.type == NGHTTP2_HEADERS && st)
		mx_req_header(&st->req, name, namelen, value, valuelen);
	return 0;
}

static int cb_frame(nghttp2_session *h2, const nghttp2_frame *fr, void *user)
{
	(void)user;
	struct fz_stream *st = nghttp2_session_get_stream_user_data(h2, fr->hd.stream_id);
	if (!st || fr->hd.type != NGHTTP2_HEADERS || fr->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct socks_addr a;
	uint8_t rep = mx_req_target(&st->req, &a);
	FUZZ_CHECK(rep == SOCKS5_REP_SUCCEEDED || rep == SOCKS5_REP_ATYP_NOT_SUPPORTED);
	if (rep == SOCKS5_REP_SUCCEEDED) {
		FUZZ_CHECK(st->req.is_connect && !st->req.bad_authority);
		check_addr(st->req.authority, st->req.authlen, &a);
	}
	return 0;
}

static int cb_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
	(void)code;
	(void)user;
	struct fz_stream *st = nghttp2_session_get_stream_user_data(h2, id);
	if (st) {
		nghttp2_session_set_stream_user_data(h2, id, NULL);
		fz_free(st);
	}
	return 0;
}

static void through_nghttp2(const uint8_t *data, size_t size)
{
	static const char preface[] = NGHTTP2_CLIENT_MAGIC "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
	nghttp2_session_callbacks *cbs;
	nghttp2_session *h2;
	FUZZ_CHECK(nghttp2_session_callbacks_new(&cbs) == 0);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin);
	nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_close);
	FUZZ_CHECK(nghttp2_session_server_new(&h2, cbs, NULL) == 0);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100 } };
	nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, iv, 1);
	if (nghttp2_session_mem_recv(h2, (const uint8_t *)preface, sizeof(preface) - 1) >= 0) {
		uint8_t *copy = malloc(size ? size : 1);
		FUZZ_CHECK(copy != NULL);
		memcpy(copy, data, size);
		/* In two pieces: frames cut anywhere must read the same. */
		size_t cut = size ? data[0] % (size + 1) : 0;
		if (nghttp2_session_mem_recv(h2, copy, cut) >= 0)
			nghttp2_session_mem_recv(h2, copy + cut, size - cut);
		free(copy);
	}
	nghttp2_session_del(h2); /* calls no stream-close callback */
	while (open_streams)
		fz_free(open_streams);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		one_authority(data + 1, size - 1);
	else
		through_nghttp2(data + 1, size - 1);
	return 0;
}
