/*
 * NAME
 *	hc_cli - heraldctl's command table, option parsing and exit codes
 * DESCRIPTION
 *	heraldctl is one table of commands {name, handler, summary, usage,
 *	help}; a name has one or more words ("db migrate", "stats"). This
 *	module finds the command that argv names, splits the global options
 *	(--db, --help, --version) from the rest wherever they appear, and
 *	parses each command's own options from a small spec. It owns no
 *	state and does no I/O except writing usage text to a given stream.
 *	A new subcommand is one handler function plus one table row.
 * EXIT STATUS
 *	0 ok, 1 failure, 2 usage error, 4 database unreachable.
 */
#ifndef HC_CLI_H
#define HC_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "hc_db.h"

enum {
	HC_EXIT_OK = 0,
	HC_EXIT_FAIL = 1,
	HC_EXIT_USAGE = 2,
	HC_EXIT_UNREACHABLE = 4
};

#define HC_MAX_COMMAND_WORDS 3
#define HC_MAX_ARGS 64

/* What every handler gets: the resolved global options and the streams. */
typedef struct hc_ctx {
	const char *conninfo; /* --db value or NULL; borrowed from argv */
	FILE *out;            /* results */
	FILE *err;            /* diagnostics */
} hc_ctx_t;

/*
 * A command handler. argv[0..argc-1] are the arguments after the command
 * words, global options already removed. Returns an HC_EXIT_* code.
 */
typedef int (*hc_handler_fn)(hc_ctx_t *ctx, int argc, char **argv);

typedef struct hc_command {
	const char *name;    /* words separated by one space: "db migrate" */
	hc_handler_fn handler;
	const char *summary; /* one line for the command list */
	const char *usage;   /* arguments after the name: "[--json]" */
	const char *help;    /* paragraph(s) for "heraldctl help NAME" */
} hc_command_t;

/* Global options found anywhere in argv. */
typedef struct hc_globals {
	const char *conninfo; /* --db CONNINFO / --db=CONNINFO; borrowed */
	bool help;            /* -h / --help */
	bool version;         /* --version */
} hc_globals_t;

/*
 * Remove the global options from argv[1..argc-1] (argv[0] is the program)
 * and store them in *g. The remaining arguments are copied, in order, into
 * rest (capacity rest_max), their count into *nrest. "--" ends global
 * option processing and is kept. Returns 0, or HC_EXIT_USAGE with a
 * message in err when --db lacks its value or there are too many args.
 */
int hc_cli_split_globals(int argc, char **argv, hc_globals_t *g, char **rest,
                         size_t rest_max, size_t *nrest, char *err, size_t errlen);

/*
 * The command whose name words match the first words of argv (longest
 * match wins), or NULL. *nwords receives the number of words used.
 * table is borrowed; the result points into it.
 */
const hc_command_t *hc_cli_find(const hc_command_t *table, size_t ntable, int argc,
                                char **argv, int *nwords);

/*
 * The commands whose name starts with the given words (a group such as
 * "db"): returns how many match; writes up to max pointers into out.
 */
size_t hc_cli_find_group(const hc_command_t *table, size_t ntable, int argc, char **argv,
                         const hc_command_t **out, size_t max);

/* One option a command accepts: "--name" or "--name VALUE"/"--name=VALUE". */
typedef struct hc_opt {
	const char *name;  /* without the dashes */
	bool has_value;
} hc_opt_t;

/*
 * Parse argv against spec (nspec entries). values[i] receives the value of
 * spec[i] ("" for a flag that is present, NULL when absent); positional
 * arguments are stored in pos (capacity pos_max), their count in *npos.
 * Arguments after "--" are positional. Returns 0, or HC_EXIT_USAGE with a
 * message in err for an unknown option, a missing or unexpected value,
 * or too many positional arguments.
 */
int hc_cli_parse_opts(int argc, char **argv, const hc_opt_t *spec, size_t nspec,
                      const char **values, char **pos, size_t pos_max, size_t *npos,
                      char *err, size_t errlen);

/*
 * Connect to ctx->conninfo (or $HERALD_DATABASE_URL, or libpq's defaults).
 * Returns HC_EXIT_OK with *db_p (caller closes it), or prints why to
 * ctx->err and returns HC_EXIT_UNREACHABLE (or HC_EXIT_USAGE for a
 * conninfo that does not parse). Never prints the conninfo itself.
 */
int hc_cli_connect(hc_ctx_t *ctx, hc_db_t **db_p);

/* The exit code for an HD_E_* failure: 4 for HD_E_UNAVAILABLE, else 1. */
int hc_cli_exit_code(int hd_err);

/* Write the program usage: synopsis, command list, global options. */
void hc_cli_print_usage(FILE *out, const char *prog, const hc_command_t *table, size_t ntable);

/* Write one command's usage line and help text. */
void hc_cli_print_command_help(FILE *out, const char *prog, const hc_command_t *cmd);

#endif
