/* cli_deployment.c: `husk deployment list|inspect|delete`, Ring's verbs over the REST API. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_deployment.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

static int list_path(const char *namespace_, char *const *statuses, size_t n_statuses, char *const *labels,
                     size_t n_labels, char **ret) {
        char *path = NULL;
        size_t size = 0;
        bool first = true;
        FILE *f = open_memstream(&path, &size);

        if (!f)
                return -ENOMEM;
        fputs("/deployments", f);
        if (namespace_)
                cli_query_add(f, &first, "namespace", namespace_);
        /* The server filters on one status; with several, the filtering is all ours. */
        if (n_statuses == 1)
                cli_query_add(f, &first, "status", statuses[0]);
        for (size_t i = 0; i < n_labels; i++)
                cli_query_add(f, &first, "label", labels[i]);
        if (fclose(f) != 0) {
                free(path);
                return -ENOMEM;
        }
        *ret = path;
        return 0;
}

/* GET a list of deployments (path with its query); anything else is reported. */
static int fetch_list(cli_http_t *h, const char *path, json_t **ret) {
        json_t *list = NULL;
        int r;

        r = cli_http_get_json(h, path, "cannot list deployments", &list);
        if (r != CLI_EXIT_OK)
                return r;
        if (!json_is_array(list)) {
                json_decref(list);
                cli_error("cannot list deployments: husk-apiserver did not answer with a list");
                return CLI_EXIT_FAILURE;
        }
        *ret = list;
        return CLI_EXIT_OK;
}

int cli_deployment_path(const char *id, const char *sub, const char *const *query, char **ret) {
        _cleanup_free_ char *e = cli_url_escape(id);
        char *path = NULL;
        size_t size = 0;
        bool first = true;
        FILE *f;

        if (!e)
                return -ENOMEM;
        f = open_memstream(&path, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "/deployments/%s", e);
        if (sub)
                fprintf(f, "/%s", sub);
        for (size_t i = 0; query && query[i]; i += 2)
                if (query[i + 1])
                        cli_query_add(f, &first, query[i], query[i + 1]);
        if (fclose(f) != 0) {
                free(path);
                return -ENOMEM;
        }
        *ret = path;
        return 0;
}

