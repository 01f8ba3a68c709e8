/*
 * test_mcast_crypt.c - the AEAD framing of multicast datagrams
 * (src/mcrypto/mc_crypt.c) and the replay window (mc_replay.c), the one
 * copy that stpd's relay and libstp's memberships both link.
 * The known-answer frames were computed with python3-cryptography from
 * docs/mcast.md, so stpd and an independent client agree byte for byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "mcrypto/mc_crypt.h"
#include "mcrypto/mc_replay.h"

static const uint8_t payload[] = "hello multicast"; /* 15 bytes + NUL, NUL not sent */

/* AES-256-GCM and ChaCha20-Poly1305, key 00..1f, member frame id 5 seq 1. */
static const uint8_t kat_gcm[] = {
	0x7d, 0xb3, 0xd3, 0x90, 0x2b, 0xd4, 0x5d, 0x6b, 0x62, 0x5a, 0x38, 0x5a, 0x8d, 0xd5, 0x4e,
	0x8e, 0x54, 0x2d, 0x55, 0xab, 0x33, 0x28, 0x1c, 0x25, 0x3d, 0xb3, 0x17, 0xb5, 0x71, 0x1c,
	0x22,
};
static const uint8_t kat_chacha[] = {
	0x01, 0x39, 0x10, 0xb5, 0x5e, 0x2a, 0xd5, 0x0f, 0x41, 0x05, 0x17, 0x4c, 0xd2, 0x67, 0x63,
	0xfa, 0xad, 0x36, 0x1d, 0xbe, 0xdb, 0xa4, 0xa7, 0x6b, 0x22, 0xf1, 0x32, 0x71, 0x8c, 0x8f,
	0xfd,
};

static void key_0_31(uint8_t *k)
{
	for (int i = 0; i < MCAST_KEY_LEN; i++)
		k[i] = (uint8_t)i;
}

static void check_kat(uint8_t suite, const uint8_t *want, size_t wlen)
{
	struct mc_aead *a = mc_aead_new();
	uint8_t key[MCAST_KEY_LEN], out[128], pt[128];
	struct mcast_frame f = { .kind = MCAST_KIND_MEMBER, .id = 5, .seq = 1 }, g;
	struct socks_err err;

	key_0_31(key);
	size_t n = mc_frame_seal(a, suite, key, &f, payload, 15, out, sizeof(out));
	assert_int_equal(n, 14 + wlen);
	assert_memory_equal(out + 14, want, wlen);
	assert_int_equal(n, mc_frame_len(suite, &f, 15));
	assert_int_equal(mcast_frame_parse(&g, out, n, &err), SOCKS_DONE);
	assert_int_equal(mc_frame_open(a, suite, key, &g, out, n, pt, sizeof(pt)), 15);
	assert_memory_equal(pt, payload, 15);
	/* Every single flipped bit, header (the AAD) included, is caught. */
	for (size_t i = 0; i < n; i++)
		for (int bit = 0; bit < 8; bit++) {
			out[i] ^= (uint8_t)(1 << bit);
			if (mcast_frame_parse(&g, out, n, &err) == SOCKS_DONE)
				assert_int_equal(mc_frame_open(a, suite, key, &g, out, n, pt, sizeof(pt)),
						 -1);
			out[i] ^= (uint8_t)(1 << bit);
		}
	/* Another key (another member's) does not open it. */
	key[0] ^= 1;
	assert_int_equal(mcast_frame_parse(&g, out, n, &err), SOCKS_DONE);
	assert_int_equal(mc_frame_open(a, suite, key, &g, out, n, pt, sizeof(pt)), -1);
	/* Truncated: no tag. */
	key[0] ^= 1;
	assert_int_equal(mc_frame_open(a, suite, key, &g, out, 14 + 15, pt, sizeof(pt)), -1);
	assert_int_equal(mc_frame_open(a, suite, key, &g, out, 14 + 3, pt, sizeof(pt)), -1);
	mc_aead_free(a);
}

static void test_gcm_kat(void **state)
{
	check_kat(MCAST_SUITE_AES256GCM, kat_gcm, sizeof(kat_gcm));
}

static void test_chacha_kat(void **state)
{
	check_kat(MCAST_SUITE_CHACHA20, kat_chacha, sizeof(kat_chacha));
}

