/*
 * test_proto_purity.c - src/proto links only libc and stays pure: its
 * files may include nothing but <stdbool.h> <stddef.h> <stdint.h>
 * <string.h> and the codec's own "proto/..." headers. A socket header or
 * "common/log.h" sneaking in fails here, before it fails in a fuzz build.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PROTO_SRC_DIR
#error "PROTO_SRC_DIR must name src/proto"
#endif

static const char *const allowed_sys[] = {"<stdbool.h>", "<stddef.h>", "<stdint.h>",
					  "<string.h>"};

/*
 * The include target of one line ("<x.h>" or "\"x.h\"", up to the closing
 * delimiter), or NULL when the line is not an #include.
 */
static const char *include_target(const char *line, char *out, size_t cap)
{
	const char *s = line;
	size_t n = 0;
	char close;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s++ != '#')
		return NULL;
	while (*s == ' ' || *s == '\t')
		s++;
	if (strncmp(s, "include", 7) != 0)
		return NULL;
	s += 7;
	while (*s == ' ' || *s == '\t')
		s++;
	/* close 0: a macro include, which is not allowed either; copy a word. */
	close = *s == '<' ? '>' : *s == '"' ? '"' : 0;
	if (close != 0)
		out[n++] = *s++;
	while (*s && *s != '\n' && *s != close && (close || *s != ' ') && n + 2 < cap)
		out[n++] = *s++;
	if (close != 0 && *s == close)
		out[n++] = close;
	out[n] = '\0';
	return out;
}

static bool include_allowed(const char *target)
{
	size_t len = strlen(target);

	for (size_t i = 0; i < sizeof(allowed_sys) / sizeof(allowed_sys[0]); i++)
		if (strcmp(target, allowed_sys[i]) == 0)
			return true;
	return len > 9 && strncmp(target, "\"proto/", 7) == 0 && target[len - 1] == '"' &&
	       strstr(target, "..") == NULL;
}

/* Checks one file; returns the number of forbidden includes it has. */
static int check_file(const char *path, int *includes)
{
	char line[512], target[256];
	int bad = 0, lineno = 0;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	memset(target, 0, sizeof(target));
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (include_target(line, target, sizeof(target)) == NULL)
			continue;
		(*includes)++;
		if (!include_allowed(target)) {
			print_error("%s:%d: forbidden include %s\n", path, lineno, target);
			bad++;
		}
	}
	fclose(f);
	return bad;
}

static bool is_source(const char *name)
{
	size_t len = strlen(name);

	return len > 2 && name[0] != '.' && name[len - 2] == '.' &&
	       (name[len - 1] == 'c' || name[len - 1] == 'h');
}

static void test_proto_includes(void **state)
{
	DIR *d = opendir(PROTO_SRC_DIR);
	struct dirent *e;
	int files = 0, includes = 0, bad = 0;
	bool saw_socks_h = false;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[4096];

		if (!is_source(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", PROTO_SRC_DIR, e->d_name);
		bad += check_file(path, &includes);
		files++;
		saw_socks_h |= strcmp(e->d_name, "socks.h") == 0;
	}
	closedir(d);
	/* Guard against scanning the wrong (or an empty) directory. */
	assert_true(saw_socks_h);
	assert_true(files >= 9);
	assert_true(includes >= files);
	assert_int_equal(bad, 0);
}

/* The checker itself must be able to fail. */
static void test_checker_rejects(void **state)
{
	static const char *const bad[] = {
		"#include <stdio.h>\n",         "#  include <sys/socket.h>\n",
		"\t#include \"common/log.h\"\n", "#include <stdlib.h>\n",
		"#include \"proto/../common/log.h\"\n", "#include INC_FILE\n",
		"#include <string.h.evil>\n",
	};
	static const char *const good[] = {
		"#include <string.h>\n", "# include <stdint.h>\n", "#include \"proto/socks.h\"\n",
		"#include \"proto/wire.h\" /* helpers */\n",
	};
	char target[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_non_null(include_target(bad[i], target, sizeof(target)));
		assert_false(include_allowed(target));
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_non_null(include_target(good[i], target, sizeof(target)));
		assert_true(include_allowed(target));
	}
	assert_null(include_target("/* #include <stdio.h> */\n", target, sizeof(target)));
	assert_null(include_target("#define X 1\n", target, sizeof(target)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proto_includes),
		cmocka_unit_test(test_checker_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
