/*
 * cli_features.c - `stp features [PROXY-URL] [--json]`: what the proxy
 * offers to us (feature discovery, docs/protocol.md 5.6), for people or as
 * JSON; and `stp lookup NAME`, which resolves where discovery says is best
 * (stp_lookup).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/socks.h"

static const char *feat_type_name(uint8_t type)
{
	switch (type) {
	case STP_FEAT_UINT:
		return "uint";
	case STP_FEAT_TEXT:
		return "text";
	case STP_FEAT_CODES:
		return "codes";
	case STP_FEAT_FLAG:
		return "flag";
	default:
		return "unknown";
	}
}

static const char *feat_scope_text(uint8_t scope)
{
	switch (scope) {
	case STP_FEAT_SERVER:
		return "server";
	case STP_FEAT_METHOD:
		return "method";
	case STP_FEAT_COMMAND:
		return "command";
	case STP_FEAT_VERSION:
		return "version";
	default:
		return "unknown";
	}
}

/* ---- for people ---- */

static void print_codes(const uint8_t *c, size_t n, const char *(*name)(uint8_t))
{
	for (size_t i = 0; i < n; i++)
		printf("%s X'%02X'%s%s", i ? "," : "", c[i], name ? " " : "",
		       name ? name(c[i]) : "");
}

static void print_value(const struct stp_feature *e)
{
	switch (e->type) {
	case STP_FEAT_UINT:
		printf("=%llu", (unsigned long long)e->uint);
		break;
	case STP_FEAT_TEXT:
		printf("=\"%.*s\"", (int)e->len, (const char *)e->value);
		break;
	case STP_FEAT_FLAG:
		break;
	default:
		putchar('=');
		for (size_t i = 0; i < e->len; i++)
			printf("%sX'%02X'", i ? "," : "", e->value[i]);
	}
}

static void print_people(const char *url, const struct stp_features *f)
{
	struct stp_feature e;
	size_t cur = 0;

	printf("proxy:     %s\n", url);
	if (!f->supported) {
		printf("discovery: not offered (an RFC 1928 proxy, or discovery denied to us)\n");
		return;
	}
	printf("discovery: yes%s\n", f->truncated ? " (document truncated by the proxy)" : "");
	printf("versions: ");
	for (size_t i = 0; i < f->n_versions; i++)
		printf(" %u", f->versions[i]);
	printf("\nmethods:  ");
	print_codes(f->methods, f->n_methods, socks_method_name);
	printf("\ncommands: ");
	print_codes(f->commands, f->n_commands, socks5_cmd_name);
	printf("\n");
	while (stp_features_next(f, &cur, &e)) {
		if (e.scope == STP_FEAT_SERVER &&
		    (!strcmp(e.name, "versions") || !strcmp(e.name, "methods") ||
		     !strcmp(e.name, "commands")))
			continue;
		if (e.scope == STP_FEAT_SERVER)
			printf("  server: %s", e.name);
		else
			printf("  %s X'%02X': %s", feat_scope_text(e.scope), e.code, e.name);
		print_value(&e);
		printf("\n");
	}
}

/* ---- JSON ---- */

static void json_string(const uint8_t *s, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			printf("\\%c", s[i]);
		else if (s[i] < 0x20 || s[i] > 0x7E)
			printf("\\u%04x", s[i]);
		else
			putchar(s[i]);
	}
	putchar('"');
}

static void json_codes(const uint8_t *c, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++)
		printf("%s%u", i ? ", " : "", c[i]);
	putchar(']');
}

static void print_json(const char *url, const struct stp_features *f)
{
	struct stp_feature e;
	size_t cur = 0;
	bool first = true;

	printf("{\"proxy\": ");
	json_string((const uint8_t *)url, strlen(url));
	printf(", \"supported\": %s, \"truncated\": %s, \"versions\": ",
	       f->supported ? "true" : "false", f->truncated ? "true" : "false");
	json_codes(f->versions, f->n_versions);
	printf(", \"methods\": ");
	json_codes(f->methods, f->n_methods);
	printf(", \"commands\": ");
	json_codes(f->commands, f->n_commands);
	printf(", \"entries\": [");
	while (stp_features_next(f, &cur, &e)) {
		printf("%s\n  {\"scope\": \"%s\", \"code\": %u, \"name\": \"%s\", \"type\": "
		       "\"%s\", "
		       "\"value\": ",
		       first ? "" : ",", feat_scope_text(e.scope), e.code, e.name,
		       feat_type_name(e.type));
		first = false;
		switch (e.type) {
		case STP_FEAT_UINT:
			printf("%llu", (unsigned long long)e.uint);
			break;
		case STP_FEAT_TEXT:
			json_string(e.value, e.len);
			break;
		case STP_FEAT_FLAG:
			printf("true");
			break;
		default:
			json_codes(e.value, e.len);
		}
		putchar('}');
	}
	printf("]}\n");
}

int cli_cmd_features(const struct cli_opts *o)
{
	struct stp_features f;
	enum stp_err err;
	char url[STP_NAME_MAX + 64];

	if (stp_features_get(&o->proxy, &f, STP_FEATURES_FRESH, o->timeout_ms, &err) < 0)
		return cli_fail(o, "features", err);
	stp_proxy_str(&o->proxy, url, sizeof(url));
	if (o->json)
		print_json(url, &f);
	else
		print_people(url, &f);
	return CLI_EXIT_OK;
}

int cli_cmd_lookup(const struct cli_opts *o)
{
	struct stp_addr a;
	bool via_proxy = false;
	enum stp_err err;
	char text[STP_ADDR_STR_MAX];

	if (stp_lookup(&o->proxy, o->args[0], &a, &via_proxy, o->timeout_ms, &err) < 0)
		return cli_fail(o, o->args[0], err);
	stp_addr_str(&a, text, sizeof(text));
	/* Port 0 is noise here: print the address alone. */
	char *colon = strrchr(text, ':');
	if (colon)
		*colon = '\0';
	if (text[0] == '[') {
		memmove(text, text + 1, strlen(text));
		text[strlen(text) - 1] = '\0';
	}
	printf("%s\t%s\n", text, via_proxy ? "proxy" : "local");
	return CLI_EXIT_OK;
}