static void test_relay_frame_roundtrip(void **state)
{
	struct mc_aead *a = mc_aead_new();
	uint8_t key[MCAST_KEY_LEN], out[2048], pt[2048], big[1500];
	struct mcast_frame f = { .kind = MCAST_KIND_RELAY, .id = 0, .seq = 99 }, g;
	struct socks_err err;

	assert_int_equal(mc_random(key, sizeof(key)), 0);
	memset(big, 0xA5, sizeof(big));
	f.src.atyp = SOCKS_ATYP_IPV6;
	f.src.u.v6[0] = 0xfd;
	f.src.port = 5000;
	size_t n = mc_frame_seal(a, MCAST_SUITE_AES256GCM, key, &f, big, sizeof(big), out,
				 sizeof(out));
	assert_int_equal(n, 14 + 19 + 1500 + 16);
	/* The payload does not appear in clear. */
	assert_null(memmem(out, n, big, 64));
	assert_int_equal(mcast_frame_parse(&g, out, n, &err), SOCKS_DONE);
	assert_int_equal(g.hdrlen, 33);
	assert_int_equal(mc_frame_open(a, MCAST_SUITE_AES256GCM, key, &g, out, n, pt, sizeof(pt)),
			 1500);
	assert_memory_equal(pt, big, 1500);
	/* Too small an output buffer fails instead of overflowing. */
	assert_int_equal(mc_frame_seal(a, MCAST_SUITE_AES256GCM, key, &f, big, sizeof(big), out,
				       n - 1), 0);
	assert_int_equal(mc_frame_open(a, MCAST_SUITE_AES256GCM, key, &g, out, n, pt, 1499), -1);
	mc_aead_free(a);
}

static void test_suite_none(void **state)
{
	uint8_t key[MCAST_KEY_LEN] = { 0 }, out[64], pt[64];
	struct mcast_frame f = { .kind = MCAST_KIND_MEMBER, .id = 0, .seq = 1 }, g;
	struct socks_err err;
	size_t n = mc_frame_seal(NULL, MCAST_SUITE_NONE, key, &f, payload, 15, out, sizeof(out));

	assert_int_equal(n, 29);
	assert_memory_equal(out + 14, payload, 15);
	assert_int_equal(mcast_frame_parse(&g, out, n, &err), SOCKS_DONE);
	assert_int_equal(mc_frame_open(NULL, MCAST_SUITE_NONE, key, &g, out, n, pt, sizeof(pt)), 15);
}

static void test_replay_window(void **state)
{
	struct mc_replay w = { 0 };

	assert_false(mc_replay_check(&w, 0));
	assert_true(mc_replay_check(&w, 1));
	mc_replay_update(&w, 1);
	assert_false(mc_replay_check(&w, 1));         /* replay */
	assert_true(mc_replay_check(&w, 5));          /* gap is fine */
	mc_replay_update(&w, 5);
	assert_true(mc_replay_check(&w, 3));          /* late but new */
	mc_replay_update(&w, 3);
	assert_false(mc_replay_check(&w, 3));
	assert_true(mc_replay_check(&w, 2));
	mc_replay_update(&w, 100);
	assert_false(mc_replay_check(&w, 36));        /* 64 behind: too old */
	assert_true(mc_replay_check(&w, 37));         /* 63 behind: in the window */
	mc_replay_update(&w, 37);
	assert_false(mc_replay_check(&w, 37));
	assert_false(mc_replay_check(&w, 100));
	mc_replay_update(&w, 100 + 1000);             /* a big jump clears the map */
	assert_true(mc_replay_check(&w, 1099));
	assert_false(mc_replay_check(&w, 1100));
	assert_false(mc_replay_check(&w, 100));
}

/* libstp opens in place (out = the ciphertext's own bytes), stpd into
 * another buffer: both give the same payload, for each suite. */
static void test_open_in_place(void **state)
{
	const uint8_t suites[] = { MCAST_SUITE_AES256GCM, MCAST_SUITE_CHACHA20, MCAST_SUITE_NONE };
	struct mc_aead *a = mc_aead_new();
	uint8_t key[MCAST_KEY_LEN], frame[128];
	struct mcast_frame f = { .kind = MCAST_KIND_RELAY, .id = 9, .seq = 7 }, g;
	struct socks_err err;

	key_0_31(key);
	f.src.atyp = SOCKS_ATYP_IPV4;
	f.src.port = 53;
	for (size_t i = 0; i < sizeof(suites); i++) {
		size_t n = mc_frame_seal(a, suites[i], key, &f, payload, 15, frame, sizeof(frame));
		assert_int_equal(n, mc_frame_len(suites[i], &f, 15));
		assert_int_equal(mcast_frame_parse(&g, frame, n, &err), SOCKS_DONE);
		assert_int_equal(mc_frame_open(a, suites[i], key, &g, frame, n, frame + g.hdrlen,
					       n - g.hdrlen), 15);
		assert_memory_equal(frame + g.hdrlen, payload, 15);
	}
	mc_aead_free(a);
}

