/* cli_webhook.c: `husk webhook create|list|get|delete|deliveries`: a webhook's secret goes in once and is never shown. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_http.h"
#include "cli/cli_manifest.h"
#include "cli/cli_output.h"

#define WEBHOOK_SECRET_MAX 1024
#define WEBHOOK_FILTER_MAX 32

static void webhook_help(void) {
        printf("Usage: husk webhook create URL (--secret-from-file PATH | --secret-from-file - | --secret S)\n"
               "                   [--name NAME] [--reason REASON]... [--level LEVEL] [-n NS]...\n"
               "       husk webhook list [-o table|json]\n"
               "       husk webhook get ID|NAME [-o table|json]\n"
               "       husk webhook delete ID|NAME\n"
               "       husk webhook deliveries ID|NAME [--limit N] [-o table|json]\n"
               "\n"
               "A webhook POSTs each event that passes its filter to URL (http or https) as JSON, signed\n"
               "with HMAC-SHA256 of the body under its secret: header X-Husk-Signature: sha256=<hex>,\n"
               "with X-Husk-Event-Id, X-Husk-Event (the reason), X-Husk-Delivery and X-Husk-Timestamp.\n"
               "Deliveries are queued in husk-apiserver's database and retried with exponential back-off\n"
               "until the receiver answers 2xx, then given up (dead) after apiserver.webhooks.max_attempts.\n"
               "`deliveries` shows the newest first with the last outcome (-o json: every attempt).\n"
               "The secret (16 to 1024 bytes) is never shown again; --secret puts it on the command line,\n"
               "where other local users may see it in the process list (a file's trailing newline is not\n"
               "part of it).\n"
               "\n"
               "Options:\n"
               "  --name NAME             a name to use in place of the id (a DNS label)\n"
               "  --reason REASON         only events with this reason (Created, BackOff, ...); repeat\n"
               "                          for several (default: every reason)\n"
               "  --level LEVEL           only events at this level or more severe: info (default),\n"
               "                          warning or error\n"
               "  -n, --namespace NS      only events of deployments in NS; repeat for several\n"
               "                          (default: every namespace)\n"
               "  --limit N               deliveries: how many (default 50, at most 1000)\n"
               "  -o, --output FORMAT     table (default) or json\n");
}

static void wipe_free(char *s, size_t n) {
        if (s)
                explicit_bzero(s, n);
        free(s);
}

static int webhook_create(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "name", required_argument, NULL, 'N' },
                { "secret", required_argument, NULL, 's' },
                { "secret-from-file", required_argument, NULL, 'f' },
                { "reason", required_argument, NULL, 'r' },
                { "level", required_argument, NULL, 'l' },
                { "namespace", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const cmd = "husk webhook create";
        const char *name = NULL, *secret = NULL, *file = NULL, *level = NULL;
        json_t *reasons = json_array(), *namespaces = json_array(), *filter, *body, *answer = NULL;
        char *content = NULL;
        size_t size = 0;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, ":n:h", options, NULL)) >= 0) {
                switch (c) {
                case 'N':
                        name = optarg;
                        break;
                case 's':
                        secret = optarg;
                        break;
                case 'f':
                        file = optarg;
                        break;
                case 'r':
                        json_array_append_new(reasons, json_string(optarg));
                        break;
                case 'l':
                        level = optarg;
                        break;
                case 'n':
                        json_array_append_new(namespaces, json_string(optarg));
                        break;
                case 'h':
                        json_decref(reasons);
                        json_decref(namespaces);
                        webhook_help();
                        return CLI_EXIT_OK;
                default:
                        json_decref(reasons);
                        json_decref(namespaces);
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        filter = json_pack("{s:o, s:o}", "reasons", reasons, "namespaces", namespaces);
        if (filter && level)
                json_object_set_new(filter, "level", json_string(level));
        if (optind != argc - 1) {
                json_decref(filter);
                return cli_usage_error(cmd, "give one URL");
        }
        if (!!secret == !!file) {
                json_decref(filter);
                return cli_usage_error(cmd, "give the secret with one of --secret-from-file or --secret");
        }
        if (file) {
                r = cli_manifest_read(file, &content, &size);
                if (r < 0) {
                        json_decref(filter);
                        cli_error("cannot read %s: %s", streq(file, "-") ? "stdin" : file, strerror(-r));
                        return CLI_EXIT_FAILURE;
                }
                while (size > 0 && (content[size - 1] == '\n' || content[size - 1] == '\r'))
                        content[--size] = '\0';
                if (size > WEBHOOK_SECRET_MAX) {
                        json_decref(filter);
                        wipe_free(content, size);
                        cli_error("%s: %zu bytes, a webhook's secret is at most %d", file, size, WEBHOOK_SECRET_MAX);
                        return CLI_EXIT_FAILURE;
                }
        }
        body = json_pack("{s:s, s:s%, s:o}", "url", argv[optind], "secret", secret ?: content,
                         secret ? strlen(secret) : size, "filter", filter);
        wipe_free(content, size);
        if (!body) {
                cli_error("the secret is not UTF-8 text without NUL bytes");
                return CLI_EXIT_FAILURE;
        }
        if (name)
                json_object_set_new(body, "name", json_string(name));
        r = cli_http_call(ctx, "POST", "/webhooks", body, 201, "cannot create the webhook", &answer);
        json_decref(body);
        if (r == CLI_EXIT_OK)
                printf("webhook %s created (%s)\n", cli_json_str(answer, "id", "?"), argv[optind]);
        json_decref(answer);
        return r;
}

/* "Created, BackOff", "" for none. */
static void join(const json_t *a, char *buf, size_t size) {
        const json_t *v;
        size_t i, n = 0;

        buf[0] = '\0';
        json_array_foreach(a, i, v) {
                int k = snprintf(buf + n, size - n, "%s%s", i ? "," : "", json_string_value(v) ?: "?");
                if (k < 0 || (size_t)k >= size - n)
                        break;
                n += (size_t)k;
        }
}

