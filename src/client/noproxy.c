/*
 * noproxy.c - NO_PROXY lists: which targets bypass the proxy. The rules
 * follow curl's: '*' is everything, "example.com" and ".example.com" both
 * match example.com and every name under it, and an address or a CIDR
 * range matches address literals only (names are never resolved here).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/client.h"

enum np_kind { NP_ALL, NP_NAME, NP_NET };

struct np_entry {
	enum np_kind kind;
	int family;       /* NP_NET: AF_INET or AF_INET6 */
	uint8_t net[16];  /* NP_NET: the network, host bits cleared */
	unsigned prefix;  /* NP_NET: bits that must match */
	char name[STP_NAME_MAX + 1]; /* NP_NAME: lower case, no dots at the ends */
};

struct stp_noproxy {
	size_t n;
	struct np_entry e[];
};

/* Copies s[0..n) lower-cased, without a leading or trailing dot. */
static bool np_name(char *out, const char *s, size_t n)
{
	if (n > 0 && s[0] == '.') {
		s++;
		n--;
	}
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > STP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[n] = '\0';
	return true;
}

/* "a.b.c.d", "v6", "[v6]", each with an optional "/bits". */
static bool np_net(struct np_entry *e, const char *s, size_t n)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	char *slash, *addr = tmp;
	unsigned long bits;
	size_t alen;

	if (n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	slash = strchr(tmp, '/');
	if (slash != NULL)
		*slash = '\0';
	alen = strlen(addr);
	if (alen >= 2 && addr[0] == '[' && addr[alen - 1] == ']') {
		addr[alen - 1] = '\0';
		addr++;
	}
	if (inet_pton(AF_INET, addr, e->net) == 1)
		e->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, e->net) == 1)
		e->family = AF_INET6;
	else
		return false;
	e->prefix = e->family == AF_INET ? 32 : 128;
	if (slash != NULL) {
		char *end;
		if (!isdigit((unsigned char)slash[1]))
			return false;
		bits = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || bits > e->prefix)
			return false;
		e->prefix = (unsigned)bits;
	}
	e->kind = NP_NET;
	return true;
}

static bool np_entry_parse(struct np_entry *e, const char *s, size_t n)
{
	memset(e, 0, sizeof(*e));
	if (n == 1 && s[0] == '*') {
		e->kind = NP_ALL;
		return true;
	}
	if (np_net(e, s, n))
		return true;
	/* Anything with a ':' or '/' that is not an address is unreadable. */
	if (memchr(s, ':', n) != NULL || memchr(s, '/', n) != NULL)
		return false;
	e->kind = NP_NAME;
	return np_name(e->name, s, n);
}

/* Entries are separated by any run of these. */
#define NP_SEP ", \t"

/* The number of entries in p: the array is sized with the same separators
 * the split below uses, so no entry can land past its end. */
static size_t np_count(const char *p)
{
	size_t count = 0;

	while (*p) {
		p += strspn(p, NP_SEP);
		size_t n = strcspn(p, NP_SEP);
		count += n > 0;
		p += n;
	}
	return count;
}

struct stp_noproxy *stp_noproxy_new(const char *list)
{
	struct stp_noproxy *np;
	const char *p = list ? list : "";
	size_t max = np_count(p);

	np = calloc(1, sizeof(*np) + max * sizeof(np->e[0]));
	if (np == NULL)
		return NULL;
	while (*p) {
		size_t n;
		p += strspn(p, NP_SEP);
		n = strcspn(p, NP_SEP);
		if (n > 0 && np->n < max && np_entry_parse(&np->e[np->n], p, n))
			np->n++;
		p += n;
	}
	return np;
}

struct stp_noproxy *stp_noproxy_from_env(void)
{
	const char *v = getenv("NO_PROXY");
	if (v == NULL)
		v = getenv("no_proxy");
	return stp_noproxy_new(v);
}

void stp_noproxy_free(struct stp_noproxy *np)
{
	free(np);
}

static bool np_bits_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;

	if (memcmp(a, net, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xFF << (8 - rest));
	return (a[whole] & mask) == (net[whole] & mask);
}

static bool np_match_bytes(const struct stp_noproxy *np, int family, const uint8_t *a)
{
	for (size_t i = 0; i < np->n; i++) {
		const struct np_entry *e = &np->e[i];
		if (e->kind == NP_ALL)
			return true;
		if (e->kind == NP_NET && e->family == family && np_bits_match(a, e->net, e->prefix))
			return true;
	}
	return false;
}

bool stp_noproxy_match_addr(const struct stp_noproxy *np, const struct sockaddr *sa)
{
	if (np == NULL || sa == NULL)
		return false;
	if (sa->sa_family == AF_INET)
		return np_match_bytes(np, AF_INET,
				      (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6) && np_match_bytes(np, AF_INET, a6->s6_addr + 12))
			return true;
		return np_match_bytes(np, AF_INET6, a6->s6_addr);
	}
	return false;
}

/* host equals name, or ends with "." name. */
static bool np_name_match(const char *host, size_t hlen, const char *name)
{
	size_t nlen = strlen(name);

	if (hlen < nlen || strncasecmp(host + hlen - nlen, name, nlen) != 0)
		return false;
	return hlen == nlen || host[hlen - nlen - 1] == '.';
}

bool stp_noproxy_match(const struct stp_noproxy *np, const char *host)
{
	struct sockaddr_storage ss;
	socklen_t len;
	size_t hlen;

	if (np == NULL || host == NULL)
		return false;
	if (client_literal_parse(&ss, &len, host, 0))
		return stp_noproxy_match_addr(np, (struct sockaddr *)&ss);
	hlen = strlen(host);
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	for (size_t i = 0; i < np->n; i++) {
		const struct np_entry *e = &np->e[i];
		if (e->kind == NP_ALL)
			return true;
		if (e->kind == NP_NAME && np_name_match(host, hlen, e->name))
			return true;
	}
	return false;
}
