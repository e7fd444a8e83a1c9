/* cli_config.c: `husk config list|inspect|create|delete`: namespaced key/value data for deployments. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_http.h"
#include "cli/cli_manifest.h"
#include "cli/cli_output.h"

static void config_help(void) {
        printf("Usage: husk config list [-n NS] [-o table|json]\n"
               "       husk config inspect NAME [-n NS]\n"
               "       husk config create NAME [-n NS] [--from-literal KEY=VALUE]... [--from-file [KEY=]PATH]...\n"
               "       husk config delete NAME [-n NS]\n"
               "\n"
               "A config is key/value data in a namespace, for deployments' config volumes. create sets\n"
               "every key given (a file's key is its base name unless KEY= says otherwise; - is stdin);\n"
               "giving an existing config's NAME replaces its data: running instances keep what they\n"
               "started with, the next start gets the new data, and each deployment using it is told\n"
               "(a ConfigChanged event).\n"
               "\n"
               "Options:\n"
               "  -n, --namespace NS      the config's namespace (default: default; list: every one)\n"
               "  -o, --output FORMAT     table (default) or json\n");
}

/* The path of a config by name (or id) in ns: "/configs/NAME?namespace=NS". */
static char *config_path(const char *name, const char *ns) {
        _cleanup_free_ char *n = cli_url_escape(name), *s = cli_url_escape(ns ?: "default");
        char *path = NULL;

        if (!n || !s || asprintf(&path, "/configs/%s?namespace=%s", n, s) < 0)
                return NULL;
        return path;
}