static int webhook_show(json_t *answer, bool one, const char *output) {
        static const char *const headers[] = { "ID", "NAME", "URL", "REASONS", "LEVEL", "NAMESPACES", "CREATED" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        json_t *list = one ? json_pack("[O]", answer) : json_incref(answer), *e;
        size_t i;

        if (streq(output, "json")) {
                cli_json_write(stdout, answer);
                json_decref(list);
                return CLI_EXIT_OK;
        }
        if (!list || cli_table_new(ELEMENTSOF(headers), headers, &t) < 0) {
                json_decref(list);
                return CLI_EXIT_FAILURE;
        }
        json_array_foreach(list, i, e) {
                const json_t *f = json_object_get(e, "filter");
                char reasons[256], namespaces[256];

                join(json_object_get(f, "reasons"), reasons, sizeof(reasons));
                join(json_object_get(f, "namespaces"), namespaces, sizeof(namespaces));
                const char *cells[] = { cli_json_str(e, "id", ""),        cli_json_str(e, "name", ""),
                                        cli_json_str(e, "url", ""),       reasons[0] ? reasons : "*",
                                        cli_json_str(f, "level", "info"), namespaces[0] ? namespaces : "*",
                                        cli_json_str(e, "created_at", "") };
                if (cli_table_add_row(t, cells) < 0) {
                        json_decref(list);
                        return CLI_EXIT_FAILURE;
                }
        }
        cli_table_write(t, stdout);
        json_decref(list);
        return CLI_EXIT_OK;
}

static int deliveries_show(json_t *answer, const char *output) {
        static const char *const headers[] = { "ID", "EVENT", "REASON", "STATE", "ATTEMPTS", "LAST", "CREATED" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        json_t *e;
        size_t i;

        if (streq(output, "json")) {
                cli_json_write(stdout, answer);
                return CLI_EXIT_OK;
        }
        if (cli_table_new(ELEMENTSOF(headers), headers, &t) < 0)
                return CLI_EXIT_FAILURE;
        json_array_foreach(answer, i, e) {
                char id[24], event[24], attempts[16], last[160];
                const char *error = cli_json_str(e, "last_error", "");

                snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(e, "id")));
                snprintf(event, sizeof(event), "%" JSON_INTEGER_FORMAT,
                         json_integer_value(json_object_get(e, "event_id")));
                snprintf(attempts, sizeof(attempts), "%" JSON_INTEGER_FORMAT,
                         json_integer_value(json_object_get(e, "attempts")));
                if (*error)
                        snprintf(last, sizeof(last), "%.150s", error);
                else if (json_integer_value(json_object_get(e, "last_status")))
                        snprintf(last, sizeof(last), "HTTP %" JSON_INTEGER_FORMAT,
                                 json_integer_value(json_object_get(e, "last_status")));
                else
                        snprintf(last, sizeof(last), "-");
                const char *cells[] = { id,       event, cli_json_str(e, "reason", ""),    cli_json_str(e, "state", ""),
                                        attempts, last,  cli_json_str(e, "created_at", "") };
                if (cli_table_add_row(t, cells) < 0)
                        return CLI_EXIT_FAILURE;
        }
        cli_table_write(t, stdout);
        return CLI_EXIT_OK;
}

