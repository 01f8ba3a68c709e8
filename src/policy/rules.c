/*
 * rules.c - first-match-wins access rules. Each list in a rule is empty
 * (any) or must have a match; a list whose context field is unknown does
 * not match, so an incomplete context never slips past a rule meant for it.
 */
#include "policy/rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- CIDR ---- */

static void rule_cidr_mask(struct rule_cidr *c)
{
	size_t bytes = c->family == AF_INET ? 4 : 16;
	for (size_t i = 0; i < bytes; i++) {
		unsigned keep = c->prefix > i * 8 ? c->prefix - i * 8 : 0;
		if (keep < 8)
			c->addr[i] &= (uint8_t)(0xFF00u >> keep);
	}
}

/* "::ffff:a.b.c.d/N" with N >= 96 is the IPv4 range a.b.c.d/(N-96): keep it
 * as IPv4 so it matches IPv4 clients and mapped ones alike. */
static void rule_cidr_unmap(struct rule_cidr *c)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
	if (c->family != AF_INET6 || c->prefix < 96 || memcmp(c->addr, mapped, 12) != 0)
		return;
	c->family = AF_INET;
	memmove(c->addr, c->addr + 12, 4);
	memset(c->addr + 4, 0, 12);
	c->prefix = (uint8_t)(c->prefix - 96);
}

static int rule_prefix_parse(const char *s, unsigned max, uint8_t *out)
{
	unsigned v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 3)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = (uint8_t)v;
	return 0;
}

int rule_cidr_parse(struct rule_cidr *out, const char *text)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t hl = slash ? (size_t)(slash - text) : strlen(text);
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, text, hl);
	host[hl] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		out->prefix = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		out->prefix = 128;
	} else {
		return -1;
	}
	if (slash && rule_prefix_parse(slash + 1, out->prefix, &out->prefix) < 0)
		return -1;
	rule_cidr_mask(out);
	rule_cidr_unmap(out);
	return 0;
}

static bool rule_bits_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xFF00u >> rest);
	return (a[full] & mask) == (b[full] & mask);
}

bool rule_cidr_match(const struct rule_cidr *c, const struct sockaddr *sa)
{
	const uint8_t *addr;
	int family;
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			family = AF_INET;
			addr = a6->s6_addr + 12;
		} else {
			family = AF_INET6;
			addr = a6->s6_addr;
		}
	} else {
		return false;
	}
	return family == c->family && rule_bits_equal(c->addr, addr, c->prefix);
}

/* ---- the matchers, one per list ---- */

static bool rule_match_from(const struct rule *r, const struct rule_ctx *ctx)
{
	for (size_t i = 0; i < r->n_from; i++)
		if (rule_cidr_match(&r->from[i], ctx->client))
			return true;
	return r->n_from == 0;
}

static bool rule_match_listener(const struct rule *r, const struct rule_ctx *ctx)
{
	if (r->n_listeners == 0)
		return true;
	for (size_t i = 0; ctx->listener && i < r->n_listeners; i++)
		if (strcmp(r->listeners[i], ctx->listener) == 0)
			return true;
	return false;
}

/* "-" stands for a session without authentication. */
static bool rule_match_user(const struct rule *r, const struct rule_ctx *ctx)
{
	if (r->n_users == 0)
		return true;
	for (size_t i = 0; i < r->n_users; i++) {
		if (ctx->user == NULL ? strcmp(r->users[i], "-") == 0 :
					strcmp(r->users[i], ctx->user) == 0)
			return true;
	}
	return false;
}

static bool rule_match_group(const struct rule *r, const struct rule_ctx *ctx)
{
	if (r->n_groups == 0)
		return true;
	for (size_t i = 0; ctx->groups && i < ctx->n_groups; i++)
		for (size_t j = 0; j < r->n_groups; j++)
			if (ctx->groups[i] && strcmp(r->groups[j], ctx->groups[i]) == 0)
				return true;
	return false;
}

static bool rule_match_command(const struct rule *r, const struct rule_ctx *ctx)
{
	return r->commands == 0 || (r->commands & ctx->command) != 0;
}

/* Rule names are stored lower-case without a trailing dot; ".example"
 * matches "example" itself and any name ending in ".example". */
static bool rule_name_match(const char *pat, const char *name, size_t n)
{
	if (pat[0] != '.')
		return strlen(pat) == n && strncasecmp(pat, name, n) == 0;
	size_t pn = strlen(pat);
	if (pn - 1 == n && strncasecmp(pat + 1, name, n) == 0)
		return true;
	return n > pn && strncasecmp(pat, name + n - pn, pn) == 0;
}