/* "[KEY=]PATH" into data: the file's bytes, which must be text (JSON strings are UTF-8). */
static int add_file(json_t *data, const char *arg) {
        const char *eq = strchr(arg, '='), *path = eq ? eq + 1 : arg, *slash;
        _cleanup_free_ char *key = NULL, *content = NULL;
        json_t *value;
        size_t size = 0;
        int r;

        if (eq)
                key = strndup(arg, (size_t)(eq - arg));
        else {
                slash = strrchr(path, '/');
                key = strdup(slash ? slash + 1 : path);
        }
        if (!key)
                return CLI_EXIT_FAILURE;
        if (streq(path, "-") && !eq)
                return cli_usage_error("husk config create", "--from-file -: give the key, as KEY=-");
        if (!*key || !*path)
                return cli_usage_error("husk config create", "--from-file %s: want [KEY=]PATH", arg);
        r = cli_manifest_read(path, &content, &size);
        if (r < 0) {
                cli_error("cannot read %s: %s", streq(path, "-") ? "stdin" : path, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        value = json_stringn(content, size);
        if (!value) {
                cli_error("%s: not UTF-8 text without NUL bytes: a config holds text", path);
                return CLI_EXIT_FAILURE;
        }
        json_object_set_new(data, key, value);
        return CLI_EXIT_OK;
}

static int config_create(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "from-literal", required_argument, NULL, 'l' },
                { "from-file", required_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const cmd = "husk config create";
        json_auto_t *data = json_object();
        const char *ns = "default";
        int c, r;

        if (!data)
                return CLI_EXIT_FAILURE;
        optind = 0;
        while ((c = getopt_long(argc, argv, ":n:h", options, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        ns = optarg;
                        break;
                case 'l': {
                        const char *eq = strchr(optarg, '=');
                        _cleanup_free_ char *key = eq ? strndup(optarg, (size_t)(eq - optarg)) : NULL;

                        if (!eq)
                                return cli_usage_error(cmd, "--from-literal %s: want KEY=VALUE", optarg);
                        if (!key || json_object_set_new(data, key, json_string(eq + 1)) < 0)
                                return cli_usage_error(cmd, "--from-literal %s: the value is not UTF-8", key ?: "");
                        break;
                }
                case 'f':
                        r = add_file(data, optarg);
                        if (r != CLI_EXIT_OK)
                                return r;
                        break;
                case 'h':
                        config_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        if (optind != argc - 1)
                return cli_usage_error(cmd, "give one config NAME");
        return cli_config_put(ctx, ns, argv[optind], data);
}

int cli_config_put(cli_ctx_t *ctx, const char *ns, const char *name, json_t *data) {
        json_auto_t *body = json_pack("{s:s, s:s, s:O}", "name", name, "namespace", ns, "data", data);
        _cleanup_free_ char *path = config_path(name, ns), *error = NULL, *result = NULL;
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        cli_response_t resp;
        int r;

        if (!body || !path)
                return CLI_EXIT_FAILURE;
        r = cli_http_open(ctx, &h);
        if (r != CLI_EXIT_OK)
                return r;
        r = cli_http_request(h, "POST", "/configs", body, &resp, &error);
        if (r < 0)
                return cli_http_report_failure(h, r, error);
        if (resp.status == 201) {
                printf("config %s/%s created (id %s)\n", ns, name, cli_json_str(resp.json, "id", "?"));
                cli_response_clear(&resp);
                return CLI_EXIT_OK;
        }
        if (resp.status != 409) {
                r = cli_http_report_status("cannot create the config", &resp);
                cli_response_clear(&resp);
                return r;
        }
        /* It exists: its data is replaced (created or updated, never skipped). */
        cli_response_clear(&resp);
        json_object_del(body, "name");
        json_object_del(body, "namespace");
        r = cli_http_request(h, "PUT", path, body, &resp, &error);
        if (r < 0)
                return cli_http_report_failure(h, r, error);
        if (resp.status != 200) {
                r = cli_http_report_status("cannot update the config", &resp);
                cli_response_clear(&resp);
                return r;
        }
        result = cli_http_header(h, "Husk-Apply-Result");
        if (result && streq(result, "unchanged"))
                printf("config %s/%s unchanged\n", ns, name);
        else
                printf("config %s/%s updated (version %lld)\n", ns, name,
                       (long long)json_integer_value(json_object_get(resp.json, "version")));
        cli_response_clear(&resp);
        return CLI_EXIT_OK;
}

/* list, inspect and delete share their options. */
static int config_simple(cli_ctx_t *ctx, int argc, char **argv, const char *verb) {
        static const struct option options[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        _cleanup_free_ char *path = NULL, *cmd = NULL;
        const char *ns = NULL, *output = "table";
        json_auto_t *answer = NULL;
        json_t *e;
        size_t i;
        int c, r;

        if (asprintf(&cmd, "husk config %s", verb) < 0)
                return CLI_EXIT_FAILURE;
        optind = 0;
        while ((c = getopt_long(argc, argv, ":n:o:h", options, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        ns = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        config_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        if (!streq(output, "table") && !streq(output, "json"))
                return cli_usage_error(cmd, "-o: table or json");
        if (streq(verb, "list")) {
                _cleanup_free_ char *s = ns ? cli_url_escape(ns) : NULL;
                static const char *const headers[] = { "NAMESPACE", "NAME", "KEYS", "VERSION", "UPDATED" };

                if (optind != argc)
                        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
                if ((ns && !s) || asprintf(&path, "/configs%s%s", s ? "?namespace=" : "", s ?: "") < 0)
                        return CLI_EXIT_FAILURE;
                r = cli_http_call(ctx, "GET", path, NULL, 200, "cannot list configs", &answer);
                if (r != CLI_EXIT_OK)
                        return r;
                if (streq(output, "json")) {
                        cli_json_write(stdout, answer);
                        return CLI_EXIT_OK;
                }
                if (cli_table_new(5, headers, &t) < 0)
                        return CLI_EXIT_FAILURE;
                json_array_foreach(answer, i, e) {
                        char keys[16], version[24];
                        const char *cells[] = { cli_json_str(e, "namespace", ""), cli_json_str(e, "name", ""), keys,
                                                version, cli_json_str(e, "updated_at", "") };

                        snprintf(keys, sizeof(keys), "%zu", json_object_size(json_object_get(e, "data")));
                        snprintf(version, sizeof(version), "%lld",
                                 (long long)json_integer_value(json_object_get(e, "version")));
                        if (cli_table_add_row(t, cells) < 0)
                                return CLI_EXIT_FAILURE;
                }
                cli_table_write(t, stdout);
                return CLI_EXIT_OK;
        }
        if (optind != argc - 1)
                return cli_usage_error(cmd, "give one config NAME");
        path = config_path(argv[optind], ns);
        if (!path)
                return CLI_EXIT_FAILURE;
        if (streq(verb, "inspect")) {
                r = cli_http_call(ctx, "GET", path, NULL, 200, "cannot read the config", &answer);
                if (r == CLI_EXIT_OK)
                        cli_json_write(stdout, answer);
                return r;
        }
        r = cli_http_call(ctx, "DELETE", path, NULL, 204, "cannot delete the config", NULL);
        if (r == CLI_EXIT_OK)
                printf("config %s/%s deleted\n", ns ?: "default", argv[optind]);
        return r;
}

/* What verb_config dispatches, for husk completion: it refuses any other COMMAND. */
static const cli_verb_t config_commands[] = {
        { "list", NULL, "list configs" },
        { "inspect", NULL, "show a config and its data" },
        { "create", NULL, "create a config (--from-literal, --from-file)" },
        { "delete", NULL, "delete a config" },
};

const cli_verb_t *cli_config_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(config_commands);
        return config_commands;
}

int verb_config(cli_ctx_t *ctx, int argc, char **argv) {
        if (argc >= 2 && argv[1][0] != '-' && !cli_command_known(config_commands, ELEMENTSOF(config_commands), argv[1]))
                return cli_usage_error("husk config", "unknown command '%s'", argv[1]);
        if (argc < 2)
                return cli_usage_error("husk config", "missing command: list, inspect, create or delete");
        if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
                config_help();
                return CLI_EXIT_OK;
        }
        if (streq(argv[1], "create"))
                return config_create(ctx, argc - 1, argv + 1);
        if (streq(argv[1], "list") || streq(argv[1], "inspect") || streq(argv[1], "delete"))
                return config_simple(ctx, argc - 1, argv + 1, argv[1]);
        return cli_usage_error("husk config", "unknown command '%s'", argv[1]);
}
