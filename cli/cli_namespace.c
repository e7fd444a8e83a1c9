/* cli_namespace.c: `husk namespace list|create|delete|audit`: namespaces and who did what in them. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

static void namespace_help(void) {
        printf("Usage: husk namespace list\n"
               "       husk namespace create NS\n"
               "       husk namespace delete NS [--cascade]\n"
               "       husk namespace audit NS [--limit N] [-o table|json]\n"
               "\n"
               "A namespace holding deployments is deleted only with --cascade, which deletes them too.\n"
               "\n"
               "The audit log of namespace NS, oldest first: every create, update, delete and exec,\n"
               "with who (user or token), from where and how it ended (the HTTP status). Logins and\n"
               "user management belong to no namespace: admins read them with GET /audit.\n"
               "\n"
               "Options:\n"
               "      --limit N           the newest N entries (default 100, at most 1000)\n"
               "  -o, --output FORMAT     table (default) or json\n");
}

static int namespace_audit(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "limit", required_argument, NULL, 'l' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const headers[] = { "TIME", "ACTOR", "VIA", "ACTION", "TARGET", "SOURCE", "STATUS" };
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        _cleanup_free_ char *escaped = NULL, *path = NULL;
        const char *limit = "100", *output = "table";
        json_auto_t *entries = NULL;
        json_t *e;
        size_t i;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, ":o:h", options, NULL)) >= 0) {
                switch (c) {
                case 'l':
                        limit = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        namespace_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error("husk namespace audit", c, optopt, argv, optind);
                }
        }
        if (optind != argc - 1)
                return cli_usage_error("husk namespace audit", "give one namespace NS");
        if (!streq(output, "table") && !streq(output, "json"))
                return cli_usage_error("husk namespace audit", "-o: table or json");
        escaped = cli_url_escape(argv[optind]);
        if (!escaped)
                return CLI_EXIT_FAILURE;
        _cleanup_free_ char *lim = cli_url_escape(limit);
        if (!lim || asprintf(&path, "/namespaces/%s/audit?limit=%s", escaped, lim) < 0)
                return CLI_EXIT_FAILURE;
        r = cli_http_open(ctx, &h);
        if (r != CLI_EXIT_OK)
                return r;
        r = cli_http_get_json(h, path, "cannot read the audit log", &entries);
        if (r != CLI_EXIT_OK)
                return r;
        if (streq(output, "json")) {
                cli_json_write(stdout, entries);
                return CLI_EXIT_OK;
        }
        if (cli_table_new(7, headers, &t) < 0)
                return CLI_EXIT_FAILURE;
        json_array_foreach(entries, i, e) {
                char status[16];
                const char *cells[] = { cli_json_str(e, "timestamp", ""),
                                        cli_json_str(e, "actor", ""),
                                        cli_json_str(e, "via", ""),
                                        cli_json_str(e, "action", ""),
                                        cli_json_str(e, "target", ""),
                                        cli_json_str(e, "source", ""),
                                        status };

                snprintf(status, sizeof(status), "%lld", (long long)json_integer_value(json_object_get(e, "status")));
                if (cli_table_add_row(t, cells) < 0)
                        return CLI_EXIT_FAILURE;
        }
        cli_table_write(t, stdout);
        return CLI_EXIT_OK;
}

static int namespace_list(cli_ctx_t *ctx) {
        static const char *const headers[] = { "NAME", "DEPLOYMENTS" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        json_auto_t *list = NULL;
        json_t *ns;
        size_t i;
        int r;

        r = cli_http_call(ctx, "GET", "/namespaces", NULL, 200, "cannot list namespaces", &list);
        if (r != CLI_EXIT_OK)
                return r;
        if (cli_table_new(2, headers, &t) < 0)
                return CLI_EXIT_FAILURE;
        json_array_foreach(list, i, ns) {
                char count[16];
                const char *cells[] = { cli_json_str(ns, "name", ""), count };

                snprintf(count, sizeof(count), "%lld",
                         (long long)json_integer_value(json_object_get(ns, "deployments")));
                if (cli_table_add_row(t, cells) < 0)
                        return CLI_EXIT_FAILURE;
        }
        cli_table_write(t, stdout);
        return CLI_EXIT_OK;
}

static int namespace_create(cli_ctx_t *ctx, const char *name) {
        json_auto_t *body = json_pack("{s:s}", "name", name);
        int r;

        if (!body)
                return CLI_EXIT_FAILURE;
        r = cli_http_call(ctx, "POST", "/namespaces", body, 201, "cannot create the namespace", NULL);
        if (r == CLI_EXIT_OK)
                printf("Namespace %s created\n", name);
        return r;
}

static int namespace_delete(cli_ctx_t *ctx, const char *name, bool cascade) {
        _cleanup_free_ char *escaped = cli_url_escape(name), *path = NULL;
        int r;

        if (!escaped || asprintf(&path, "/namespaces/%s%s", escaped, cascade ? "?cascade=true" : "") < 0)
                return CLI_EXIT_FAILURE;
        r = cli_http_call(ctx, "DELETE", path, NULL, 204, "cannot delete the namespace", NULL);
        if (r == CLI_EXIT_OK)
                printf("Namespace %s deleted%s\n", name, cascade ? ", with its deployments" : "");
        return r;
}

/* What verb_namespace dispatches, for husk completion: it refuses any other COMMAND. */
static const cli_verb_t namespace_commands[] = {
        { "list", NULL, "list namespaces" },
        { "create", NULL, "create a namespace" },
        { "delete", NULL, "delete a namespace (--cascade: with its deployments)" },
        { "audit", NULL, "read a namespace's audit log" },
};

const cli_verb_t *cli_namespace_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(namespace_commands);
        return namespace_commands;
}

int verb_namespace(cli_ctx_t *ctx, int argc, char **argv) {
        if (argc >= 2 && argv[1][0] != '-' &&
            !cli_command_known(namespace_commands, ELEMENTSOF(namespace_commands), argv[1]))
                return cli_usage_error("husk namespace", "unknown command '%s'", argv[1]);
        if (argc == 2 && streq(argv[1], "list"))
                return namespace_list(ctx);
        if (argc == 3 && streq(argv[1], "create"))
                return namespace_create(ctx, argv[2]);
        if ((argc == 3 || argc == 4) && streq(argv[1], "delete")) {
                if (argc == 4 && !streq(argv[3], "--cascade"))
                        return cli_usage_error("husk namespace delete", "unknown option %s", argv[3]);
                return namespace_delete(ctx, argv[2], argc == 4);
        }
        if (argc >= 2 && (streq(argv[1], "-h") || streq(argv[1], "--help"))) {
                namespace_help();
                return CLI_EXIT_OK;
        }
        if (argc >= 2 && streq(argv[1], "audit"))
                return namespace_audit(ctx, argc - 1, argv + 1);
        return cli_usage_error("husk namespace", "use: husk namespace list|create NS|delete NS [--cascade]|audit NS");
}