/* list, get, delete, deliveries. */
static int webhook_simple(cli_ctx_t *ctx, int argc, char **argv, const char *verb) {
        static const struct option options[] = {
                { "output", required_argument, NULL, 'o' },
                { "limit", required_argument, NULL, 'L' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ char *path = NULL, *cmd = NULL, *key = NULL;
        const char *output = "table", *limit = NULL;
        json_auto_t *answer = NULL;
        uint64_t n;
        int c, r;

        if (asprintf(&cmd, "husk webhook %s", verb) < 0)
                return CLI_EXIT_FAILURE;
        optind = 0;
        while ((c = getopt_long(argc, argv, ":o:h", options, NULL)) >= 0) {
                switch (c) {
                case 'o':
                        output = optarg;
                        break;
                case 'L':
                        limit = optarg;
                        break;
                case 'h':
                        webhook_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        if (!streq(output, "table") && !streq(output, "json"))
                return cli_usage_error(cmd, "-o: table or json");
        if (limit && (!streq(verb, "deliveries") || parse_u64(limit, &n) < 0 || n == 0 || n > 1000))
                return cli_usage_error(cmd, "--limit: deliveries only, 1 to 1000");
        if (streq(verb, "list")) {
                if (optind != argc)
                        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
                r = cli_http_call(ctx, "GET", "/webhooks", NULL, 200, "cannot list webhooks", &answer);
                return r == CLI_EXIT_OK ? webhook_show(answer, false, output) : r;
        }
        if (optind != argc - 1)
                return cli_usage_error(cmd, "give one webhook ID or NAME");
        key = cli_url_escape(argv[optind]);
        if (!key)
                return CLI_EXIT_FAILURE;
        if (streq(verb, "get")) {
                if (asprintf(&path, "/webhooks/%s", key) < 0)
                        return CLI_EXIT_FAILURE;
                r = cli_http_call(ctx, "GET", path, NULL, 200, "cannot read the webhook", &answer);
                return r == CLI_EXIT_OK ? webhook_show(answer, true, output) : r;
        }
        if (streq(verb, "deliveries")) {
                if (asprintf(&path, "/webhooks/%s/events?limit=%s", key, limit ?: "50") < 0)
                        return CLI_EXIT_FAILURE;
                r = cli_http_call(ctx, "GET", path, NULL, 200, "cannot list the webhook's deliveries", &answer);
                return r == CLI_EXIT_OK ? deliveries_show(answer, output) : r;
        }
        if (asprintf(&path, "/webhooks/%s", key) < 0)
                return CLI_EXIT_FAILURE;
        r = cli_http_call(ctx, "DELETE", path, NULL, 204, "cannot delete the webhook", NULL);
        if (r == CLI_EXIT_OK)
                printf("webhook %s deleted\n", argv[optind]);
        return r;
}

/* What verb_webhook dispatches, for husk completion: it refuses any other COMMAND. */
static const cli_verb_t webhook_commands[] = {
        { "create", NULL, "create a webhook (URL, secret, filter)" },
        { "list", NULL, "list webhooks (never their secrets)" },
        { "get", NULL, "show one webhook" },
        { "delete", NULL, "delete a webhook and its deliveries" },
        { "deliveries", NULL, "a webhook's deliveries, newest first" },
};

const cli_verb_t *cli_webhook_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(webhook_commands);
        return webhook_commands;
}

int verb_webhook(cli_ctx_t *ctx, int argc, char **argv) {
        if (argc >= 2 && argv[1][0] != '-' &&
            !cli_command_known(webhook_commands, ELEMENTSOF(webhook_commands), argv[1]))
                return cli_usage_error("husk webhook", "unknown command '%s'", argv[1]);
        if (argc < 2)
                return cli_usage_error("husk webhook", "missing command: create, list, get, delete or deliveries");
        if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
                webhook_help();
                return CLI_EXIT_OK;
        }
        if (streq(argv[1], "create"))
                return webhook_create(ctx, argc - 1, argv + 1);
        if (streq(argv[1], "list") || streq(argv[1], "get") || streq(argv[1], "delete") || streq(argv[1], "deliveries"))
                return webhook_simple(ctx, argc - 1, argv + 1, argv[1]);
        return cli_usage_error("husk webhook", "unknown command '%s'", argv[1]);
}
