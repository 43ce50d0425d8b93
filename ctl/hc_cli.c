/*
 * NAME
 *	hc_cli - heraldctl's command table, option parsing and exit codes
 * DESCRIPTION
 *	Pure functions over argv and the command table; see hc_cli.h.
 *	No getopt: its global state and permutation rules make the
 *	"global options anywhere" behaviour hard to get right.
 */
#include "hc_cli.h"

#include <string.h>

#include "hd_err.h"

/* Split name into at most max words; returns the count. */
static int hc_cli_name_words(const char *name, const char **words, size_t *lens, int max)
{
	int n = 0;
	const char *p = name;
	while (*p != '\0' && n < max) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		const char *start = p;
		while (*p != '\0' && *p != ' ')
			p++;
		words[n] = start;
		lens[n] = (size_t)(p - start);
		n++;
	}
	return n;
}

static bool hc_cli_word_eq(const char *word, size_t len, const char *arg)
{
	return strlen(arg) == len && strncmp(word, arg, len) == 0;
}

int hc_cli_split_globals(int argc, char **argv, hc_globals_t *g, char **rest,
                         size_t rest_max, size_t *nrest, char *err, size_t errlen)
{
	memset(g, 0, sizeof(*g));
	*nrest = 0;
	bool options_done = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!options_done) {
			if (strcmp(a, "--") == 0) {
				options_done = true;
			} else if (strcmp(a, "--db") == 0) {
				if (i + 1 >= argc) {
					snprintf(err, errlen, "option --db needs a value (a conninfo string or URL)");
					return HC_EXIT_USAGE;
				}
				g->conninfo = argv[++i];
				continue;
			} else if (strncmp(a, "--db=", 5) == 0) {
				g->conninfo = a + 5;
				continue;
			} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
				g->help = true;
				continue;
			} else if (strcmp(a, "--version") == 0) {
				g->version = true;
				continue;
			}
		}
		if (*nrest >= rest_max) {
			snprintf(err, errlen, "too many arguments (at most %zu)", rest_max);
			return HC_EXIT_USAGE;
		}
		rest[(*nrest)++] = argv[i];
	}
	return 0;
}

/* Number of leading argv words matching cmd's name, or 0 if not all do. */
static int hc_cli_match(const hc_command_t *cmd, int argc, char **argv)
{
	const char *words[HC_MAX_COMMAND_WORDS];
	size_t lens[HC_MAX_COMMAND_WORDS];
	int n = hc_cli_name_words(cmd->name, words, lens, HC_MAX_COMMAND_WORDS);
	if (n == 0 || n > argc)
		return 0;
	for (int i = 0; i < n; i++)
		if (!hc_cli_word_eq(words[i], lens[i], argv[i]))
			return 0;
	return n;
}

const hc_command_t *hc_cli_find(const hc_command_t *table, size_t ntable, int argc,
                                char **argv, int *nwords)
{
	const hc_command_t *best = NULL;
	int best_n = 0;
	for (size_t i = 0; i < ntable; i++) {
		int n = hc_cli_match(&table[i], argc, argv);
		if (n > best_n) {
			best = &table[i];
			best_n = n;
		}
	}
	*nwords = best_n;
	return best;
}

size_t hc_cli_find_group(const hc_command_t *table, size_t ntable, int argc, char **argv,
                         const hc_command_t **out, size_t max)
{
	size_t found = 0;
	if (argc < 1)
		return 0;
	for (size_t i = 0; i < ntable; i++) {
		const char *words[HC_MAX_COMMAND_WORDS];
		size_t lens[HC_MAX_COMMAND_WORDS];
		int n = hc_cli_name_words(table[i].name, words, lens, HC_MAX_COMMAND_WORDS);
		if (n <= argc)
			continue; /* a group is a strict prefix of the name */
		bool match = true;
		for (int w = 0; w < argc && match; w++)
			match = hc_cli_word_eq(words[w], lens[w], argv[w]);
		if (!match)
			continue;
		if (found < max)
			out[found] = &table[i];
		found++;
	}
	return found;
}

/* The spec entry for "--name" or "--name=value" (name_len excludes "=..."). */
static const hc_opt_t *hc_cli_opt_find(const hc_opt_t *spec, size_t nspec, const char *name,
                                       size_t name_len, size_t *index)
{
	for (size_t i = 0; i < nspec; i++) {
		if (hc_cli_word_eq(name, name_len, spec[i].name)) {
			*index = i;
			return &spec[i];
		}
	}
	return NULL;
}