static bool rule_match_to_name(const struct rule *r, const char *name)
{
	size_t n = strlen(name);
	if (n > 0 && name[n - 1] == '.')
		n--; /* "example.com." is "example.com" */
	for (size_t i = 0; n > 0 && i < r->n_to_names; i++)
		if (rule_name_match(r->to_names[i], name, n))
			return true;
	return false;
}

/* Addresses and names are alternatives: either may match. */
static bool rule_match_to(const struct rule *r, const struct rule_ctx *ctx)
{
	if (r->n_to == 0 && r->n_to_names == 0)
		return true;
	for (size_t i = 0; ctx->dst_addr && i < r->n_to; i++)
		if (rule_cidr_match(&r->to[i], ctx->dst_addr))
			return true;
	return ctx->dst_name && rule_match_to_name(r, ctx->dst_name);
}

static bool rule_match_port(const struct rule *r, const struct rule_ctx *ctx)
{
	if (r->n_ports == 0)
		return true;
	for (size_t i = 0; ctx->dst_port && i < r->n_ports; i++)
		if (ctx->dst_port >= r->ports[i].lo && ctx->dst_port <= r->ports[i].hi)
			return true;
	return false;
}

/* Both ends of a time window are included, to the minute. */
static bool rule_match_time(const struct rule *r, const struct rule_ctx *ctx)
{
	struct tm tm;
	if (!r->has_time && r->weekdays == 0)
		return true;
	if (ctx->now == 0 || !localtime_r(&ctx->now, &tm))
		return false;
	if (r->weekdays && !(r->weekdays & (1u << tm.tm_wday)))
		return false;
	if (!r->has_time)
		return true;
	unsigned m = (unsigned)(tm.tm_hour * 60 + tm.tm_min);
	if (r->minute_from <= r->minute_to)
		return m >= r->minute_from && m <= r->minute_to;
	return m >= r->minute_from || m <= r->minute_to; /* wraps past midnight */
}

/* Extensions' conditions (e.g. the arriving compartment): each must agree. */
static bool rule_match_ext(const struct rule *r, const struct rule_ctx *ctx)
{
	for (size_t i = 0; i < RULE_EXT_MAX; i++)
		if (r->ext_match[i] && r->ext[i] && !r->ext_match[i](r->ext[i], ctx))
			return false;
	return true;
}

static bool rule_matches(const struct rule *r, const struct rule_ctx *ctx)
{
	return rule_match_from(r, ctx) && rule_match_listener(r, ctx) && rule_match_ext(r, ctx) &&
	       rule_match_user(r, ctx) && rule_match_group(r, ctx) &&
	       rule_match_command(r, ctx) && rule_match_to(r, ctx) &&
	       rule_match_port(r, ctx) && rule_match_time(r, ctx);
}

const struct rule *rules_match(const struct rule *rules, size_t n, const struct rule_ctx *ctx)
{
	for (size_t i = 0; i < n; i++)
		if (rule_matches(&rules[i], ctx))
			return &rules[i];
	return NULL;
}

bool rules_may_pass(const struct rule *rules, size_t n, const struct rule_ctx *ctx,
		    bool user_unknown)
{
	for (size_t i = 0; i < n; i++) {
		const struct rule *r = &rules[i];
		bool by_user = r->n_users > 0 || r->n_groups > 0;
		if (!rule_match_from(r, ctx) || !rule_match_listener(r, ctx) ||
		    !rule_match_ext(r, ctx) || !rule_match_command(r, ctx) || !rule_match_time(r, ctx))
			continue;
		if (!user_unknown && (!rule_match_user(r, ctx) || !rule_match_group(r, ctx)))
			continue;
		if (r->action == RULE_PASS)
			return true;
		if (r->n_to == 0 && r->n_to_names == 0 && r->n_ports == 0 &&
		    !(user_unknown && by_user))
			return false; /* blocks every request of this command */
	}
	return false;
}

void rules_describe(const struct rule *r, char *out, size_t outlen)
{
	if (r == NULL)
		snprintf(out, outlen, "default rule");
	else if (r->line > 0)
		snprintf(out, outlen, "rule at %s:%d", r->file, r->line);
	else
		snprintf(out, outlen, "rule from %s", r->file);
}

/* The `active` counter is the one field of a rule that changes: atomics,
 * since workers share the snapshot. */
bool rule_slot_take(const struct rule *r)
{
	atomic_uint *active = &((struct rule *)r)->active;
	if (!r->max_sessions)
		return true;
	if (atomic_fetch_add(active, 1) < r->max_sessions)
		return true;
	atomic_fetch_sub(active, 1);
	return false;
}

void rule_slot_give(const struct rule *r)
{
	if (r->max_sessions)
		atomic_fetch_sub(&((struct rule *)r)->active, 1);
}