/* A frame opens only under its own key and suite; a suite the codec does
 * not know seals nothing and opens nothing. */
static void test_wrong_key_or_suite(void **state)
{
	struct mc_aead *a = mc_aead_new();
	uint8_t key[MCAST_KEY_LEN], other[MCAST_KEY_LEN], out[128], pt[128];
	struct mcast_frame f = { .kind = MCAST_KIND_MEMBER, .id = 3, .seq = 1 }, g;
	struct socks_err err;

	key_0_31(key);
	memcpy(other, key, sizeof(other));
	other[MCAST_KEY_LEN - 1] ^= 0x80; /* the last bit of the key counts too */
	size_t n = mc_frame_seal(a, MCAST_SUITE_AES256GCM, key, &f, payload, 15, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(mcast_frame_parse(&g, out, n, &err), SOCKS_DONE);
	assert_int_equal(mc_frame_open(a, MCAST_SUITE_AES256GCM, other, &g, out, n, pt,
				       sizeof(pt)), -1);
	assert_int_equal(mc_frame_open(a, MCAST_SUITE_CHACHA20, key, &g, out, n, pt, sizeof(pt)),
			 -1);
	/* A failed open leaves the context fit for the next frame. */
	assert_int_equal(mc_frame_open(a, MCAST_SUITE_AES256GCM, key, &g, out, n, pt, sizeof(pt)),
			 15);
	assert_int_equal(mc_frame_seal(a, 0x03, key, &f, payload, 15, out, sizeof(out)), 0);
	assert_int_equal(mc_frame_open(a, 0x03, key, &g, out, n, pt, sizeof(pt)), -1);
	mc_aead_free(a);
}

/* The window's edges: 0, the oldest number still inside, jumps of 63 and
 * 64, the top of the sequence space, and check never records. */
static void test_replay_edges(void **state)
{
	struct mc_replay w = { 0 };

	assert_false(mc_replay_check(&w, 0));
	assert_true(mc_replay_check(&w, 1));
	assert_true(mc_replay_check(&w, 1)); /* checking does not record */
	mc_replay_update(&w, 1);
	assert_false(mc_replay_check(&w, 0));

	/* A jump of 63 keeps 1 at the window's last bit: still a replay. */
	mc_replay_update(&w, 64);
	assert_int_equal(w.bits, (1ull << 63) | 1);
	assert_false(mc_replay_check(&w, 1));
	assert_true(mc_replay_check(&w, 2));
	/* A jump of exactly 64 clears the map; 64 behind is too old. */
	mc_replay_update(&w, 128);
	assert_int_equal(w.bits, 1);
	assert_false(mc_replay_check(&w, 64));
	assert_true(mc_replay_check(&w, 65));
	/* Filling the window from the bottom up leaves every bit set. */
	for (uint64_t s = 65; s < 128; s++)
		mc_replay_update(&w, s);
	assert_int_equal(w.bits, UINT64_MAX);
	for (uint64_t s = 60; s <= 130; s++)
		assert_int_equal(mc_replay_check(&w, s), s > 128);

	/* The last sequence number of all: nothing after it is new. */
	struct mc_replay t = { 0 };
	mc_replay_update(&t, UINT64_MAX);
	assert_false(mc_replay_check(&t, UINT64_MAX));
	assert_true(mc_replay_check(&t, UINT64_MAX - 63));
	assert_false(mc_replay_check(&t, UINT64_MAX - 64));
	assert_false(mc_replay_check(&t, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gcm_kat),
		cmocka_unit_test(test_chacha_kat),
		cmocka_unit_test(test_relay_frame_roundtrip),
		cmocka_unit_test(test_suite_none),
		cmocka_unit_test(test_replay_window),
		cmocka_unit_test(test_open_in_place),
		cmocka_unit_test(test_wrong_key_or_suite),
		cmocka_unit_test(test_replay_edges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