int hc_cli_parse_opts(int argc, char **argv, const hc_opt_t *spec, size_t nspec,
                      const char **values, char **pos, size_t pos_max, size_t *npos,
                      char *err, size_t errlen)
{
	for (size_t i = 0; i < nspec; i++)
		values[i] = NULL;
	*npos = 0;
	bool options_done = false;
	for (int i = 0; i < argc; i++) {
		char *a = argv[i];
		if (!options_done && strcmp(a, "--") == 0) {
			options_done = true;
			continue;
		}
		if (!options_done && a[0] == '-' && a[1] != '\0') {
			if (a[1] != '-') {
				snprintf(err, errlen, "unknown option '%s'", a);
				return HC_EXIT_USAGE;
			}
			const char *name = a + 2;
			const char *eq = strchr(name, '=');
			size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
			size_t idx = 0;
			const hc_opt_t *opt = hc_cli_opt_find(spec, nspec, name, name_len, &idx);
			if (opt == NULL) {
				snprintf(err, errlen, "unknown option '--%.*s'", (int)name_len, name);
				return HC_EXIT_USAGE;
			}
			if (!opt->has_value) {
				if (eq != NULL) {
					snprintf(err, errlen, "option '--%s' takes no value", opt->name);
					return HC_EXIT_USAGE;
				}
				values[idx] = "";
			} else if (eq != NULL) {
				values[idx] = eq + 1;
			} else if (i + 1 < argc) {
				values[idx] = argv[++i];
			} else {
				snprintf(err, errlen, "option '--%s' needs a value", opt->name);
				return HC_EXIT_USAGE;
			}
			continue;
		}
		if (*npos >= pos_max) {
			if (pos_max == 0)
				snprintf(err, errlen, "unexpected argument '%s'", a);
			else
				snprintf(err, errlen, "too many arguments (at most %zu)", pos_max);
			return HC_EXIT_USAGE;
		}
		pos[(*npos)++] = a;
	}
	return 0;
}

void hc_cli_print_usage(FILE *out, const char *prog, const hc_command_t *table, size_t ntable)
{
	size_t width = 0;
	for (size_t i = 0; i < ntable; i++) {
		size_t len = strlen(table[i].name);
		if (len > width)
			width = len;
	}
	fprintf(out, "usage: %s [--db CONNINFO] COMMAND [ARGS]\n\ncommands:\n", prog);
	for (size_t i = 0; i < ntable; i++)
		fprintf(out, "  %-*s  %s\n", (int)width, table[i].name, table[i].summary);
	fprintf(out,
	        "\n"
	        "options (anywhere on the command line):\n"
	        "  --db CONNINFO  the database, as a libpq conninfo string or URL; default\n"
	        "                 $HERALD_DATABASE_URL, else libpq's own defaults (PGHOST,\n"
	        "                 PGDATABASE, PGSERVICE, ~/.pgpass, ...)\n"
	        "  -h, --help     show this help, or a command's help\n"
	        "  --version      show the version\n"
	        "\n"
	        "'%s help COMMAND' shows what a command does.\n"
	        "exit status: 0 ok, 1 failure, 2 usage error, 4 database unreachable\n",
	        prog);
}

void hc_cli_print_command_help(FILE *out, const char *prog, const hc_command_t *cmd)
{
	fprintf(out, "usage: %s %s%s%s\n\n%s\n", prog, cmd->name,
	        cmd->usage && cmd->usage[0] ? " " : "", cmd->usage ? cmd->usage : "",
	        cmd->summary);
	if (cmd->help && cmd->help[0])
		fprintf(out, "\n%s", cmd->help);
}

int hc_cli_connect(hc_ctx_t *ctx, hc_db_t **db_p)
{
	const char *source = NULL;
	const char *conninfo = hc_db_conninfo(ctx->conninfo, &source);
	char err[1024];
	int rc = hc_db_open(db_p, conninfo, err, sizeof(err));
	if (rc == 0)
		return HC_EXIT_OK;
	if (rc == HD_E_CONFIG) {
		fprintf(ctx->err, "heraldctl: the connection string from %s is %s\n",
		        source, err);
		return HC_EXIT_USAGE;
	}
	fprintf(ctx->err, "heraldctl: cannot connect to the database (using %s): %s\n", source,
	        err);
	return HC_EXIT_UNREACHABLE;
}

int hc_cli_exit_code(int hd_err)
{
	if (hd_err == 0)
		return HC_EXIT_OK;
	return hd_err == HD_E_UNAVAILABLE ? HC_EXIT_UNREACHABLE : HC_EXIT_FAIL;
}