/* The full id that ref (ID, id prefix or NAME) means, or an exit code after telling why not. */
int cli_deployment_resolve(cli_http_t *h, const char *ref, const char *namespace_, char **ret_id) {
        _cleanup_(json_decrefp) json_t *list = NULL, *candidates = NULL;
        _cleanup_free_ char *path = NULL;
        const json_t *found = NULL, *d;
        size_t i;
        int r;

        if (cli_is_full_id(ref) && !namespace_) {
                *ret_id = strdup(ref);
                return *ret_id ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
        }
        if (list_path(namespace_, NULL, 0, NULL, 0, &path) < 0)
                return CLI_EXIT_FAILURE;
        r = fetch_list(h, path, &list);
        if (r != CLI_EXIT_OK)
                return r;
        r = cli_resolve_deployment(list, ref, namespace_, &found, &candidates);
        if (r == -ENOENT) {
                if (namespace_)
                        cli_error("deployment '%s' not found in namespace '%s'", ref, namespace_);
                else if (strlen(ref) < CLI_ID_PREFIX_MIN && ref[strspn(ref, "0123456789abcdef")] == '\0')
                        cli_error("deployment '%s' not found (an id prefix needs at least %d characters)", ref,
                                  CLI_ID_PREFIX_MIN);
                else
                        cli_error("deployment '%s' not found", ref);
                return CLI_EXIT_NOT_FOUND;
        }
        if (r == -ENOTUNIQ) {
                cli_error("'%s' matches %zu deployments; name one with -n NAMESPACE or a longer id:", ref,
                          json_array_size(candidates));
                json_array_foreach(candidates, i, d)
                        fprintf(stderr, "  %s  %s/%s\n", cli_json_str(d, "id", "?"), cli_json_str(d, "namespace", "?"),
                                cli_json_str(d, "name", "?"));
                return CLI_EXIT_FAILURE;
        }
        if (r < 0) {
                cli_error("cannot resolve '%s': %s", ref, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        *ret_id = strdup(cli_json_str(found, "id", ""));
        return *ret_id ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

int cli_deployment_args(const char *cmd, int argc, char **argv, const char *output, const char *format,
                        const char **ret_ref) {
        if (optind + 1 != argc)
                return cli_usage_error(cmd, optind == argc ? "missing ID or NAME" : "one ID or NAME at a time");
        if (format && !streq(output, format) && !streq(output, "json"))
                return cli_usage_error(cmd, "unknown output format '%s' (%s or json)", output, format);
        *ret_ref = argv[optind];
        return CLI_EXIT_OK;
}

int cli_deployment_verb_args(const char *cmd, void (*help)(void), const char *format, int argc, char **argv,
                             cli_verb_args_t *ret) {
        static const struct option options[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        *ret = (cli_verb_args_t){ .output = format };
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":n:o:h", options, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        ret->namespace_ = optarg;
                        break;
                case 'o':
                        ret->output = optarg;
                        break;
                case 'h':
                        help();
                        ret->help = true;
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        return cli_deployment_args(cmd, argc, argv, ret->output, format, &ret->ref);
}

int cli_deployment_open(cli_ctx_t *ctx, const char *ref, const char *namespace_, cli_http_t **ret_h, char **ret_id) {
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        int r;

        r = cli_http_open(ctx, &h);
        if (r != CLI_EXIT_OK)
                return r;
        r = cli_deployment_resolve(h, ref, namespace_, ret_id);
        if (r != CLI_EXIT_OK)
                return r;
        *ret_h = TAKE_PTR(h);
        return CLI_EXIT_OK;
}

/* ---- list ----------------------------------------------------------------------------------- */

static void list_help(void) {
        printf("Usage: husk deployment list [OPTIONS]\n"
               "\n"
               "List deployments, of every namespace unless -n is given.\n"
               "\n"
               "Options:\n"
               "  -n, --namespace NS      only deployments in namespace NS\n"
               "  -A, --all-namespaces    deployments of every namespace (the default)\n"
               "  -l, --label KEY=VALUE   only deployments with this label (repeatable: all must match)\n"
               "  -s, --status STATUS     only deployments in this status (repeatable: any may match)\n"
               "  -o, --output FORMAT     table (default) or json\n"
               "  -h, --help              show this help\n");
}

static int deployment_list(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "all-namespaces", no_argument, NULL, 'A' },
                { "label", required_argument, NULL, 'l' },
                { "status", required_argument, NULL, 's' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const cmd = "husk deployment list";
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_(json_decrefp) json_t *list = NULL, *shown = NULL;
        _cleanup_free_ char **labels = calloc((size_t)argc, sizeof(char *));
        _cleanup_free_ char **statuses = calloc((size_t)argc, sizeof(char *));
        _cleanup_free_ char *path = NULL;
        const char *namespace_ = NULL, *output = "table";
        size_t n_labels = 0, n_statuses = 0, i;
        bool all = false;
        json_t *d;
        int c, r;

        if (!labels || !statuses)
                return CLI_EXIT_FAILURE;
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":n:Al:s:o:h", options, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        namespace_ = optarg;
                        break;
                case 'A':
                        all = true;
                        break;
                case 'l':
                        if (!strchr(optarg, '=') || optarg[0] == '=')
                                return cli_usage_error(cmd, "--label takes KEY=VALUE, not '%s'", optarg);
                        labels[n_labels++] = optarg;
                        break;
                case 's':
                        statuses[n_statuses++] = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        list_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        if (optind < argc)
                return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
        if (all && namespace_)
                return cli_usage_error(cmd, "-n and -A exclude each other");
        if (!streq(output, "table") && !streq(output, "json"))
                return cli_usage_error(cmd, "unknown output format '%s' (table or json)", output);

        r = cli_http_open(ctx, &h);
        if (r != CLI_EXIT_OK)
                return r;
        if (list_path(namespace_, statuses, n_statuses, labels, n_labels, &path) < 0)
                return CLI_EXIT_FAILURE;
        r = fetch_list(h, path, &list);
        if (r != CLI_EXIT_OK)
                return r;

        /* The server filters; filtering again here keeps the output right whatever it does. */
        shown = json_array();
        if (!shown)
                return CLI_EXIT_FAILURE;
        json_array_foreach(list, i, d) if (cli_deployment_matches(d, namespace_, statuses, n_statuses, labels,
                                                                  n_labels)) json_array_append(shown, d);

        if (streq(output, "json")) {
                cli_json_write(stdout, shown);
                return CLI_EXIT_OK;
        }
        if (json_array_size(shown) == 0) {
                if (namespace_)
                        fprintf(stderr, "No deployments found in namespace %s.\n", namespace_);
                else
                        fprintf(stderr, "No deployments found.\n");
                return CLI_EXIT_OK;
        }
        if (cli_deployments_table(stdout, shown, now_realtime_ms()) < 0)
                return CLI_EXIT_FAILURE;
        return CLI_EXIT_OK;
}

/* ---- inspect -------------------------------------------------------------------------------- */

static void inspect_help(void) {
        printf("Usage: husk deployment inspect ID|NAME [OPTIONS]\n"
               "\n"
               "Show a deployment and its instances. ID may be a full id or a unique prefix of at least\n"
               "%d characters; NAME is looked up in -n NAMESPACE, else in \"default\", else in the one\n"
               "namespace that has it.\n"
               "\n"
               "Options:\n"
               "  -n, --namespace NS      look NAME up in namespace NS\n"
               "  -o, --output FORMAT     text (default) or json\n"
               "  -h, --help              show this help\n",
               CLI_ID_PREFIX_MIN);
}

static int deployment_inspect(cli_ctx_t *ctx, int argc, char **argv) {
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_(json_decrefp) json_t *d = NULL;
        _cleanup_free_ char *id = NULL, *path = NULL, *what = NULL;
        const char *output, *ref;
        cli_verb_args_t a;
        int r;

        r = cli_deployment_verb_args("husk deployment inspect", inspect_help, "text", argc, argv, &a);
        if (r != CLI_EXIT_OK || a.help)
                return r;
        output = a.output;
        ref = a.ref;
        r = cli_deployment_open(ctx, ref, a.namespace_, &h, &id);
        if (r != CLI_EXIT_OK)
                return r;
        if (cli_deployment_path(id, NULL, NULL, &path) < 0)
                return CLI_EXIT_FAILURE;
        if (asprintf(&what, "cannot inspect deployment '%s'", ref) < 0) {
                what = NULL;
                return CLI_EXIT_FAILURE;
        }
        r = cli_http_get_json(h, path, what, &d);
        if (r != CLI_EXIT_OK)
                return r;

        if (streq(output, "json"))
                cli_json_write(stdout, d);
        else
                cli_deployment_details(stdout, d, now_realtime_ms());
        return CLI_EXIT_OK;
}

/* ---- delete --------------------------------------------------------------------------------- */

static void delete_help(void) {
        printf("Usage: husk deployment delete ID|NAME... [OPTIONS]\n"
               "\n"
               "Delete deployments: their instances are stopped, then the records removed. ID and NAME\n"
               "are resolved as by `husk deployment inspect`.\n"
               "\n"
               "Options:\n"
               "  -n, --namespace NS      look NAME up in namespace NS\n"
               "  -h, --help              show this help\n");
}

static int delete_one(cli_http_t *h, const char *ref, const char *namespace_) {
        _cleanup_free_ char *id = NULL, *path = NULL, *error = NULL, *what = NULL;
        cli_response_t resp;
        int r;

        r = cli_deployment_resolve(h, ref, namespace_, &id);
        if (r != CLI_EXIT_OK)
                return r;
        if (cli_deployment_path(id, NULL, NULL, &path) < 0)
                return CLI_EXIT_FAILURE;
        r = cli_http_request(h, "DELETE", path, NULL, &resp, &error);
        if (r < 0)
                return cli_http_report_failure(h, r, error);
        if (resp.status >= 200 && resp.status < 300) {
                printf("deployment %s deleted (id %s)\n", cli_json_str(resp.json, "name", ref), id);
                r = CLI_EXIT_OK;
        } else {
                if (asprintf(&what, "cannot delete deployment '%s'", ref) < 0)
                        what = NULL;
                r = cli_http_report_status(what ? what : "cannot delete deployment", &resp);
        }
        cli_response_clear(&resp);
        return r;
}

static int deployment_delete(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const cmd = "husk deployment delete";
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        const char *namespace_ = NULL;
        int c, r, ret = CLI_EXIT_OK;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":n:h", options, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        namespace_ = optarg;
                        break;
                case 'h':
                        delete_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        if (optind == argc)
                return cli_usage_error(cmd, "missing ID or NAME");

        r = cli_http_open(ctx, &h);
        if (r != CLI_EXIT_OK)
                return r;
        for (int i = optind; i < argc; i++) {
                r = delete_one(h, argv[i], namespace_);
                if (r == CLI_EXIT_CONNECTION)
                        return r; /* the others would fail the same way */
                if (r != CLI_EXIT_OK && ret == CLI_EXIT_OK)
                        ret = r;
        }
        return ret;
}

/* ---- the verb ------------------------------------------------------------------------------- */

static const cli_verb_t deployment_verbs[] = {
        { "list", deployment_list, "list deployments" },
        { "inspect", deployment_inspect, "show a deployment and its instances" },
        { "delete", deployment_delete, "delete deployments" },
        { "exec", cli_deployment_exec, "run a command in a deployment's VM (-- COMMAND ARGS...)" },
        { "events", cli_deployment_events, "show a deployment's events (--follow to keep watching)" },
        { "logs", cli_deployment_logs, "print a deployment's console logs (--tail, --since, --level, --follow)" },
        { "health-checks", cli_deployment_health_checks, "show the health checks of a deployment's instances" },
        { "metrics", cli_deployment_metrics, "show a deployment's CPU, memory, network and disk (--watch to refresh)" },
};

static void deployment_help(void) {
        printf("Usage: husk deployment COMMAND [OPTIONS]\n"
               "\n"
               "Commands:\n");
        cli_write_verbs(deployment_verbs, ELEMENTSOF(deployment_verbs));
        printf("\nRun 'husk deployment COMMAND --help' for a command's options.\n");
}

int verb_deployment(cli_ctx_t *ctx, int argc, char **argv) {
        if (argc < 2) {
                deployment_help();
                return CLI_EXIT_USAGE;
        }
        if (streq(argv[1], "-h") || streq(argv[1], "--help") || streq(argv[1], "help")) {
                deployment_help();
                return CLI_EXIT_OK;
        }
        return cli_dispatch(ctx, deployment_verbs, ELEMENTSOF(deployment_verbs), "husk deployment", argc - 1, argv + 1);
}

const cli_verb_t *cli_deployment_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(deployment_verbs);
        return deployment_verbs;
}
