/* cli_deployment.h: deployments as the CLI sees them: finding one by ID, prefix or name,
 * filtering lists, and rendering them as a table or a detail view. Pure functions over the
 * API's JSON, so the rules are unit-tested without a server. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Shortest id prefix accepted in place of a full id. */
#define CLI_ID_PREFIX_MIN 4
/* Width of the ID column of `deployment list`. */
#define CLI_SHORT_ID 8

/* A canonical UUID (8-4-4-4-12 hex digits): used as is, without listing first. */
bool cli_is_full_id(const char *ref);

/* Find the deployment ref means in list (an array of deployments), in this order: an exact
 * id; a name (within namespace_ when given, else in "default" first, then across all
 * namespaces); an id prefix of at least CLI_ID_PREFIX_MIN characters. Returns 0 with *ret
 * pointing into list, -ENOENT when nothing matches, -ENOTUNIQ when several do, with
 * *ret_candidates a new array of them. */
int cli_resolve_deployment(const json_t *list, const char *ref, const char *namespace_, const json_t **ret,
                           json_t **ret_candidates);

/* Whether d passes `deployment list` filters: namespace (NULL: any), any of the statuses
 * (none: any), all of the labels ("key=value"). */
bool cli_deployment_matches(const json_t *d, const char *namespace_, char *const *statuses, size_t n_statuses,
                            char *const *labels, size_t n_labels);

/* ID (8 characters), NAMESPACE, NAME, RUNTIME, STATUS, READY (ready/replicas), AGE. */
int cli_deployments_table(FILE *f, const json_t *list, uint64_t now_ms);

/* `deployment inspect` without -o: fields, labels, then the instances (or why they are
 * unknown). */
void cli_deployment_details(FILE *f, const json_t *d, uint64_t now_ms);

/* ---- over HTTP ---------------------------------------------------------------------------- */
struct cli_http;
struct cli_ctx;

/* The full id that ref (ID, id prefix or NAME) means, or an exit code after telling why not
 * (cli_deployment.c). */
int cli_deployment_resolve(struct cli_http *h, const char *ref, const char *namespace_, char **ret_id);

/* After a verb's options: the one ID|NAME argument left in argv (from optind) into *ret_ref, and,
 * unless format is NULL, output checked to be format or "json". Returns CLI_EXIT_OK, or the exit
 * code of the usage error told (cli_deployment.c). */
int cli_deployment_args(const char *cmd, int argc, char **argv, const char *output, const char *format,
                        const char **ret_ref);

/* The command line of a verb that takes only -n NS, -o FORMAT (format or json) and -h, and one
 * ID|NAME: parsed into *ret (output defaults to format). Returns CLI_EXIT_OK, with ret->help set
 * when help() was shown and the verb is done, or the exit code of the usage error told. */
typedef struct cli_verb_args {
        const char *namespace_, *output, *ref;
        bool help;
} cli_verb_args_t;
int cli_deployment_verb_args(const char *cmd, void (*help)(void), const char *format, int argc, char **argv,
                             cli_verb_args_t *ret);

/* What every verb on one deployment starts with: the connection to the apiserver and the full
 * id of the deployment ref (ID, id prefix or NAME) means. Returns CLI_EXIT_OK, or an exit code
 * after telling why not (cli_deployment.c). */
int cli_deployment_open(struct cli_ctx *ctx, const char *ref, const char *namespace_, struct cli_http **ret_h,
                        char **ret_id);

/* "/deployments/<id>", then "/<sub>" unless sub is NULL, then "?name=value&..." from query: pairs
 * of name and value up to a NULL name, a pair with a NULL value left out (NULL query: none).
 * Everything is URL-escaped. Returns 0 or -ENOMEM. */
int cli_deployment_path(const char *id, const char *sub, const char *const *query, char **ret);

/* `husk deployment events` (cli_deployment_events.c). */
int cli_deployment_events(struct cli_ctx *ctx, int argc, char **argv);
/* `husk deployment health-checks` (cli_deployment_health.c). */
int cli_deployment_health_checks(struct cli_ctx *ctx, int argc, char **argv);
/* `husk deployment metrics` (cli_deployment_metrics.c). */
int cli_deployment_metrics(struct cli_ctx *ctx, int argc, char **argv);

/* `husk deployment exec` (cli_deployment_exec.c). */
int cli_deployment_exec(struct cli_ctx *ctx, int argc, char **argv);

/* `husk deployment logs` (cli_deployment_logs.c). */
int cli_deployment_logs(struct cli_ctx *ctx, int argc, char **argv);
