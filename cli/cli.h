/* cli.h: what every `husk` verb shares: the global context, Ring's exit codes and verb tables. */
#pragma once

#include <stdbool.h>
#include <jansson.h>
#include <stddef.h>

#include "lib/util.h"

#define CLI_DEFAULT_HOST "http://127.0.0.1:3030"

/* Exit codes are Ring's, so scripts written against `ring` keep working: 2 is an
 * authentication or authorization failure, and the usage error every getopt-style tool uses. */
enum {
        CLI_EXIT_OK = 0,
        CLI_EXIT_FAILURE = 1, /* anything else, validation included */
        CLI_EXIT_USAGE = 2,
        CLI_EXIT_AUTH = 2,       /* 401 or 403: log in, or ask for the role or scope */
        CLI_EXIT_CONNECTION = 3, /* husk-apiserver could not be reached */
        CLI_EXIT_NOT_FOUND = 4,
        CLI_EXIT_CONFLICT = 5,
};

typedef struct cli_ctx {
        const char *host;        /* --host, else $HUSK_HOST, else CLI_DEFAULT_HOST; not normalized */
        const char *config_path; /* --config; NULL: $HUSK_CONFIG, else the default path */
        const char *token;       /* --token, else $HUSK_TOKEN, else the context's; NULL: none */
        const char *context;     /* --context, else $HUSK_CONTEXT, else the current one; NULL: none */
        const char *ca_file;     /* --ca-file, else $HUSK_CA_FILE: CAs for an https host; NULL: the system's */
        /* main.c's tables, which husk completion reads: */
        const struct cli_verb *verbs; /* the verbs */
        size_t n_verbs;
        const struct option *options;                  /* the options before the verb, ended by a NULL name */
        const struct cli_verb_commands *verb_commands; /* each verb's COMMANDs */
        size_t n_verb_commands;
} cli_ctx_t;

/* A verb receives argv with argv[0] = its own name and returns an exit code. */
typedef int (*cli_verb_fn)(cli_ctx_t *ctx, int argc, char **argv);

typedef struct cli_verb {
        const char *name;
        cli_verb_fn run;     /* NULL in a table of names a verb dispatches itself (cli_command_known) */
        const char *summary; /* one line for --help */
} cli_verb_t;

/* A verb's own COMMANDs (husk deployment list, ...): the table its dispatch uses, which husk
 * completion offers after it. */
typedef struct cli_verb_commands {
        const char *verb;
        const cli_verb_t *(*commands)(size_t *ret_n);
} cli_verb_commands_t;

/* Whether word names a row of the table: a verb that dispatches its COMMANDs itself refuses
 * any other first, so that its table is never behind what it runs. */
bool cli_command_known(const cli_verb_t *commands, size_t n, const char *word);

/* Run the verb named by argv[0] from the table; unknown names are usage errors that point
 * at `<prefix> --help`. */
int cli_dispatch(cli_ctx_t *ctx, const cli_verb_t *verbs, size_t n_verbs, const char *prefix, int argc, char **argv);
/* The verb list of a --help text, one "  name  summary" line each. */
void cli_write_verbs(const cli_verb_t *verbs, size_t n_verbs);

/* Messages for the user on stderr: "error: ..." / "warning: ...". */
void cli_error(const char *fmt, ...) _printf_(1, 2);
void cli_warning(const char *fmt, ...) _printf_(1, 2);
/* Print "error: ..." plus a pointer to `<command> --help`, return CLI_EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...) _printf_(2, 3);
/* The usage message for a getopt failure ('?' or ':'), as cli_usage_error does. */
int cli_getopt_error(const char *command, int c, int optopt_, char **argv, int optind_);

/* The verbs, one file each. */
int verb_apply(cli_ctx_t *ctx, int argc, char **argv);
int verb_deployment(cli_ctx_t *ctx, int argc, char **argv);
int verb_tap(cli_ctx_t *ctx, int argc, char **argv);
int verb_context(cli_ctx_t *ctx, int argc, char **argv);
int verb_login(cli_ctx_t *ctx, int argc, char **argv);
int verb_logout(cli_ctx_t *ctx, int argc, char **argv);
int verb_user(cli_ctx_t *ctx, int argc, char **argv);
int verb_token(cli_ctx_t *ctx, int argc, char **argv);
int verb_namespace(cli_ctx_t *ctx, int argc, char **argv);
int verb_config(cli_ctx_t *ctx, int argc, char **argv);
int verb_secret(cli_ctx_t *ctx, int argc, char **argv);
/* Create config name in ns with data, or replace the data of the one that exists, saying which
 * on stdout (cli_config.c; husk apply's configs: too). Returns an exit code. */
int cli_config_put(cli_ctx_t *ctx, const char *ns, const char *name, json_t *data);
int verb_volume(cli_ctx_t *ctx, int argc, char **argv);
int verb_node(cli_ctx_t *ctx, int argc, char **argv);
int verb_doctor(cli_ctx_t *ctx, int argc, char **argv);
int verb_completion(cli_ctx_t *ctx, int argc, char **argv);
/* The tables husk completion reads below main.c's verbs (cli_ctx_t's). */
const cli_verb_t *cli_config_commands(size_t *ret_n);
const cli_verb_t *cli_context_commands(size_t *ret_n);
const cli_verb_t *cli_deployment_commands(size_t *ret_n);
const cli_verb_t *cli_namespace_commands(size_t *ret_n);
const cli_verb_t *cli_node_commands(size_t *ret_n);
const cli_verb_t *cli_secret_commands(size_t *ret_n);
const cli_verb_t *cli_token_commands(size_t *ret_n);
const cli_verb_t *cli_user_commands(size_t *ret_n);
const cli_verb_t *cli_volume_commands(size_t *ret_n);
const cli_verb_t *cli_completion_commands(size_t *ret_n);

/* A password from the terminal without echo (prompt shown there), or the first line of
 * standard input. -ENOTTY when there is no terminal, -EINVAL when empty or too long. */
int cli_read_password(const char *prompt, bool from_stdin, char *buf, size_t size);
